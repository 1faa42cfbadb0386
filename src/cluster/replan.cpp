#include "cluster/replan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

/// snprintf into a std::string; every call passes a literal format and doubles.
template <typename... Args>
std::string format(const char *fmt, Args... args) {
    char buf[160];
    std::snprintf(buf, sizeof buf, fmt, args...);
    return buf;
}

std::string join(const std::vector<std::string> &parts, const char *sep) {
    std::string out;
    for (const std::string &p : parts)
        out += (out.empty() ? "" : sep) + p;
    return out;
}

double median(std::vector<double> v) {
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    if (v.size() % 2 == 1)
        return v[mid];
    const double upper = v[mid];
    return (upper + *std::max_element(v.begin(), v.begin() + mid)) / 2;
}

void validate(const ReplanConfig &c) {
    auto bad = [](const char *msg) { throw Error(ErrorCode::kInvalidArgument, msg); };
    if (!(c.drift_threshold > 0 && c.drift_threshold <= 10))
        bad("replan: drift_threshold must be in (0, 10]");
    if (!(c.drift_window_s >= 0 && std::isfinite(c.drift_window_s)))
        bad("replan: drift_window_s must be >= 0");
    if (!(c.sustained_fraction > 0 && c.sustained_fraction <= 1)) {
        bad("replan: sustained_fraction must be in (0, 1]");
    }
    if (c.min_samples < 1)
        bad("replan: min_samples must be >= 1");
    if (!(c.improvement_margin >= 0 && c.improvement_margin < 1)) {
        bad("replan: improvement_margin must be in [0, 1)");
    }
    if (!(c.cooldown_s >= 0 && std::isfinite(c.cooldown_s)))
        bad("replan: cooldown_s must be >= 0");
}

}  // namespace

ReplanPolicy::ReplanPolicy(ReplanConfig config, Clock clock)
    : config_(config), clock_(std::move(clock)) {
    validate(config_);
    if (!clock_)
        clock_ = [] { return std::chrono::steady_clock::now(); };
}

double ReplanPolicy::seconds_since(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration<double>(clock_() - t).count();
}

void ReplanPolicy::adopt(const Plan &plan) {
    adopted_at_ = clock_();
    stages_.clear();
    for (const PlanStage &s : plan.stages)
        stages_[s.node_id].baseline_ms_per_layer = s.decode_ms_per_layer;
    forced_reasons_.clear();
    // Joins of nodes the new plan already considered are settled; a join
    // recorded after the candidate was computed is not distinguishable here,
    // so joins of nodes in the plan are dropped and others kept.
    for (auto it = pending_joins_.begin(); it != pending_joins_.end();) {
        it = stages_.count(*it) ? pending_joins_.erase(it) : std::next(it);
    }
}

void ReplanPolicy::settle_joins(const std::vector<std::string> &node_ids) {
    for (const std::string &id : node_ids)
        pending_joins_.erase(id);
}

void ReplanPolicy::record_sample(const std::string &node_id, double ms) {
    auto it = stages_.find(node_id);
    if (it == stages_.end() || !(ms > 0) || !std::isfinite(ms))
        return;
    StageTrack &track = it->second;
    const auto now = clock_();
    if (!track.observed_since)
        track.observed_since = now;
    track.samples.push_back({now, ms});
    prune(track);
}

void ReplanPolicy::record_event(NodeEventKind kind, const std::string &node_id) {
    const bool in_plan = stages_.count(node_id) > 0;
    switch (kind) {
        case NodeEventKind::kJoin:
            pending_joins_.insert(node_id);
            break;
        case NodeEventKind::kLeave:
            pending_joins_.erase(node_id);
            if (in_plan) {
                forced_reasons_.push_back("node '" + node_id + "' left");
                stages_.erase(node_id);
            }
            break;
        case NodeEventKind::kBatteryLow:
            if (in_plan)
                forced_reasons_.push_back("battery of '" + node_id + "' is low and not charging");
            break;
    }
}

void ReplanPolicy::prune(StageTrack &track) const {
    const auto now = clock_();
    const auto window = std::chrono::duration<double>(config_.drift_window_s);
    while (!track.samples.empty() && now - track.samples.front().at > window) {
        track.samples.pop_front();
    }
}

