// The coordinator's control plane: one thread owns the control ROUTER socket
// (CURVE server, ZAP domain kZapDomainControl: only holders of an active join
// token get in). It admits workers (JOIN -> JOIN_ACCEPT), exchanges
// heartbeats, notices lost workers, plans layer ranges, sends ASSIGN, serves
// shards, and declares the cluster ready when every stage is READY. It shares
// the plan with the scheduler through ClusterState.
//
// One class, its code in one file per concern:
//   coordinator_control.cpp     the socket, the loop, dispatch of what arrives
//   coordinator_membership.cpp  members: join, heartbeats, loss
//   coordinator_pairing.cpp     joins that wait for a person (--confirm-pairing),
//                               revoked tokens and node keys (net/node_store.h)
//   coordinator_layout.h/.cpp   the layout decisions: pure functions, no sockets
//   coordinator_assign.cpp      applying a layout: shards, ASSIGN, READY, the plan's state
//   coordinator_profiles.cpp    measurements for the measured planner (self, STATUS, RTTs, probes)
//   coordinator_replan.cpp      re-planning: when, and the graceful apply
//   coordinator_view.cpp        the cluster view and the /health detail JSON
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
#include "net/message_fence.h"
#include "net/wire.h"
#include "pipeline/cluster_view.h"
#include "pipeline/coordinator_layout.h"
#include "pipeline/coordinator_options.h"
#include "util/error.h"

