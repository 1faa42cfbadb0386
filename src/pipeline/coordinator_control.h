// The coordinator's control plane: one thread owns the control ROUTER socket
// (CURVE server, ZAP domain kZapDomainControl: only holders of an active join
// token get in). It admits workers (JOIN -> JOIN_ACCEPT), exchanges
// heartbeats, notices lost workers, plans layer ranges, sends ASSIGN, serves
// shards, and declares the cluster ready when every stage is READY. It shares
// the plan with the scheduler through ClusterState.
//
// Planning (docs/cluster.md): the first plan is static (--split, or layers in
// proportion to memory limits or threads over [coordinator, workers in join
// order]) so the cluster serves at once. With the measured planner
// (CoordinatorOptions::measured_planner), the coordinator measures itself at
// start, every worker measures the stage it loads (or a one-block probe shard
// when it is a spare) and reports a device profile (STATUS,
// worker_status.h); once every node has one, plan_optimal chooses the nodes,
// their order (the coordinator first) and their ranges. A ReplanPolicy then
// re-plans on join, leave, sustained drift of a stage's measured time per
// layer, and low battery. A new plan is applied between requests: admission
// pauses, running requests finish, the new plan is assigned, queued requests
// run on it. Every decision and its reason goes to the log and the cluster
// view (ClusterState::cluster_view).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "cluster/plan.h"
#include "model/hparams.h"
#include "model/layer_range.h"
#include "net/keys.h"
#include "net/wire.h"
#include "pipeline/cluster_view.h"
#include "pipeline/coordinator_options.h"

namespace colony {

class admission_control;
class ClusterState;
class GgufFile;
class MeasuredPlanner;
class ShardService;
struct received_message;
struct WorkerStatus;

/// What the control plane knows about the model it plans.
struct PlannedModel {
    ModelHparams hp;
    std::string hash_hex;
    wire_hash hash{};
};

class CoordinatorControl {
  public:
    /// Binds the control socket on opts.host:opts.port. admission is null in
    /// insecure mode. data_endpoint is the coordinator's data socket as
    /// announced to the last stage (a wildcard host is "*"). Every reference
    /// must outlive this object. Throws Error(kUnavailable) when the port
    /// cannot be bound.
    CoordinatorControl(zmq::context_t &ctx, const CoordinatorOptions &opts,
                       const PlannedModel &model, const curve_keypair &node_keys,
                       admission_control *admission, ShardService &shards, ClusterState &state,
                       std::string data_endpoint);
    ~CoordinatorControl();
    CoordinatorControl(const CoordinatorControl &) = delete;
    CoordinatorControl &operator=(const CoordinatorControl &) = delete;

    /// The bound control port (useful with port 0).
    uint16_t port() const { return port_; }
    /// Publishes the initial state (a one-stage plan when no workers are
    /// expected) and starts the control thread.
    void start();
    /// Stops and joins the control thread. Idempotent.
    void stop();

  private:
    using clock = std::chrono::steady_clock;
    struct Member {
        std::string routing_id;
        uint32_t node_id = 0;
        std::string token_id;
        std::string key_z85;
        std::string fingerprint;  // key_fingerprint(key_z85): the node id in plans
        std::string peer_address;
        std::string data_endpoint;  // resolved
        wire_join join;
        clock::time_point last_seen;
        int64_t joined_unix_ms = 0;
        int stage = -1;  // index in the plan; -1: not in the plan (spare)
        uint64_t ready_epoch = 0;
        bool probing = false;             // a probe ASSIGN is out (measured planner)
        uint64_t shard_sent = 0;          // shard bytes sent for the current assignment
        uint64_t shard_total = 0;         // its size (0: not served, e.g. a cache hit)
        int64_t rtt_received_us = 0;      // node_status.h report of the last RTT sample taken
        clock::time_point profiled_at{};  // first device profile
        clock::time_point probed_at{};    // last probe measurement (spares are re-measured)
        std::vector<LayerRange> cached;   // ranges of this model it holds: from JOIN, then READY
        // The stage's own measurement (STATUS before READY): one token through it, ms.
        double stage_ms_per_token = 0;
        uint64_t stage_report_epoch = 0;
        bool holds(LayerRange r) const;
    };
    struct PlannedStage {
        int member = -1;  // index into members_; -1: the coordinator
        LayerRange range;
    };
    /// A new plan waiting for the running requests to finish.
    struct PendingApply {
        Plan plan;
        std::string trigger;
        clock::time_point since;
        std::optional<double> current_ms;
    };

