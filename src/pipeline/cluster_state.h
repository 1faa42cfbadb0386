// The state that the coordinator's control thread (membership, plan) and its
// scheduler thread (requests, stage 0) share. Every plan change starts a new
// epoch: the scheduler fails what was in flight under the old one, ACTIVATIONS
// and TOKENS of older epochs are dropped everywhere, and the cluster serves
// again once every stage of the new plan is READY.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/layer_range.h"
#include "pipeline/cluster_view.h"
#include "pipeline/node_status.h"

namespace colony {

/// The coordinator's own part of a plan.
struct LocalPlan {
    uint64_t epoch = 0;
    LayerRange range;              // the coordinator's stage (always starts at layer 0)
    bool is_last = false;          // a plan of one stage: the coordinator samples
    std::string next_endpoint;     // data socket of stage 1 (empty when is_last)
    std::string next_key_z85;      // its CURVE server key (empty in insecure mode)
    std::string last_user_id;      // key fingerprint of the last stage, the only sender of
                                   // TOKENS (empty: not checked, insecure mode or no workers)
    double ms_per_token_hint = 0;  // predicted compute of one token through every stage, ms
                                   // (0: no profiles); seeds the scheduler's StallWatch
};

/// Graceful re-plans (docs/cluster.md, "Applying a new plan"): the control
/// thread pauses admission, waits until the scheduler has seen the pause and
/// runs no request, then sets the new plan with graceful = true. From the
/// pause until the new plan is ready (or dropped), Snapshot::replanning is
/// true: submit() queues requests instead of refusing them, and the
/// scheduler keeps its queue across the epoch change. Running requests
/// always complete on the plan they started on.
class ClusterState {
  public:
    struct Snapshot {
        uint64_t epoch = 0;
        bool ready = false;
        bool replanning = false;         // a graceful re-plan is under way: queue, do not refuse
        std::optional<LocalPlan> plan;   // none while waiting for workers
        std::string status;              // "ok", "no workers", "degraded"
        std::string reason;              // why not ok
        std::string detail_json = "{}";  // members and stages as JSON (for /health)
        // Why the previous plan ended (invalidate's reason, or the reason of a
        // set_plan that replaced a plan): the error of requests it took down,
        // even when a new plan followed at once.
        std::string end_reason;
    };

    /// Control: a new plan (new epoch, not ready until every stage is READY).
    /// graceful: the end of a re-plan started with pause_admission(); keeps
    /// Snapshot::replanning until set_ready(). Returns the epoch.
    uint64_t set_plan(LocalPlan plan, std::string reason, bool graceful = false);
    /// Control: the members and stages as a JSON object, shown by /health.
    void set_detail(std::string json);
    /// Control: no plan (a worker was lost, or too few workers); a new epoch.
    void invalidate(const std::string &status, const std::string &reason);
    /// Control: every stage of the plan of `epoch` is READY.
    /// ms_per_token_hint: the workers' measured time of one prompt token
    /// through their stages (raises LocalPlan::ms_per_token_hint).
    void set_ready(uint64_t epoch, double ms_per_token_hint = 0);

    /// Scheduler: its stage of `epoch` is loaded and connected.
    void set_local_ready(uint64_t epoch);
    uint64_t local_ready_epoch() const;
    /// Scheduler: the pipeline of `epoch` stalled or failed; the cluster is
    /// not ready from now on, and control re-plans.
    void request_replan(uint64_t epoch, const std::string &reason);
    /// Control: takes a pending re-plan request of the current epoch.
    std::optional<std::string> take_replan_request();
    /// Scheduler: stage 0's data link to stage 1 of `epoch` is down for
    /// down_ms (LinkWatch). Control: takes it (once).
    struct LinkDown {
        uint64_t epoch = 0;
        int64_t down_ms = 0;
    };
    void report_link_down(uint64_t epoch, int64_t down_ms);
    std::optional<LinkDown> take_link_down();

    /// Control: stop admitting queued requests (submit() still queues them);
    /// Snapshot::replanning becomes true. `reason` is shown by /health.
    void pause_admission(const std::string &reason);
    /// Control: admit again (a re-plan was given up); replanning ends.
    void resume_admission();
    /// Control: admission is paused, the scheduler has seen it, and no
    /// request is running.
    bool drained() const;
    /// Scheduler, once per turn before admitting: how many requests run.
    /// Returns true while admission is paused (admit nothing then).
    bool scheduler_tick(size_t n_running);

    /// Scheduler: stage 0 ran a ubatch of n_tokens in `ms` (wall time of the
    /// stage step). Decode ubatches (at most 4 tokens) are kept for the
    /// measured planner (at most 1024). Thread-safe.
    void record_local_step(double ms, uint32_t n_tokens);
    /// Control: the decode ubatch times of stage 0 since the last call, ms.
    std::vector<double> take_local_decode_samples();

    /// Control: publishes the cluster view (nodes, plan, re-plan log).
    void set_view(ClusterView view);
    /// The latest cluster view (cluster_view.h: every node with its state,
    /// layer range, measured profile and link; the running plan with its
    /// predictions; the re-plan log), with the current epoch, readiness and
    /// replanning flag. Thread-safe; returns a copy. JSON:
    /// cluster_view_to_json(state.cluster_view()).
    ClusterView cluster_view() const;

    Snapshot snapshot() const;
    uint64_t epoch() const;

    // ---- Recoveries (cluster_view.h: RecoveryRecord) ----
    /// Control or scheduler: a loss that ends the plan of `epoch`; opens a
    /// record unless one is open for it already.
    void open_recovery(uint64_t epoch, const std::string &lost, const std::string &reason,
                       int64_t detect_ms);
    /// Control: the open record's replacement ("spare" or "replan").
    void note_replacement(const std::string &replacement);
    /// Scheduler: the replayed requests run again on the new plan.
    void note_resumed(uint32_t requests, uint64_t tokens);
    /// Scheduler: a replayed stream's gap between two tokens, ms (the record
    /// keeps the largest).
    void note_stall(int64_t ms);
    /// Scheduler: the open record's requests failed (closes it).
    void note_recovery_failed();

    // ---- Run-time reports of the workers (request path: /v1/cluster, /metrics) ----
    /// Control: feeds it STATUS messages and lost members. API: reads it.
    /// Thread-safe on its own (not guarded by mutex_).
    NodeReports &node_reports() { return node_reports_; }
    const NodeReports &node_reports() const { return node_reports_; }

  private:
    NodeReports node_reports_;
    mutable std::mutex mutex_;
    Snapshot s_;                                // guarded by mutex_
    uint64_t local_ready_epoch_ = 0;            // guarded by mutex_
    std::optional<std::string> replan_reason_;  // guarded by mutex_
    uint64_t replan_epoch_ = 0;                 // guarded by mutex_
    std::optional<LinkDown> link_down_;         // guarded by mutex_
    bool admission_paused_ = false;             // guarded by mutex_
    bool pause_seen_ = false;                   // guarded by mutex_: the scheduler saw the pause
    size_t n_running_ = 0;                      // guarded by mutex_: as the scheduler last said
    ClusterView view_;                          // guarded by mutex_
    std::vector<RecoveryRecord> recoveries_;    // guarded by mutex_
    RecoveryTotals recovery_totals_;            // guarded by mutex_
    bool recovery_open_ = false;                // guarded by mutex_: the last record is open
    RecoveryRecord *open_record();              // with mutex_ held; null when none is open
    std::vector<double> local_decode_ms_;       // guarded by mutex_
};

}  // namespace colony
