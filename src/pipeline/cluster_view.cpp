#include "pipeline/cluster_view.h"

#include <cmath>

#include "cluster/plan_table.h"
#include "nlohmann/json.hpp"

namespace colony {
namespace {

using nlohmann::json;

json opt(const std::optional<double> &v) {
    return v && std::isfinite(*v) ? json(*v) : json();
}

json node_json(const NodeView &n) {
    json j = {{"id", n.id},
              {"name", n.name},
              {"role", n.role},
              {"state", n.state},
              {"load_progress", n.load_progress},
              {"stage", n.stage},
              {"address", n.address},
              {"rtt_ms", opt(n.rtt_ms)},
              {"throughput_bytes_per_s", opt(n.throughput_bytes_per_s)},
              {"measured_decode_ms_per_layer", opt(n.measured_decode_ms_per_layer)},
              {"slowdown", n.slowdown},
              {"detail", n.detail},
              {"pairing_code", n.pairing_code},
              {"since_unix_ms", n.since_unix_ms}};
    j["layers"] = n.layers ? json{{"first", n.layers->first}, {"last", n.layers->last}} : json();
    j["profile"] = n.profile ? device_profile_to_json(*n.profile) : json();
    return j;
}

}  // namespace

json recoveries_to_json(const std::vector<RecoveryRecord> &records) {
    json out = json::array();
    for (const RecoveryRecord &r : records) {
        out.push_back({{"epoch", r.epoch},
                       {"lost", r.lost},
                       {"reason", r.reason},
                       {"detected_unix_ms", r.detected_unix_ms},
                       {"detect_ms", r.detect_ms},
                       {"resumed_unix_ms", r.resumed_unix_ms},
                       {"replacement", r.replacement},
                       {"requests_replayed", r.requests_replayed},
                       {"tokens_recomputed", r.tokens_recomputed},
                       {"stall_ms", r.stall_ms},
                       {"failed", r.failed}});
    }
    return out;
}

json cluster_view_to_json(const ClusterView &v) {
    json nodes = json::array();
    for (const NodeView &n : v.nodes)
        nodes.push_back(node_json(n));
    json replans = json::array();
    for (const ReplanRecord &r : v.replans) {
        replans.push_back({{"time_unix_ms", r.time_unix_ms},
                           {"epoch", r.epoch},
                           {"trigger", r.trigger},
                           {"decision", r.decision},
                           {"adopted", r.adopted},
                           {"current_ms", opt(r.current_ms)},
                           {"candidate_ms", opt(r.candidate_ms)}});
    }
    return {{"epoch", v.epoch},
            {"ready", v.ready},
            {"replanning", v.replanning},
            {"planner", v.planner},
            {"objective", v.objective},
            {"nodes", std::move(nodes)},
            {"plan", v.plan ? plan_to_json(*v.plan) : json()},
            {"replans", std::move(replans)},
            {"recoveries", recoveries_to_json(v.recoveries)},
            {"recoveries_total", v.recovery_totals.recoveries}};
}

}  // namespace colony