namespace colony {

class AdmissionControl;
class ClusterState;
class GgufFile;
class MeasuredPlanner;
class ShardService;
struct ReceivedMessage;
struct WorkerStatus;

/// What the control plane knows about the model it plans.
struct PlannedModel {
    ModelHparams hp;
    std::string hash_hex;
    WireHash hash{};
};

class CoordinatorControl {
  public:
    /// Binds the control socket on opts.host:opts.port. admission is null in
    /// insecure mode. data_endpoint is the coordinator's data socket as
    /// announced to the last stage (a wildcard host is "*"). Every reference
    /// must outlive this object. Throws Error(kUnavailable) when the port
    /// cannot be bound, Error(kInvalidArgument) for a --split that does not
    /// fit the model or --workers-expected, or an unknown wire type.
    CoordinatorControl(zmq::context_t &ctx, const CoordinatorOptions &opts,
                       const PlannedModel &model, const CurveKeypair &node_keys,
                       AdmissionControl *admission, ShardService &shards, ClusterState &state,
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
    /// Control messages dropped as stale or replayed (message_fence.h).
    /// Thread-safe.
    FenceCounts dropped_messages() const { return fence_.counts(); }

  private:
    using clock = std::chrono::steady_clock;
    struct Member {
        std::string routing_id;
        uint32_t node_id = 0;
        std::string token_id;
        std::string key_z85;
        std::string fingerprint;   // key_fingerprint(key_z85): the node id in plans
        std::string pairing_code;  // pairing_code.h; "" in insecure mode
        std::string peer_address;
        std::string data_endpoint;  // resolved
        WireJoin join;
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
        // A spare's standby range: loaded there ahead of a loss
        // (coordinator_standby.cpp); reset by every new plan.
        std::optional<LayerRange> standby;
        // The stage's own measurement (STATUS before READY): one token through it, ms.
        double stage_ms_per_token = 0;
        uint64_t stage_report_epoch = 0;
        // Why an ASSIGN could not be sent to it; the next tick loses it (the
        // plan cannot get ready without it). Empty: reachable.
        std::string unreachable;
        int64_t unreachable_after_ms = -1;  // how long the fault behind it took to show (-1: n/a)
        bool holds(LayerRange r) const;
    };
    /// A JOIN whose node key waits for `colony node approve` (--confirm-pairing).
    struct PendingJoin {
        std::string routing_id;
        std::string user_id;
        std::string peer_address;
        WireJoin join;
        std::string key_z85;
        std::string code;
        clock::time_point last_seen;  // its latest JOIN (the worker repeats it every 2 s)
        int64_t since_unix_ms = 0;
    };
    /// A new plan waiting for the running requests to finish.
    struct PendingApply {
        Plan plan;
        std::string trigger;
        clock::time_point since;
        std::optional<double> current_ms;
    };

    // ---- Loop and dispatch (coordinator_control.cpp) ----
    void configure_router();
    void run();
    void handle(const ReceivedMessage &rm);
    /// One dispatch of a member's message (not JOIN).
    void handle_member(Member &m, const ReceivedMessage &rm);
    /// Everything due on the clock: heartbeats, losses, plans, re-plans, the view.
    void tick();
    /// Sends `body` to a member. Returns false, after logging why, when it
    /// would block (1 s) or the peer is gone; the caller decides what follows.
    [[nodiscard]] bool send_to(const Member &m, WireBody body);
    /// send_to for a message the member cannot do without (ASSIGN, a shard
    /// chunk, an error answer): when it does not go out, the member is
    /// marked unreachable (`what` says which message) and lost on the next
    /// tick. Returns whether it went out.
    bool send_or_lose(Member &m, WireBody body, const std::string &what);
    /// Sends `body` to a peer that is not (or no longer) a member, without
    /// waiting: a refusal or a request to join again. A failure is logged;
    /// the peer retries on its own.
    void send_unsolicited(const std::string &routing_id, WireBody body);

    // ---- Membership (coordinator_membership.cpp) ----
    void on_join(const ReceivedMessage &rm, const WireJoin &join);
    /// The worker's data endpoint resolved against its address; nullopt after
    /// refusing the JOIN (a bad endpoint, or the coordinator's own key).
    std::optional<std::string> join_endpoint(const ReceivedMessage &rm, const WireJoin &join,
                                             const std::string &key_z85);
    void refuse_join(const ReceivedMessage &rm, const WireJoin &join, ErrorCode code,
                     const std::string &reason);
    /// Adds an admitted worker, accepts it, and plans when enough have joined.
    void add_member(const ReceivedMessage &rm, const WireJoin &join, const std::string &key_z85,
                    const std::string &data_endpoint, const std::string &pairing_code);
    /// A heartbeat to every member when one is due; returns whether it was.
    bool send_heartbeats();
    /// A heartbeat to every member; sent_ns: the steady clock when sent (0:
    /// none, a keep-alive), echoed for the round trip (node_status.h).
    void heartbeat_all(uint64_t sent_ns);
    /// Heartbeats while a long shard write keeps the loop busy.
    void keepalive();
    void drop_silent();
    void drop_unreachable();
    void lose_member(size_t index, const std::string &reason);
    Member *find_member(const std::string &routing_id);
    std::string waiting_reason() const;
    /// The members as the layout functions see them (same order and indices).
    std::vector<LayoutMember> layout_members() const;

    // ---- Pairing and revocation (coordinator_pairing.cpp) ----
    /// Keeps a JOIN whose key waits for approval and tells the worker so.
    void hold_join(const ReceivedMessage &rm, const WireJoin &join, const std::string &key_z85,
                   const std::string &code);
    /// Every heartbeat interval (at most 1 s): re-reads the tokens and nodes
    /// files; a member whose token or node key was revoked gets JOIN_REJECT
    /// and is lost (its stage re-planned), pending joins that were approved
    /// are admitted, denied ones refused, stale ones forgotten.
    void reload_admission();
    void retry_pending_joins();
    /// The pending joins as nodes of the cluster view (state "pending").
    std::vector<NodeView> pending_views() const;

    // ---- Applying a layout (coordinator_assign.cpp) ----
    void on_ready(Member &m, const WireReady &ready);
    void on_shard_request(Member &m, const WireShardRequest &req);
    /// A plan when there is none: the measured one when every node has a
    /// profile, else (allow_static) the static split.
    void make_plan(const std::string &why, bool allow_static = true);
    /// The measured layout, applied. Returns false when there is none (logged).
    bool make_measured_plan(const std::string &why, bool allow_static);
    void make_static_plan(const std::string &why);
    void plan_failed(const std::string &state_reason);
    /// Makes `layout` the plan: prepares shards, sets a new epoch (graceful:
    /// the end of a paused re-plan), sends ASSIGN, logs the plan table.
    void apply_layout(const std::vector<PlannedStage> &layout, const std::string &why,
                      bool graceful, const Plan &plan);
    void send_assigns();
    /// Stage `stage` of the plan of `epoch` reports its outgoing data link
    /// down for down_ms: the next stage's member (the last stage itself,
    /// whose link goes to the coordinator) is lost.
    void on_link_down(int stage, uint64_t epoch, int64_t down_ms);
    /// Key fingerprints of the workers of plan_ (stages 1..), in stage order.
    std::vector<std::string> plan_worker_ids() const;
    /// Hot spares (coordinator_standby.cpp): a standby ASSIGN to every
    /// measured worker outside the running plan.
    void send_standby();
    /// A READY of m's standby range; false when it is not one.
    bool on_standby_ready(Member &m, const WireReady &ready);
    /// After a loss: tells ClusterState what replaced the lost stage in the
    /// new plan_: "rejoined" (the lost worker, back), "spare" (a node outside
    /// the old plan), else "replan" (the survivors).
    void note_recovery_replacement();
    void check_ready();
    void invalidate_plan(const std::string &reason);
    /// Writes the shards of `layout` that their workers do not hold.
    void prepare_shards(const std::vector<PlannedStage> &layout);

    // ---- Measurements for the measured planner (coordinator_profiles.cpp) ----
    void measure_self();
    void on_status(Member &m, const WireStatus &status);
    void collect_rtts();
    /// Stage 0's decode times (ClusterState::take_local_decode_samples) as a
    /// drift sample of the coordinator, every kLocalSampleMs.
    void collect_local_samples();
    void send_probes();
    std::vector<std::string> member_ids(bool with_profile_only) const;
    bool all_profiled() const;
    /// Every member's link to the coordinator was measured (or its profile
    /// is a few seconds old): the first measured plan waits for it.
    bool links_measured() const;

    // ---- Re-planning (coordinator_replan.cpp) ----
    /// The running plan (nodes, ranges) as a cluster Plan, predicted when
    /// every node of it has a profile.
    Plan running_plan() const;
    void consider_replan();
    /// The first measured plan while the static one runs.
    void consider_first_measured(const Plan &current, std::optional<double> current_ms);
    void begin_apply(const Plan &plan, const std::string &trigger,
                     std::optional<double> current_ms);
    void continue_apply();
    void abort_apply(const std::string &why);
    void record_replan(const std::string &trigger, const std::string &decision, bool adopted,
                       std::optional<double> current_ms, std::optional<double> candidate_ms,
                       uint64_t epoch);

    // ---- The cluster view (coordinator_view.cpp) ----
    void publish_view();
    void publish_detail();
    NodeView coordinator_view() const;
    NodeView member_view(const Member &m, const Plan &running) const;

    zmq::context_t &ctx_;
    const CoordinatorOptions &opts_;
    const PlannedModel &model_;
    const CurveKeypair &node_keys_;
    AdmissionControl *admission_;
    ShardService &shards_;
    ClusterState &state_;
    std::string data_endpoint_;
    std::string coordinator_id_;    // key fingerprint of the node key
    std::string coordinator_name_;  // --name or the host name
    LayoutConfig layout_config_;    // --split, the coordinator's weights, ASSIGN fields
    zmq::socket_t router_;
    uint16_t port_ = 0;

    // Used only by the control thread once started.
    std::vector<Member> members_;
    std::vector<PendingJoin> pending_joins_;  // oldest first, at most kMaxPendingNodes
    std::vector<PlannedStage> plan_;          // empty: no plan
    // Key fingerprints of the workers of the plan a loss ended (the lost one
    // too), while its recovery waits for a new plan (none: no recovery): a new
    // plan with the lost node is "rejoined", with a node outside it "spare",
    // else "replan" (the survivors).
    std::optional<std::vector<std::string>> recovering_from_;
    std::string recovering_lost_;  // the lost worker's fingerprint ("" when none)
    uint64_t plan_epoch_ = 0;
    bool plan_ready_ = false;
    uint32_t next_node_id_ = 1;
    WireSender sender_;        // session and sequence of every control message we send
    uint64_t heartbeats_ = 0;  // HEARTBEAT counter
    MessageFence fence_;       // of every received control message (handle())
    clock::time_point last_heartbeat_{};
    clock::time_point last_token_reload_{};
    clock::time_point plan_failed_at_{};  // a failed plan is retried after a pause
    bool plan_failed_ = false;

    // Measured planner (control thread only once started).
    std::shared_ptr<const GgufFile> file_;
    std::unique_ptr<MeasuredPlanner> planner_;
    Plan plan_info_;  // the running plan as a cluster Plan (view, policy)
    std::optional<PendingApply> pending_;
    std::deque<ReplanRecord> replans_;
    int64_t started_unix_ms_ = 0;
    bool planned_once_ = false;
    std::deque<NodeView> lost_;
    clock::time_point last_replan_check_{};
    clock::time_point last_local_sample_{};
    bool view_dirty_ = true;

    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace colony
