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

#include "model/layer_range.h"

namespace colony {

/// The coordinator's own part of a plan.
struct LocalPlan {
    uint64_t epoch = 0;
    LayerRange range;           // the coordinator's stage (always starts at layer 0)
    bool is_last = false;       // a plan of one stage: the coordinator samples
    std::string next_endpoint;  // data socket of stage 1 (empty when is_last)
    std::string next_key_z85;   // its CURVE server key (empty in insecure mode)
    std::string last_user_id;   // key fingerprint of the last stage, the only sender of
                                // TOKENS (empty: not checked, insecure mode or no workers)
};

class ClusterState {
  public:
    struct Snapshot {
        uint64_t epoch = 0;
        bool ready = false;
        std::optional<LocalPlan> plan;   // none while waiting for workers
        std::string status;              // "ok", "no workers", "degraded"
        std::string reason;              // why not ok
        std::string detail_json = "{}";  // members and stages as JSON (for /health)
    };

    /// Control: a new plan (new epoch, not ready until every stage is READY).
    /// Returns the epoch.
    uint64_t set_plan(LocalPlan plan, std::string reason);
    /// Control: the members and stages as a JSON object, shown by /health.
    void set_detail(std::string json);
    /// Control: no plan (a worker was lost, or too few workers); a new epoch.
    void invalidate(const std::string &status, const std::string &reason);
    /// Control: every stage of the plan of `epoch` is READY.
    void set_ready(uint64_t epoch);

    /// Scheduler: its stage of `epoch` is loaded and connected.
    void set_local_ready(uint64_t epoch);
    uint64_t local_ready_epoch() const;
    /// Scheduler: the pipeline of `epoch` stalled or failed; the cluster is
    /// not ready from now on, and control re-plans.
    void request_replan(uint64_t epoch, const std::string &reason);
    /// Control: takes a pending re-plan request of the current epoch.
    std::optional<std::string> take_replan_request();

    Snapshot snapshot() const;
    uint64_t epoch() const;

  private:
    mutable std::mutex mutex_;
    Snapshot s_;                                // guarded by mutex_
    uint64_t local_ready_epoch_ = 0;            // guarded by mutex_
    std::optional<std::string> replan_reason_;  // guarded by mutex_
    uint64_t replan_epoch_ = 0;                 // guarded by mutex_
};

}  // namespace colony