    void run();
    void handle(const received_message &rm);
    void on_join(const received_message &rm, const wire_join &join);
    void on_ready(Member &m, const wire_ready &ready);
    void on_shard_request(Member &m, const wire_shard_request &req);
    void tick();
    void lose_member(size_t index, const std::string &reason);
    void invalidate_plan(const std::string &reason);
    /// A plan when there is none: the measured one when every node has a
    /// profile, else (allow_static) the static split.
    void make_plan(const std::string &why, bool allow_static = true);
    /// Makes `layout` the plan: prepares shards, sets a new epoch (graceful:
    /// the end of a paused re-plan), sends ASSIGN, logs the plan table.
    void apply_layout(const std::vector<PlannedStage> &layout, const std::string &why,
                      bool graceful, const Plan &plan);
    void check_ready();
    void publish_detail();

    // Measured planner.
    void measure_self();
    void on_status(Member &m, const wire_status &status);
    void collect_rtts();
    /// Stage 0's decode times (ClusterState::take_local_decode_samples) as a
    /// drift sample of the coordinator, every kLocalSampleMs.
    void collect_local_samples();
    void send_probes();
    void consider_replan();
    void begin_apply(const Plan &plan, const std::string &trigger,
                     std::optional<double> current_ms);
    void continue_apply();
    void abort_apply(const std::string &why);
    std::vector<std::string> member_ids(bool with_profile_only) const;
    bool all_profiled() const;
    /// Every member's link to the coordinator was measured (or its profile
    /// is a few seconds old): the first measured plan waits for it.
    bool links_measured() const;
    /// The running plan (nodes, ranges) as a cluster Plan, predicted when
    /// every node of it has a profile.
    Plan running_plan() const;
    std::optional<std::vector<PlannedStage>> layout_of(const Plan &plan) const;
    /// planner_->optimal over `ids`, then workers traded between stages so
    /// that more of them serve a range they hold, as long as the prediction
    /// stays within kCachedRangeSlack of the optimum (cached_assignment.h).
    Plan optimal_plan(const std::vector<std::string> &ids) const;
    static constexpr double kCachedRangeSlack = 0.02;
    /// Trades workers in `layout` onto ranges they hold (cached_assignment.h)
    /// while acceptable(members by stage) agrees; logs each trade. Returns
    /// whether a worker moved.
    bool trade_onto_cached(std::vector<PlannedStage> &layout,
                           const std::function<bool(const std::vector<int> &)> &acceptable) const;
    /// Writes the shards of `layout` that their workers do not hold.
    void prepare_shards(const std::vector<PlannedStage> &layout);
    /// The ASSIGN fields every assignment of `range` shares (no endpoints or keys).
    wire_assign assign_for(uint64_t epoch, LayerRange range) const;
    /// The static layout with workers traded onto ranges they hold where the
    /// split allows it (a manual split; equal weights of a proportional one).
    void prefer_cached(std::vector<PlannedStage> &layout, const std::vector<double> &weights) const;
    void record_replan(const std::string &trigger, const std::string &decision, bool adopted,
                       std::optional<double> current_ms, std::optional<double> candidate_ms,
                       uint64_t epoch);
    void publish_view();
    void keepalive();
    bool send_to(const Member &m, wire_body body);
    Member *find_member(const std::string &routing_id);
    std::string waiting_reason() const;

    zmq::context_t &ctx_;
    const CoordinatorOptions &opts_;
    const PlannedModel &model_;
    const curve_keypair &node_keys_;
    admission_control *admission_;
    ShardService &shards_;
    ClusterState &state_;
    std::string data_endpoint_;
    std::optional<std::vector<LayerRange>> manual_split_;
    zmq::socket_t router_;
    uint16_t port_ = 0;

    // Used only by the control thread once started.
    std::vector<Member> members_;
    std::vector<PlannedStage> plan_;  // empty: no plan
    uint64_t plan_epoch_ = 0;
    bool plan_ready_ = false;
    uint32_t next_node_id_ = 1;
    uint32_t send_counter_ = 0;
    clock::time_point last_heartbeat_{};
    clock::time_point last_token_reload_{};
    clock::time_point plan_failed_at_{};  // a failed plan is retried after a pause
    bool plan_failed_ = false;

    // Measured planner (control thread only once started).
    std::shared_ptr<const GgufFile> file_;
    std::string coordinator_id_;    // key fingerprint of the node key
    std::string coordinator_name_;  // --name or the host name
    std::unique_ptr<MeasuredPlanner> planner_;
    Plan plan_info_;  // the running plan as a cluster Plan (view, policy)
    std::optional<PendingApply> pending_;
    std::deque<ReplanRecord> replans_;
    int64_t started_unix_ms_ = 0;
    bool planned_once_ = false;
    std::deque<NodeView> lost_;
    clock::time_point last_replan_check_{};
    clock::time_point last_local_sample_{};
    clock::time_point last_view_{};
    bool view_dirty_ = true;

    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace colony
