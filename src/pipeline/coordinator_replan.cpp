// Re-planning with the measured planner (docs/cluster.md, "Re-planning"):
// once every node has measured itself, the optimal plan replaces the static
// one when it is faster by the margin; after that the ReplanPolicy asks for a
// new plan on join, leave, drift and low battery. A new plan is applied
// between requests: admission pauses, running requests finish (or the wait
// times out), then the plan is assigned. Every decision is recorded for the
// cluster view.
#include <cmath>
#include <cstdio>

#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/measured_planner.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

std::string ms_text(std::optional<double> v) {
    if (!v || !std::isfinite(*v))
        return "none";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f ms", *v);
    return buf;
}

}  // namespace

Plan CoordinatorControl::running_plan() const {
    Plan p = plan_of(layout_config_, layout_members(), plan_, plan_info_);
    p.epoch = plan_epoch_;
    if (planner_ && planner_->has_coordinator() && !p.stages.empty()) {
        if (std::optional<Plan> predicted = planner_->predict(p, member_ids(true), true)) {
            predicted->method = p.method;
            return *predicted;
        }
    }
    return p;
}

void CoordinatorControl::consider_replan() {
    if (!planner_->has_coordinator() || pending_ || plan_.empty() || !plan_ready_ ||
        !all_profiled()) {
        return;
    }
    ReplanPolicy &policy = planner_->policy();
    const std::vector<std::string> ids = member_ids(true);
    const Plan current = running_plan();
    const std::optional<double> current_ms =
        current.latency_ms_per_token > 0 ? std::optional<double>(current.predicted_ms_per_token)
                                         : std::nullopt;
    if (!policy.has_plan()) {
        consider_first_measured(current, current_ms);
        return;
    }
    const ReplanTrigger trigger = policy.check();
    if (!trigger.replan)
        return;
    Plan candidate;
    try {
        candidate = measured_plan(layout_config_, layout_members(), *planner_);
    } catch (const Error &e) {
        record_replan(trigger.reason, std::string("no feasible plan: ") + e.what(), false,
                      current_ms, std::nullopt, 0);
        return;
    }
    const AdoptDecision d =
        policy.decide(trigger, current_ms.value_or(HUGE_VAL), candidate.predicted_ms_per_token);
    if (!d.adopt) {
        record_replan(trigger.reason, d.reason, false, current_ms, candidate.predicted_ms_per_token,
                      0);
        return;
    }
    if (same_layout(candidate, current)) {
        policy.adopt(candidate);
        policy.settle_joins(ids);
        plan_info_ = candidate;
        record_replan(trigger.reason, "the running plan is still the optimal one", false,
                      current_ms, candidate.predicted_ms_per_token, 0);
        return;
    }
    begin_apply(candidate, trigger.reason, current_ms);
}

void CoordinatorControl::consider_first_measured(const Plan &current,
                                                 std::optional<double> current_ms) {
    // The static first plan runs and every node has measured itself.
    if (!links_measured())
        return;
    ReplanPolicy &policy = planner_->policy();
    const std::vector<std::string> ids = member_ids(true);
    const std::string trigger =
        "measured profiles of all " + std::to_string(ids.size() + 1) + " node(s)";
    Plan candidate;
    try {
        candidate = measured_plan(layout_config_, layout_members(), *planner_);
    } catch (const Error &e) {
        policy.adopt(current);
        policy.settle_joins(ids);
        record_replan(trigger, std::string("keeping the static plan: ") + e.what(), false,
                      current_ms, std::nullopt, 0);
        return;
    }
    const double margin = opts_.replan_margin;
    if (!same_layout(candidate, current) &&
        (!current_ms || candidate.predicted_ms_per_token < *current_ms * (1 - margin))) {
        begin_apply(candidate, trigger, current_ms);
        return;
    }
    policy.adopt(current);
    policy.settle_joins(ids);
    plan_info_ = current;
    record_replan(trigger,
                  same_layout(candidate, current)
                      ? "the static plan is already the optimal one"
                      : "keeping the static plan: the optimal one is not " +
                            std::to_string(static_cast<int>(margin * 100)) + "% faster",
                  false, current_ms, candidate.predicted_ms_per_token, 0);
}

