// When to re-plan while running (DESIGN.md, decision 8; issue 5, "Re-planning
// while running"). Pure logic with an injectable clock: the coordinator feeds
// it measured time per layer of every stage and membership events, asks
// check() periodically, and, when it says so, computes a candidate plan and
// asks decide() whether to adopt it. Every answer carries a reason for the
// log and the dashboard.
//
// Typical loop (coordinator thread):
//   ReplanTrigger t = policy.check();
//   if (t.replan) {
//       // profiles updated with policy.measured_ms_per_layer(node)
//       Plan candidate = plan_optimal(input);
//       double current = predict_plan(input, running).predicted_ms_per_token;  // inf if broken
//       AdoptDecision d = policy.decide(t, current, candidate.predicted_ms_per_token);
//       if (d.adopt) { apply(candidate); policy.adopt(candidate); }
//   }
//
// Not thread-safe: one thread owns a ReplanPolicy.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/plan.h"

namespace colony {

struct ReplanConfig {
    // A stage drifts when |measured / planned - 1| of its decode time per
    // layer exceeds this (0.25 = 25 %), in one direction.
    double drift_threshold = 0.25;
    // ... for at least this fraction of its samples within the last
    // drift_window_s seconds, having been observed for the whole window.
    double drift_window_s = 10;
    double sustained_fraction = 0.8;
    int min_samples = 3;  // samples needed within the window
    // A candidate is adopted only if its predicted time per token is lower
    // than the current plan's by this fraction (0.10 = 10 %) ...
    double improvement_margin = 0.10;
    // ... and at least this long after the last adoption. Forced re-plans
    // (a stage left, a stage's battery is low) ignore both.
    double cooldown_s = 30;
};

enum class NodeEventKind {
    kJoin,        // a node joined the cluster (its profile is known)
    kLeave,       // a node left or stopped answering
    kBatteryLow,  // a node's battery is low and not charging
};

struct ReplanTrigger {
    bool replan = false;  // compute a candidate plan now
    bool forced = false;  // the current plan cannot stay: adopt any feasible candidate
    std::string reason;
    std::vector<std::string> drifting_nodes;  // stages whose measured speed drifted
};

struct AdoptDecision {
    bool adopt = false;
    std::string reason;
};

class ReplanPolicy {
  public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;

    /// `clock` defaults to std::chrono::steady_clock::now (tests pass a fake).
    /// Throws Error(kInvalidArgument) for a config value out of range
    /// (threshold and fraction in (0, 1], margin in [0, 1), times >= 0,
    /// min_samples >= 1).
    explicit ReplanPolicy(ReplanConfig config = {}, Clock clock = {});

    /// The plan now running: its stages' decode_ms_per_layer become the
    /// baselines for drift, samples are cleared and the cool-down starts.
    void adopt(const Plan &plan);

    /// The joins of `node_ids` were taken into account by the plan just
    /// adopted (or kept): they no longer ask for a re-plan.
    void settle_joins(const std::vector<std::string> &node_ids);

    /// A measured decode time per layer of a stage's node, ms. Samples of
    /// nodes outside the plan and non-positive or non-finite values are
    /// ignored.
    void record_sample(const std::string &node_id, double decode_ms_per_layer);

    /// A membership event. A leave or low battery of a node in the plan forces
    /// a re-plan; a join asks for one (subject to the cool-down); events about
    /// other nodes are ignored.
    void record_event(NodeEventKind kind, const std::string &node_id);

    /// Should a candidate plan be computed now? Forced triggers first (also
    /// when no plan was adopted yet), then joins and drift once the cool-down
    /// is over. A returned trigger consumes the events it reports.
    ReplanTrigger check();

    /// Whether to adopt a candidate computed for `trigger`. current_ms: the
    /// running plan re-predicted with measured times (infinity when it can no
    /// longer run); candidate_ms: the candidate's prediction. A rejected drift
    /// trigger makes the measured speeds the new baselines of the drifting
    /// stages, so the same drift does not fire again.
    AdoptDecision decide(const ReplanTrigger &trigger, double current_ms, double candidate_ms);

    /// Median of the node's samples within the window, ms per layer; nullopt
    /// without samples.
    std::optional<double> measured_ms_per_layer(const std::string &node_id) const;

    bool has_plan() const { return adopted_at_.has_value(); }

  private:
    struct Sample {
        std::chrono::steady_clock::time_point at;
        double ms_per_layer;
    };
    struct StageTrack {
        double baseline_ms_per_layer = 0;
        std::optional<std::chrono::steady_clock::time_point> observed_since;
        std::deque<Sample> samples;  // within the window, oldest first
    };

    double seconds_since(std::chrono::steady_clock::time_point t) const;
    void prune(StageTrack &track) const;
    std::optional<std::string> drift_reason(const std::string &node_id, StageTrack &track) const;

    ReplanConfig config_;
    Clock clock_;
    std::optional<std::chrono::steady_clock::time_point> adopted_at_;
    std::map<std::string, StageTrack> stages_;  // node id -> track, nodes of the adopted plan
    std::set<std::string> pending_joins_;
    std::vector<std::string> forced_reasons_;
};

}  // namespace colony
