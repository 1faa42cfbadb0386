#include "cluster/plan_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "nlohmann/json.hpp"

namespace colony {
namespace {

using Row = std::vector<std::string>;

std::string ms(double v) {
    if (!std::isfinite(v))
        return "inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

std::string device_label(const std::string &name, const std::string &node_id) {
    return name.empty() ? node_id : name;
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
std::string render_rows(const std::vector<Row> &rows) {
    std::vector<size_t> width;
    for (const Row &r : rows) {
        if (width.size() < r.size())
            width.resize(r.size(), 0);
        for (size_t c = 0; c < r.size(); ++c)
            width[c] = std::max(width[c], r[c].size());
    }
    std::string out;
    for (const Row &r : rows) {
        std::string line;
        for (size_t c = 0; c < r.size(); ++c) {
            line += r[c];
            if (c + 1 < r.size())
                line += std::string(width[c] - r[c].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

nlohmann::json time_json(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

}  // namespace

std::string render_plan_table(const Plan &plan) {
    const size_t n_devices = plan.stages.size() + plan.left_out.size();
    char head[256];
    const double tps = plan.predicted_ms_per_token > 0 && std::isfinite(plan.predicted_ms_per_token)
                           ? 1000.0 / plan.predicted_ms_per_token
                           : 0.0;
    std::snprintf(
        head, sizeof head,
        "plan %llu (%s, %s): %d layers on %zu of %zu devices, %s ms per token (%.1f tokens/s)\n",
        static_cast<unsigned long long>(plan.epoch), plan_method_name(plan.method),
        plan_objective_name(plan.objective), plan.n_layer, plan.stages.size(), n_devices,
        ms(plan.predicted_ms_per_token).c_str(), tps);
    std::vector<Row> rows;
    rows.push_back(
        {"#", "device", "layers", "ms/token", "compute", "hop out", "memory need/have", "state"});
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        const PlanStage &s = plan.stages[i];
        rows.push_back({std::to_string(i), device_label(s.name, s.node_id),
                        std::to_string(s.layers.first) + "-" + std::to_string(s.layers.last - 1),
                        ms(s.predicted_ms), ms(s.compute_ms), ms(s.hop_out_ms),
                        format_bytes(s.memory_bytes) + "/" + format_bytes(s.memory_available_bytes),
                        "stage " + std::to_string(i)});
    }
    for (const PlanExclusion &e : plan.left_out) {
        rows.push_back({"-", device_label(e.name, e.node_id), "-", "-", "-", "-", "-",
                        "left out: " + e.reason});
    }
    std::string out = head + render_rows(rows);
    if (!plan.coordinator_id.empty()) {
        out += "token id: coordinator -> stage 0 " + ms(plan.hop_in_ms) + " ms; latency " +
               ms(plan.latency_ms_per_token) + " ms, slowest element " +
               ms(plan.bottleneck_ms_per_token) + " ms per token\n";
    }
    return out;
}

nlohmann::json plan_to_json(const Plan &plan) {
    nlohmann::json stages = nlohmann::json::array();
    for (const PlanStage &s : plan.stages) {
        stages.push_back({{"node_id", s.node_id},
                          {"name", s.name},
                          {"first_layer", s.layers.first},
                          {"last_layer", s.layers.last},
                          {"decode_ms_per_layer", s.decode_ms_per_layer},
                          {"compute_ms", time_json(s.compute_ms)},
                          {"hop_out_ms", time_json(s.hop_out_ms)},
                          {"predicted_ms", time_json(s.predicted_ms)},
                          {"memory_bytes", s.memory_bytes},
                          {"memory_available_bytes", s.memory_available_bytes}});
    }
    nlohmann::json left_out = nlohmann::json::array();
    for (const PlanExclusion &e : plan.left_out) {
        left_out.push_back({{"node_id", e.node_id}, {"name", e.name}, {"reason", e.reason}});
    }
    return {{"epoch", plan.epoch},
            {"method", plan_method_name(plan.method)},
            {"objective", plan_objective_name(plan.objective)},
            {"coordinator_id", plan.coordinator_id},
            {"n_layer", plan.n_layer},
            {"hop_in_ms", time_json(plan.hop_in_ms)},
            {"latency_ms_per_token", time_json(plan.latency_ms_per_token)},
            {"bottleneck_ms_per_token", time_json(plan.bottleneck_ms_per_token)},
            {"predicted_ms_per_token", time_json(plan.predicted_ms_per_token)},
            {"stages", std::move(stages)},
            {"left_out", std::move(left_out)}};
}

}  // namespace colony