void CoordinatorControl::begin_apply(const Plan &plan, const std::string &trigger,
                                     std::optional<double> current_ms) {
    const std::optional<std::vector<PlannedStage>> layout =
        stages_of(layout_config_, layout_members(), plan);
    if (!layout) {
        record_replan(trigger, "given up: a node of the new plan is gone", false, current_ms,
                      plan.predicted_ms_per_token, 0);
        return;
    }
    try {
        prepare_shards(*layout);
    } catch (const Error &e) {
        record_replan(trigger, std::string("given up: cannot write a shard: ") + e.what(), false,
                      current_ms, plan.predicted_ms_per_token, 0);
        return;
    }
    pending_ = PendingApply{plan, trigger, clock::now(), current_ms};
    state_.pause_admission(trigger);
    record_replan(trigger,
                  "re-planning: new requests wait while running ones finish, then the new plan "
                  "is assigned",
                  false, current_ms, plan.predicted_ms_per_token, 0);
}

void CoordinatorControl::continue_apply() {
    if (!pending_)
        return;
    const std::optional<std::vector<PlannedStage>> layout =
        stages_of(layout_config_, layout_members(), pending_->plan);
    if (!layout) {
        abort_apply("a node of the new plan left");
        return;
    }
    if (!state_.drained()) {
        if (ms_since(pending_->since) > opts_.replan_drain_timeout_ms) {
            abort_apply("requests still running after " +
                        std::to_string(opts_.replan_drain_timeout_ms / 1000) + " s");
        }
        return;
    }
    const PendingApply p = *pending_;
    pending_.reset();
    try {
        apply_layout(*layout, "re-plan: " + p.trigger, true, p.plan);
    } catch (const Error &e) {
        state_.resume_admission();
        record_replan(p.trigger, std::string("given up: ") + e.what(), false, p.current_ms,
                      p.plan.predicted_ms_per_token, 0);
        return;
    }
    planner_->policy().adopt(plan_info_);
    planner_->policy().settle_joins(member_ids(true));
    char decision[160];
    std::snprintf(decision, sizeof decision,
                  "adopted after %.1f s of waiting for running requests: %zu stage(s), %zu left "
                  "out",
                  std::chrono::duration<double>(clock::now() - p.since).count(),
                  p.plan.stages.size(), p.plan.left_out.size());
    record_replan(p.trigger, decision, true, p.current_ms, p.plan.predicted_ms_per_token,
                  plan_epoch_);
}

void CoordinatorControl::abort_apply(const std::string &why) {
    if (!pending_)
        return;
    state_.resume_admission();
    record_replan(pending_->trigger, "given up: " + why, false, pending_->current_ms,
                  pending_->plan.predicted_ms_per_token, 0);
    pending_.reset();
    view_dirty_ = true;
}

void CoordinatorControl::record_replan(const std::string &trigger, const std::string &decision,
                                       bool adopted, std::optional<double> current_ms,
                                       std::optional<double> candidate_ms, uint64_t epoch) {
    ReplanRecord r;
    r.time_unix_ms = unix_ms();
    r.epoch = epoch;
    r.trigger = trigger;
    // The policy names nodes by key fingerprint; people know them by name.
    for (const Member &m : members_) {
        const std::string quoted = "'" + m.fingerprint + "'";
        for (size_t at = r.trigger.find(quoted); at != std::string::npos;
             at = r.trigger.find(quoted, at + 1)) {
            r.trigger.replace(at, quoted.size(),
                              "'" + m.join.node_name + "' (" + m.fingerprint + ")");
        }
    }
    r.decision = decision;
    r.adopted = adopted;
    r.current_ms = current_ms;
    r.candidate_ms = candidate_ms;
    COLONY_LOG_INFO("control: re-plan decision (%s): %s [current %s, candidate %s]",
                    r.trigger.c_str(), decision.c_str(), ms_text(current_ms).c_str(),
                    ms_text(candidate_ms).c_str());
    replans_.push_back(std::move(r));
    while (replans_.size() > kMaxReplanRecords)
        replans_.pop_front();
    view_dirty_ = true;
}

}  // namespace colony
