#include "pipeline/cluster_state.h"

#include <algorithm>

#include "util/clock.h"

namespace colony {

uint64_t ClusterState::set_plan(LocalPlan plan, std::string reason, bool graceful) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s_.epoch;
    plan.epoch = s_.epoch;
    if (s_.plan)
        s_.end_reason = reason;
    s_.plan = std::move(plan);
    s_.ready = false;
    s_.replanning = graceful;
    s_.status = "degraded";
    s_.reason = std::move(reason);
    replan_reason_.reset();
    // Nothing is admitted until the new plan is ready anyway.
    admission_paused_ = false;
    return s_.epoch;
}

void ClusterState::invalidate(const std::string &status, const std::string &reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s_.epoch;
    if (s_.plan)
        s_.end_reason = reason;
    s_.plan.reset();
    s_.ready = false;
    s_.replanning = false;
    s_.status = status;
    s_.reason = reason;
    replan_reason_.reset();
    admission_paused_ = false;
}

void ClusterState::pause_admission(const std::string &reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    admission_paused_ = true;
    pause_seen_ = false;
    s_.replanning = true;
    if (s_.ready)
        s_.reason = "re-planning (" + reason + "): new requests wait";
}

void ClusterState::resume_admission() {
    std::lock_guard<std::mutex> lock(mutex_);
    admission_paused_ = false;
    pause_seen_ = false;
    s_.replanning = false;
    if (s_.ready)
        s_.reason.clear();
}

bool ClusterState::drained() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return admission_paused_ && pause_seen_ && n_running_ == 0;
}

bool ClusterState::scheduler_tick(size_t n_running) {
    std::lock_guard<std::mutex> lock(mutex_);
    n_running_ = n_running;
    if (admission_paused_)
        pause_seen_ = true;
    return admission_paused_;
}

void ClusterState::record_local_step(double ms, uint32_t n_tokens) {
    constexpr uint32_t kDecodeMaxTokens = 4;  // as worker_status.h's kDecodeUbatchMaxTokens
    constexpr size_t kMaxSamples = 1024;
    if (n_tokens == 0 || n_tokens > kDecodeMaxTokens)
        return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (local_decode_ms_.size() >= kMaxSamples)
        local_decode_ms_.erase(local_decode_ms_.begin());
    local_decode_ms_.push_back(ms);
}

std::vector<double> ClusterState::take_local_decode_samples() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<double> out;
    out.swap(local_decode_ms_);
    return out;
}

void ClusterState::set_view(ClusterView view) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_ = std::move(view);
}

ClusterView ClusterState::cluster_view() const {
    std::lock_guard<std::mutex> lock(mutex_);
    ClusterView v = view_;
    v.epoch = s_.epoch;
    v.ready = s_.ready;
    v.replanning = s_.replanning;
    v.recoveries = recoveries_;
    v.recovery_totals = recovery_totals_;
    return v;
}

void ClusterState::report_link_down(uint64_t epoch, int64_t down_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (epoch == s_.epoch)
        link_down_ = LinkDown{epoch, down_ms};
}

std::optional<ClusterState::LinkDown> ClusterState::take_link_down() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<LinkDown> out;
    out.swap(link_down_);
    return out;
}

RecoveryRecord *ClusterState::open_record() {
    return recovery_open_ && !recoveries_.empty() ? &recoveries_.back() : nullptr;
}

void ClusterState::open_recovery(uint64_t epoch, const std::string &lost, const std::string &reason,
                                 int64_t detect_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RecoveryRecord *r = open_record()) {
        if (r->resumed_unix_ms == 0)
            return;  // a second loss during a recovery: one record, one stall
    }
    RecoveryRecord r;
    r.epoch = epoch;
    r.lost = lost;
    r.reason = reason;
    r.detected_unix_ms = unix_ms();
    r.detect_ms = detect_ms;
    recoveries_.push_back(std::move(r));
    if (recoveries_.size() > kMaxRecoveryRecords)
        recoveries_.erase(recoveries_.begin());
    ++recovery_totals_.recoveries;
    recovery_open_ = true;
}

void ClusterState::note_replacement(const std::string &replacement) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RecoveryRecord *r = open_record(); r && r->resumed_unix_ms == 0)
        r->replacement = replacement;
}

void ClusterState::note_resumed(uint32_t requests, uint64_t tokens) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RecoveryRecord *r = open_record(); r && r->resumed_unix_ms == 0) {
        r->resumed_unix_ms = unix_ms();
        r->requests_replayed = requests;
        r->tokens_recomputed = tokens;
        recovery_totals_.requests_replayed += requests;
        recovery_totals_.tokens_recomputed += tokens;
    }
}

void ClusterState::note_stall(int64_t ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RecoveryRecord *r = open_record())
        r->stall_ms = std::max(r->stall_ms, ms);
}

void ClusterState::note_recovery_failed() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RecoveryRecord *r = open_record(); r && !r->failed) {
        r->failed = true;
        ++recovery_totals_.failed;
    }
    recovery_open_ = false;
}

void ClusterState::set_detail(std::string json) {
    std::lock_guard<std::mutex> lock(mutex_);
    s_.detail_json = std::move(json);
}

void ClusterState::set_ready(uint64_t epoch, double ms_per_token_hint) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (epoch != s_.epoch || !s_.plan)
        return;
    s_.plan->ms_per_token_hint = std::max(s_.plan->ms_per_token_hint, ms_per_token_hint);
    s_.ready = true;
    s_.replanning = false;
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
    s_.replanning = false;
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
