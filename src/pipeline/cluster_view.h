// What the coordinator knows about its cluster, for people: every node (role,
// state, layer range, measured device profile, link), the running plan with
// its predictions, and the log of re-plan decisions with their reasons. The
// control thread publishes it in ClusterState (cluster_state.h); /health,
// /v1/cluster and the dashboard read it with ClusterState::cluster_view().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/plan.h"
#include "cluster/profile.h"
#include "nlohmann/json_fwd.hpp"

namespace colony {

/// One node as the coordinator sees it.
struct NodeView {
    std::string id;    // key fingerprint of the node key (16 hex digits)
    std::string name;  // --name, or the host name
    std::string role;  // "coordinator" or "worker"
    // "probing"  a spare measuring itself on a one-block probe shard
    // "loading"  assigned a layer range; fetching its shard or loading it
    // "ready"    its stage of the running plan is loaded and connected
    // "spare"    joined, measured, not in the plan (the planner left it out)
    // "lost"     left or stopped answering, or was revoked (kept for a while, see detail)
    // "pending"  asked to join; waits for a person to approve its pairing
    //            code (`colony serve --confirm-pairing`, `colony node approve`)
    std::string state;
    double load_progress = 0;          // "loading": shard bytes sent / shard size (0..1)
    std::optional<LayerRange> layers;  // its stage's blocks [first, last); none when not a stage
    int stage = -1;                    // position in the pipeline; -1: not a stage
    std::string address;               // where its control connection comes from
    std::optional<DeviceProfile> profile;  // measured (per-layer times as the planner uses them)
    std::optional<double> rtt_ms;          // median heartbeat round trip to the coordinator
    std::optional<double> throughput_bytes_per_s;        // shard download, coordinator -> node
    std::optional<double> measured_decode_ms_per_layer;  // rolling, from real decode steps
    double slowdown = 1.0;      // debug slow-down factor the node reports (1 = none)
    std::string detail;         // e.g. why it was lost, why it is not in the plan
    std::string pairing_code;   // "ddd-ddd" (net/pairing_code.h); "" for the coordinator
                                // and in insecure mode
    int64_t since_unix_ms = 0;  // when it joined (or was lost)
};

/// One re-plan decision (adopted or not).
struct ReplanRecord {
    int64_t time_unix_ms = 0;
    uint64_t epoch = 0;    // epoch of the plan it produced; 0 when nothing changed
    std::string trigger;   // what asked for it: join, leave, drift, battery, ...
    std::string decision;  // what was decided and why
    bool adopted = false;
    std::optional<double> current_ms;    // the running plan, re-predicted (none: broken)
    std::optional<double> candidate_ms;  // the candidate's prediction
};

/// One recovery from a lost stage (DESIGN.md, decision 10): the control
/// thread opens it when it loses a worker of the plan (or the scheduler asks
/// for a re-plan), the next plan names the replacement, and the scheduler
/// closes it when the replayed requests run again.
struct RecoveryRecord {
    uint64_t epoch = 0;            // the epoch the loss ended
    std::string lost;              // the lost worker's name ("" when the scheduler saw a stall)
    std::string reason;            // why, as the requests would have been told
    int64_t detected_unix_ms = 0;  // when the loss was known
    int64_t detect_ms = 0;         // silence before it was known (heartbeats; 0: at once)
    int64_t resumed_unix_ms = 0;   // when the new plan served again (0: not yet)
    // "spare" (a node outside the plan), "rejoined" (the lost worker, back),
    // "replan" (the survivors), "none" (no new plan yet)
    std::string replacement = "none";
    uint32_t requests_replayed = 0;  // running requests replayed on the new plan
    uint64_t tokens_recomputed = 0;  // positions re-prefilled (prompts and generated tokens)
    int64_t stall_ms = 0;            // largest gap between two tokens of a replayed stream
    bool failed = false;             // the requests failed (no plan in time, or recovery off)
};

/// Counters of every recovery since the coordinator started (/metrics).
struct RecoveryTotals {
    uint64_t recoveries = 0;         // losses that opened a recovery
    uint64_t failed = 0;             // of them, those whose requests failed
    uint64_t requests_replayed = 0;  // requests replayed on a new plan
    uint64_t tokens_recomputed = 0;  // positions re-prefilled
};

struct ClusterView {
    uint64_t epoch = 0;           // plan epoch (ClusterState)
    bool ready = false;           // every stage of the plan is ready
    bool replanning = false;      // a new plan is being applied (requests wait, none fail)
    std::string planner;          // "measured" (profiles + plan_optimal) or "static" (--split etc.)
    std::string objective;        // "latency" or "throughput"
    std::vector<NodeView> nodes;  // the coordinator, members in join order, pending, then lost
    std::optional<Plan> plan;     // the running plan with its latest predictions
    std::vector<ReplanRecord> replans;       // oldest first; the latest kMaxReplanRecords
    std::vector<RecoveryRecord> recoveries;  // oldest first; the latest kMaxRecoveryRecords
    RecoveryTotals recovery_totals;          // since start (also records dropped from the list)
};

inline constexpr size_t kMaxRecoveryRecords = 64;

inline constexpr size_t kMaxReplanRecords = 64;
inline constexpr size_t kMaxLostNodes = 16;

/// JSON of a view (field names as in the structs; "plan" as plan_to_json,
/// "profile" as device_profile_to_json; absent optionals are null; layers as
/// {"first", "last"} with last exclusive).
nlohmann::json cluster_view_to_json(const ClusterView &view);

/// JSON array of recovery records (field names as in RecoveryRecord).
nlohmann::json recoveries_to_json(const std::vector<RecoveryRecord> &records);

}  // namespace colony
