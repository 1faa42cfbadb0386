// The coordinator's planning state (DESIGN.md, decision 8; docs/cluster.md):
// the measured profiles of the coordinator and of every worker, the links,
// and the re-plan policy. The control thread feeds it what arrives (STATUS,
// heartbeat round trips, joins and losses) and asks it for planner inputs,
// optimal plans and predictions of the running plan. No sockets, no
// threads: the logic is tested in process (tests/pipeline).
//
// Per-layer times. A worker reports whole-stage times (its blocks, plus the
// output head and sampling when it is the last stage). The coordinator
// measured how much the head costs relative to one block on itself
// (head_ratio, coordinator_probe.h) and assumes the same ratio everywhere:
//   decode_ms_per_layer = stage_ms / (blocks + head_ratio * is_last)
//   decode_ms_output    = head_ratio * decode_ms_per_layer
//
// Links. Coordinator <-> worker: the lower quartile of the last 16 heartbeat round trips
// (node_status.h measures each one) and the throughput of the last shard
// download (a lower bound: it includes hashing and writing). Worker <->
// worker links are not measured: they are approximated from the two workers'
// links to the coordinator (RTT: the mean of the two; throughput: the lower),
// which holds when every device hangs off the same access point or switch.
// Unmeasured links use PlannerConfig::default_link.
//
// Not thread-safe: the control thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/plan.h"
#include "cluster/replan.h"
#include "pipeline/worker_status.h"

namespace colony {

struct MeasuredPlannerConfig {
    PlanObjective objective = PlanObjective::kLatency;
    ReplanConfig replan;
    double min_battery_percent = 20;  // below it and not charging: left out, forced re-plan
    // Links not measured yet (no heartbeat answered, no shard downloaded).
    double default_rtt_ms = 2.0;
    double default_throughput_bytes_per_s = 12.5e6;  // 100 Mbit/s
};

class MeasuredPlanner {
  public:
    /// model: ModelShape of the served model (model_shape_from_gguf);
    /// coordinator_id: the coordinator's key fingerprint. Throws
    /// Error(kInvalidArgument) for a bad replan config.
    MeasuredPlanner(ModelShape model, std::string coordinator_id, MeasuredPlannerConfig config,
                    ReplanPolicy::Clock clock = {});

    const ModelShape &model() const { return model_; }
    const std::string &coordinator_id() const { return coordinator_id_; }
    const MeasuredPlannerConfig &config() const { return config_; }

    /// The coordinator's own measurement (coordinator_probe.h).
    void set_coordinator(const DeviceProfile &profile, double head_ratio);
    bool has_coordinator() const { return coordinator_.has_value(); }
    double head_ratio() const { return head_ratio_; }

    /// A worker's STATUS. Stores its profile with per-layer times derived from
    /// the stage probe (see above). `running_epoch`: the epoch of the running
    /// plan; a rolling decode time of a stage of that epoch becomes a drift
    /// sample of the policy. A battery below the minimum and not charging
    /// becomes a kBatteryLow event (once per discharge). The first profile,
    /// and a probe (stage epoch 0) that is faster than the previous profile
    /// by more than the drift threshold, become kJoin events. Returns true
    /// when this was the node's first profile.
    bool on_status(const std::string &id, const WorkerStatus &status, uint64_t running_epoch);
    /// The median decode time of the coordinator's own stage (`blocks`
    /// blocks, with the head when is_last) over a while, ms: a drift sample
    /// of the policy, like a worker's rolling time.
    void on_coordinator_sample(double stage_ms, uint32_t blocks, bool is_last);
    /// One heartbeat round trip to worker `id`, ms (the last 16 are kept;
    /// rtt_ms() is their lower quartile, once there are 4).
    void on_rtt(const std::string &id, double rtt_ms);
    /// The worker left: its profile and links are forgotten, the policy gets
    /// kLeave.
    void on_leave(const std::string &id);

    bool has_profile(const std::string &id) const { return workers_.count(id) > 0; }
    /// The profile as the planner uses it (measured per-layer times), or the
    /// coordinator's. nullopt when unknown.
    std::optional<DeviceProfile> profile(const std::string &id) const;
    std::optional<double> rtt_ms(const std::string &id) const;
    std::optional<double> throughput(const std::string &id) const;
    /// Median of the rolling per-layer decode samples within the drift window
    /// (only for nodes of the adopted plan).
    std::optional<double> measured_ms_per_layer(const std::string &id) const;
    /// The slow-down factor the worker reported.
    double slowdown(const std::string &id) const;

    /// Planner input over the coordinator (must participate, owns stage 0)
    /// and `workers` (ids with a profile; others are skipped). use_measured:
    /// decode times of nodes of the running plan (the coordinator included)
    /// are the policy's rolling medians where it has them. Throws Error(kInternal) without the
    /// coordinator's measurement.
    PlannerInput input(const std::vector<std::string> &workers, bool use_measured) const;

    /// plan_optimal over input(workers, use_measured). Throws what it throws.
    Plan optimal(const std::vector<std::string> &workers, bool use_measured, uint64_t epoch) const;
    /// `layout` (nodes and ranges) re-predicted with the current profiles;
    /// nullopt when a node of it has no profile or no longer fits.
    std::optional<Plan> predict(const Plan &layout, const std::vector<std::string> &workers,
                                bool use_measured) const;

    ReplanPolicy &policy() { return policy_; }
    const ReplanPolicy &policy() const { return policy_; }
    /// Forgets the adopted plan (a static plan runs): the next measured plan
    /// starts afresh.
    void reset_policy();

  private:
    struct Worker {
        DeviceProfile profile;  // per-layer times derived from the probe
        double slowdown = 1.0;
        std::optional<double> throughput;
        bool battery_low = false;
    };

    /// Blocks of [first, last) that are computed (ModelShape::layer_skipped); at least 1.
    uint32_t computed_blocks(uint32_t first, uint32_t last) const;
    DeviceProfile derived(const DeviceProfile &p, double stage_ms, double prefill_ms_per_token,
                          uint32_t blocks, bool is_last) const;
    double per_layer(double stage_ms, uint32_t blocks, bool is_last) const;

    ModelShape model_;
    std::string coordinator_id_;
    MeasuredPlannerConfig config_;
    ReplanPolicy::Clock clock_;
    ReplanPolicy policy_;
    std::optional<DeviceProfile> coordinator_;
    double head_ratio_ = 0;
    std::map<std::string, Worker> workers_;
    std::map<std::string, std::deque<double>> rtts_;
};

/// True when the two plans put the same nodes on the same ranges in the same order.
bool same_layout(const Plan &a, const Plan &b);

}  // namespace colony