std::optional<std::string> ReplanPolicy::drift_reason(const std::string &node_id,
                                                      StageTrack &track) const {
    prune(track);
    if (!track.observed_since || seconds_since(*track.observed_since) < config_.drift_window_s) {
        return std::nullopt;
    }
    const size_t n = track.samples.size();
    if (n < static_cast<size_t>(config_.min_samples))
        return std::nullopt;
    size_t slow = 0;
    size_t fast = 0;
    std::vector<double> values;
    for (const Sample &s : track.samples) {
        const double ratio = s.ms_per_layer / track.baseline_ms_per_layer;
        slow += ratio > 1 + config_.drift_threshold;
        fast += ratio < 1 - config_.drift_threshold;
        values.push_back(s.ms_per_layer);
    }
    const double need = config_.sustained_fraction * static_cast<double>(n);
    if (static_cast<double>(slow) < need && static_cast<double>(fast) < need)
        return std::nullopt;
    const double measured = median(values);
    return "stage '" + node_id + "' " +
           format("measured %.3f ms/layer vs planned %.3f (%+.0f%%) for %.1f s", measured,
                  track.baseline_ms_per_layer, (measured / track.baseline_ms_per_layer - 1) * 100,
                  config_.drift_window_s);
}

ReplanTrigger ReplanPolicy::check() {
    ReplanTrigger t;
    if (!adopted_at_) {
        t.replan = t.forced = true;
        t.reason = "no plan adopted yet";
        return t;
    }
    if (!forced_reasons_.empty()) {
        t.replan = t.forced = true;
        std::vector<std::string> parts = forced_reasons_;
        for (const std::string &id : pending_joins_)
            parts.push_back("node '" + id + "' joined");
        t.reason = join(parts, "; ");
        forced_reasons_.clear();
        pending_joins_.clear();
        return t;
    }
    std::vector<std::string> parts;
    for (const std::string &id : pending_joins_)
        parts.push_back("node '" + id + "' joined");
    for (auto &[id, track] : stages_) {
        if (auto why = drift_reason(id, track)) {
            parts.push_back(*why);
            t.drifting_nodes.push_back(id);
        }
    }
    if (parts.empty()) {
        t.reason =
            "no re-plan: no membership change and no stage drifting beyond " +
            format("%.0f%% for %.1f s", config_.drift_threshold * 100, config_.drift_window_s);
        return t;
    }
    const double cooldown_left = config_.cooldown_s - seconds_since(*adopted_at_);
    if (cooldown_left > 0) {
        t.drifting_nodes.clear();
        t.reason = "re-plan wanted (" + join(parts, "; ") + ") but the cool-down has " +
                   format("%.1f s left", cooldown_left);
        return t;
    }
    t.replan = true;
    t.reason = join(parts, "; ");
    pending_joins_.clear();
    return t;
}

AdoptDecision ReplanPolicy::decide(const ReplanTrigger &trigger, double current_ms,
                                   double candidate_ms) {
    if (!trigger.replan)
        return {false, "nothing triggered a re-plan"};
    if (!std::isfinite(candidate_ms))
        return {false, "the candidate plan has no finite prediction"};
    const std::string times =
        format("candidate %.2f ms per token, current %.2f ms", candidate_ms, current_ms);
    if (trigger.forced)
        return {true, "adopting (" + trigger.reason + "): " + times};
    if (adopted_at_) {
        const double cooldown_left = config_.cooldown_s - seconds_since(*adopted_at_);
        if (cooldown_left > 0) {
            return {false, "keeping the current plan: cool-down has " +
                               format("%.1f s left", cooldown_left) + " (" + times + ")"};
        }
    }
    if (candidate_ms < current_ms * (1 - config_.improvement_margin)) {
        return {true, "adopting (" + trigger.reason + "): " + times +
                          format(" (%.0f%% faster)", (1 - candidate_ms / current_ms) * 100)};
    }
    // The drift is real but re-planning does not pay: accept the measured
    // speeds as the new normal so the same drift does not fire again.
    for (const std::string &id : trigger.drifting_nodes) {
        auto it = stages_.find(id);
        if (it == stages_.end())
            continue;
        if (auto measured = measured_ms_per_layer(id))
            it->second.baseline_ms_per_layer = *measured;
        it->second.samples.clear();
        it->second.observed_since.reset();
    }
    return {false, "keeping the current plan: " + times +
                       format(", not %.0f%% faster", config_.improvement_margin * 100)};
}

std::optional<double> ReplanPolicy::measured_ms_per_layer(const std::string &node_id) const {
    auto it = stages_.find(node_id);
    if (it == stages_.end())
        return std::nullopt;
    const auto now = clock_();
    const auto window = std::chrono::duration<double>(config_.drift_window_s);
    std::vector<double> values;
    for (const Sample &s : it->second.samples) {
        if (now - s.at <= window)
            values.push_back(s.ms_per_layer);
    }
    if (values.empty())
        return std::nullopt;
    return median(values);
}

}  // namespace colony
