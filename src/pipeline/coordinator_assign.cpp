// Applying a layout: the plan's state on the control thread. make_plan asks
// coordinator_layout.h for a layout when there is no plan, apply_layout
// writes the shards the workers lack, sets a new epoch, sends each worker
// its ASSIGN and serves the shards they ask for; the cluster is ready when
// stage 0 and every worker reported READY for the epoch.
#include <algorithm>

#include "cluster/layer_split.h"
#include "cluster/plan_table.h"
#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/coordinator_probe.h"
#include "pipeline/measured_planner.h"
#include "pipeline/shard_service.h"
#include "util/log.h"

namespace colony {

void CoordinatorControl::make_plan(const std::string &why, bool allow_static) {
    if (planner_ && planner_->has_coordinator() && all_profiled()) {
        if (!links_measured())
            return;  // at most a few seconds: tick() asks again
        // Every node has measured itself: the optimal plan right away.
        if (make_measured_plan(why, allow_static) || !allow_static)
            return;
    }
    if (allow_static)
        make_static_plan(why);
}

bool CoordinatorControl::make_measured_plan(const std::string &why, bool allow_static) {
    try {
        const Layout layout = plan_layout(layout_config_, layout_members(), planner_.get());
        apply_layout(layout.stages, why, false, layout.plan);
        planner_->policy().adopt(plan_info_);
        planner_->policy().settle_joins(member_ids(true));
        record_replan(why, "measured plan over " + std::to_string(members_.size() + 1) + " node(s)",
                      true, std::nullopt, layout.plan.predicted_ms_per_token, plan_epoch_);
        plan_failed_ = false;
        planned_once_ = true;
        return true;
    } catch (const Error &e) {
        if (!allow_static) {
            COLONY_LOG_WARN("control: no plan fits the remaining nodes: %s", e.what());
            plan_failed(std::string("no plan fits the remaining nodes (") + e.what() + "); " +
                        waiting_reason());
            return false;
        }
        COLONY_LOG_WARN("control: no measured plan (%s); using the static split", e.what());
        return false;
    }
}

void CoordinatorControl::make_static_plan(const std::string &why) {
    // The coordinator, then workers in join order (those that hold a range in
    // their shard cache get it where the split allows).
    try {
        const Layout layout = plan_layout(layout_config_, layout_members(), nullptr);
        apply_layout(layout.stages, why, false, layout.plan);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("control: cannot plan: %s", e.what());
        plan_failed(std::string("cannot plan: ") + e.what());
        return;
    }
    plan_failed_ = false;
    planned_once_ = true;
    if (planner_)
        planner_->reset_policy();  // measured planning starts once every node has a profile
}

void CoordinatorControl::plan_failed(const std::string &state_reason) {
    state_.invalidate("degraded", state_reason);
    plan_failed_ = true;
    plan_failed_at_ = clock::now();
}

void CoordinatorControl::apply_layout(const std::vector<PlannedStage> &layout,
                                      const std::string &why, bool graceful, const Plan &plan) {
    if (layout.empty() || layout.front().member != -1)
        throw Error(ErrorCode::kInternal, "a plan must start on the coordinator");
    prepare_shards(layout);
    plan_ = layout;
    for (Member &m : members_) {
        m.stage = -1;
        m.standby.reset();  // send_standby picks again once the plan serves
        m.ready_epoch = 0;
        m.last_seen = clock::now();  // writing shards may have kept us busy
    }
    for (size_t i = 1; i < plan_.size(); ++i) {
        Member &m = members_[plan_[i].member];
        m.stage = static_cast<int>(i);
        m.probing = false;
        m.shard_sent = 0;
        m.shard_total = 0;
    }
    note_recovery_replacement();
    LocalPlan local = local_plan(layout_config_, layout_members(), plan_);
    plan_ready_ = false;
    plan_info_ = plan;
    Plan shown = running_plan();
    for (const PlanStage &s : shown.stages)
        local.ms_per_token_hint += s.compute_ms;
    (void)state_.take_local_decode_samples();  // of the previous plan's stage 0
    plan_epoch_ = state_.set_plan(local, "loading stages (" + why + ")", graceful);
    plan_info_.epoch = plan_epoch_;
    shown.epoch = plan_epoch_;
    std::vector<LayerRange> ranges;
    for (const PlannedStage &s : plan_)
        ranges.push_back(s.range);
    COLONY_LOG_INFO("control: plan %llu: %s over %zu stage(s) (%s)",
                    static_cast<unsigned long long>(plan_epoch_),
                    format_layer_split(ranges).c_str(), ranges.size(), why.c_str());
    if (shown.latency_ms_per_token > 0)
        COLONY_LOG_INFO("control: plan table\n%s", render_plan_table(shown).c_str());
    send_assigns();
    view_dirty_ = true;
    publish_detail();
    check_ready();
}

std::vector<std::string> CoordinatorControl::plan_worker_ids() const {
    std::vector<std::string> ids;
    for (size_t i = 1; i < plan_.size(); ++i)
        ids.push_back(members_[plan_[i].member].fingerprint);
    return ids;
}

void CoordinatorControl::note_recovery_replacement() {
    if (!recovering_from_)
        return;
    bool spare = false, rejoined = false;  // a worker that was not in the plan the loss ended
    for (size_t i = 1; i < plan_.size(); ++i) {
        const std::string &id = members_[plan_[i].member].fingerprint;
        if (!recovering_lost_.empty() && id == recovering_lost_) {
            rejoined = true;
        } else if (std::find(recovering_from_->begin(), recovering_from_->end(), id) ==
                   recovering_from_->end()) {
            spare = true;
        }
    }
    state_.note_replacement(rejoined ? "rejoined" : spare ? "spare" : "replan");
    recovering_from_.reset();
    recovering_lost_.clear();
}

void CoordinatorControl::send_assigns() {
    for (StageAssign &a : stage_assigns(layout_config_, layout_members(), plan_, plan_epoch_)) {
        // A shard written here may also come from the hub the model came
        // from: the worker builds it from byte ranges and checks this hash.
        const LayerRange range{a.assign.layer_first, a.assign.layer_last};
        if (const auto shard = opts_.model_url.empty() ? std::nullopt : shards_.prepared(range)) {
            a.assign.shard_url = opts_.model_url;
            a.assign.shard_sha256 = shard->sha256;
            a.assign.shard_size = shard->size;
        }
        // Without its ASSIGN the stage never gets READY: the member is lost
        // on the next tick and the plan made again.
        send_or_lose(members_[a.member], std::move(a.assign),
                     "the ASSIGN of plan " + std::to_string(plan_epoch_));
    }
}

void CoordinatorControl::check_ready() {
    if (plan_.empty() || plan_ready_)
        return;
    if (state_.local_ready_epoch() != plan_epoch_)
        return;
    for (size_t i = 1; i < plan_.size(); ++i) {
        if (members_[plan_[i].member].ready_epoch != plan_epoch_)
            return;
    }
    plan_ready_ = true;
    double ms_per_token = 0;  // the workers' stages; the scheduler measures stage 0 itself
    for (size_t i = 1; i < plan_.size(); ++i) {
        const Member &m = members_[plan_[i].member];
        if (m.stage_report_epoch == plan_epoch_)
            ms_per_token += m.stage_ms_per_token;
    }
    state_.set_ready(plan_epoch_, ms_per_token);
    COLONY_LOG_INFO("control: cluster ready: plan %llu with %zu stage(s)",
                    static_cast<unsigned long long>(plan_epoch_), plan_.size());
    view_dirty_ = true;
    publish_detail();
}

void CoordinatorControl::invalidate_plan(const std::string &reason) {
    if (pending_) {
        record_replan(pending_->trigger, "given up: the running plan broke (" + reason + ")", false,
                      pending_->current_ms, pending_->plan.predicted_ms_per_token, 0);
        pending_.reset();
    }
    plan_.clear();
    plan_ready_ = false;
    for (Member &m : members_)
        m.stage = -1;
    const bool enough = members_.size() >= opts_.workers_expected;
    state_.invalidate(members_.empty() && opts_.workers_expected > 0 ? "no workers" : "degraded",
                      reason + (enough ? "; re-planning" : "; " + waiting_reason()));
    view_dirty_ = true;
    publish_detail();
}

void CoordinatorControl::prepare_shards(const std::vector<PlannedStage> &layout) {
    // A worker that holds its range loads it from its cache: its shard is
    // written and hashed here only if it asks after all (on_shard_request).
    for (size_t i = 1; i < layout.size(); ++i) {
        if (!members_[layout[i].member].holds(layout[i].range))
            shards_.prepare(layout[i].range, [this] { keepalive(); });
    }
}

void CoordinatorControl::on_ready(Member &m, const WireReady &ready) {
    if (on_standby_ready(m, ready))
        return;
    if (m.stage < 0 || ready.plan_epoch != plan_epoch_ ||
        ready.layer_first != plan_[m.stage].range.first ||
        ready.layer_last != plan_[m.stage].range.last) {
        COLONY_LOG_DEBUG("control: stale READY from node %u (epoch %llu)", m.node_id,
                         static_cast<unsigned long long>(ready.plan_epoch));
        return;
    }
    m.ready_epoch = ready.plan_epoch;
    if (!m.holds(plan_[m.stage].range))
        m.cached.push_back(plan_[m.stage].range);
    COLONY_LOG_INFO("control: node %u ready with layers %s", m.node_id,
                    plan_[m.stage].range.str().c_str());
    view_dirty_ = true;
    check_ready();
}

void CoordinatorControl::on_shard_request(Member &m, const WireShardRequest &req) {
    const LayerRange probe = file_ ? probe_range(*file_, model_.hp) : LayerRange{};
    const LayerRange asked{req.layer_first, req.layer_last};
    const bool assigned = (m.stage >= 0 && asked == plan_[m.stage].range) ||
                          (m.stage < 0 && m.standby && asked == *m.standby);
    const bool probing = m.probing && asked == probe;
    if (!assigned && !probing && m.stage >= 0 && asked == probe) {
        // A probe download crossed the ASSIGN that made it a stage: the worker dropped it.
        COLONY_LOG_DEBUG("control: node %u: dropped a late probe shard request", m.node_id);
        return;
    }
    if (!assigned && !probing) {
        COLONY_LOG_WARN("control: node %u asked for layers [%u,%u), which are not assigned to it",
                        m.node_id, req.layer_first, req.layer_last);
        send_or_lose(m, WireError{ErrorCode::kNotFound, "that shard is not assigned to you"},
                     "the refusal of a shard request");
        return;
    }
    try {
        // prepared when the plan was made, unless the worker held the range
        // (a no-op then); a cache the worker found stale is served from here
        shards_.prepare(asked, [this] { keepalive(); });
        for (WireBody &body : shards_.serve(req)) {
            if (const auto *c = std::get_if<WireShardChunk>(&body)) {
                m.shard_sent = std::max<uint64_t>(m.shard_sent, c->offset + c->bytes.size());
                m.shard_total = c->total;
                view_dirty_ = true;
            }
            // The worker asks for the next window only when this one arrived:
            // a lost chunk would stall its download.
            if (!send_or_lose(m, std::move(body), "a shard chunk of layers " + asked.str()))
                return;
        }
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: shard request of node %u: %s", m.node_id, e.what());
        send_or_lose(m, WireError{e.code(), e.what()}, "the error of a shard request");
    }
}

}  // namespace colony
