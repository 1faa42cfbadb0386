#include "pipeline/cluster_state.h"

namespace colony {

uint64_t ClusterState::set_plan(LocalPlan plan, std::string reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s_.epoch;
    plan.epoch = s_.epoch;
    s_.plan = std::move(plan);
    s_.ready = false;
    s_.status = "degraded";
    s_.reason = std::move(reason);
    replan_reason_.reset();
    return s_.epoch;
}

void ClusterState::invalidate(const std::string &status, const std::string &reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s_.epoch;
    s_.plan.reset();
    s_.ready = false;
    s_.status = status;
    s_.reason = reason;
    replan_reason_.reset();
}

void ClusterState::set_detail(std::string json) {
    std::lock_guard<std::mutex> lock(mutex_);
    s_.detail_json = std::move(json);
}

void ClusterState::set_ready(uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (epoch != s_.epoch || !s_.plan)
        return;
    s_.ready = true;
    s_.status = "ok";
    s_.reason.clear();
}

void ClusterState::set_local_ready(uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mutex_);
    local_ready_epoch_ = epoch;
}

uint64_t ClusterState::local_ready_epoch() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return local_ready_epoch_;
}

void ClusterState::request_replan(uint64_t epoch, const std::string &reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (epoch != s_.epoch || replan_reason_)
        return;
    replan_reason_ = reason;
    replan_epoch_ = epoch;
    // Not ready from now on: no request is accepted into a pipeline that failed.
    s_.ready = false;
    s_.status = "degraded";
    s_.reason = reason + "; re-planning";
}

std::optional<std::string> ClusterState::take_replan_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<std::string> r;
    if (replan_reason_ && replan_epoch_ == s_.epoch)
        r = replan_reason_;
    replan_reason_.reset();
    return r;
}

ClusterState::Snapshot ClusterState::snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return s_;
}

uint64_t ClusterState::epoch() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return s_.epoch;
}

}  // namespace colony
