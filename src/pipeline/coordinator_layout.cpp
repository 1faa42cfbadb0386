#include "pipeline/coordinator_layout.h"

#include <algorithm>
#include <functional>

#include "cluster/layer_split.h"
#include "net/keys.h"
#include "pipeline/cached_assignment.h"
#include "pipeline/measured_planner.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

using Acceptable = std::function<bool(const std::vector<int> &members_by_stage)>;

WireKey raw_key(const std::string &z85) {
    return z85.empty() ? WireKey{} : curve_key_from_z85(z85);
}

/// Trades workers in `stages` onto ranges they hold (cached_assignment.h)
/// while acceptable(members by stage) agrees; logs each trade. Returns
/// whether a worker moved.
bool trade_onto_cached(const std::vector<LayoutMember> &members, std::vector<PlannedStage> &stages,
                       const Acceptable &acceptable) {
    std::vector<int> by_stage;
    std::vector<LayerRange> ranges;
    for (const PlannedStage &s : stages) {
        by_stage.push_back(s.member);
        ranges.push_back(s.range);
    }
    prefer_cached_ranges(
        by_stage, ranges, [&](int m, LayerRange r) { return members[m].holds(r); }, acceptable);
    bool moved = false;
    for (size_t i = 0; i < stages.size(); ++i) {
        if (by_stage[i] == stages[i].member)
            continue;
        COLONY_LOG_INFO("control: worker '%s' takes layers %s, which it holds in its cache",
                        members[by_stage[i]].name.c_str(), ranges[i].str().c_str());
        stages[i].member = by_stage[i];
        moved = true;
    }
    return moved;
}

/// A static layout with workers traded onto ranges they hold where the
/// split allows it: always with a manual split (`weights` empty), else only
/// between workers of equal weight (weights[member + 1]).
void prefer_cached(const std::vector<LayoutMember> &members, std::vector<PlannedStage> &stages,
                   const std::vector<double> &weights) {
    std::vector<double> weight_by_stage;  // of the member first planned there
    for (const PlannedStage &s : stages)
        weight_by_stage.push_back(weights.empty() ? 0.0
                                                  : weights.at(static_cast<size_t>(s.member + 1)));
    trade_onto_cached(members, stages, [&](const std::vector<int> &now) {
        if (weights.empty())
            return true;  // manual split: the ranges do not depend on who serves them
        for (size_t i = 0; i < now.size(); ++i) {
            if (now[i] >= 0 && weights.at(static_cast<size_t>(now[i]) + 1) != weight_by_stage[i])
                return false;
        }
        return true;
    });
}

/// Weights of a proportional split over [coordinator, members in join
/// order], as many as there are layers at most: memory limits when the
/// coordinator and every member have one, else thread counts.
std::vector<double> split_weights(const LayoutConfig &config,
                                  const std::vector<LayoutMember> &members) {
    const size_t n_nodes =
        std::min<size_t>(members.size() + 1, std::max<uint32_t>(config.n_layer, 1));
    const bool by_memory = config.coordinator_mem_limit_gib > 0 &&
                           std::all_of(members.begin(), members.end(),
                                       [](const LayoutMember &m) { return m.mem_limit_bytes > 0; });
    std::vector<double> weights;
    weights.push_back(by_memory ? config.coordinator_mem_limit_gib * (1ull << 30)
                                : std::max(config.coordinator_threads, 1));
    for (size_t i = 1; i < n_nodes; ++i) {
        const LayoutMember &m = members[i - 1];
        weights.push_back(by_memory ? double(m.mem_limit_bytes) : std::max<double>(m.n_threads, 1));
    }
    return weights;
}

std::vector<std::string> profiled_ids(const std::vector<LayoutMember> &members,
                                      const MeasuredPlanner &planner) {
    std::vector<std::string> ids;
    for (const LayoutMember &m : members) {
        if (planner.has_profile(m.fingerprint))
            ids.push_back(m.fingerprint);
    }
    return ids;
}

}  // namespace

bool LayoutMember::holds(LayerRange range) const {
    return std::find(cached.begin(), cached.end(), range) != cached.end();
}

Layout plan_layout(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                   const MeasuredPlanner *planner) {
    if (!planner)
        return static_layout(config, members);
    Plan plan = measured_plan(config, members, *planner);
    std::optional<std::vector<PlannedStage>> stages = stages_of(config, members, plan);
    if (!stages)
        throw Error(ErrorCode::kInternal, "the plan names a node that is not a member");
    if (bypass_skipped_stages(config, *stages))
        plan = plan_of(config, members, *stages, std::move(plan));
    return Layout{std::move(*stages), std::move(plan)};
}

Layout static_layout(const LayoutConfig &config, const std::vector<LayoutMember> &members) {
    std::vector<LayerRange> ranges;
    std::vector<double> weights;  // by node; empty for a manual split
    if (config.manual_split) {
        ranges = *config.manual_split;
        if (ranges.empty() || ranges.size() > members.size() + 1) {
            throw Error(ErrorCode::kInvalidArgument,
                        "--split has " + std::to_string(ranges.size()) + " ranges for " +
                            std::to_string(members.size() + 1) + " node(s)");
        }
    } else {
        weights = split_weights(config, members);
        ranges = proportional_layer_split(config.n_layer, weights);
    }
    Layout layout;
    for (size_t i = 0; i < ranges.size(); ++i)
        layout.stages.push_back({static_cast<int>(i) - 1, ranges[i]});
    prefer_cached(members, layout.stages, weights);
    bypass_skipped_stages(config, layout.stages);
    Plan base;
    base.method = config.manual_split ? PlanMethod::kManual : PlanMethod::kProportional;
    base.coordinator_id = config.coordinator_id;
    base.n_layer = static_cast<int>(config.n_layer);
    layout.plan = plan_of(config, members, layout.stages, std::move(base));
    return layout;
}

bool bypass_skipped_stages(const LayoutConfig &config, std::vector<PlannedStage> &stages) {
    bool bypassed = false;
    for (size_t i = 1; i < stages.size();) {
        if (!config.skip.covers(stages[i].range)) {
            ++i;
            continue;
        }
        COLONY_LOG_INFO(
            "control: layers %s are all skipped (--skip-layers): their stage is "
            "bypassed and joins the one before",
            stages[i].range.str().c_str());
        stages[i - 1].range.last = stages[i].range.last;
        stages.erase(stages.begin() + static_cast<std::ptrdiff_t>(i));
        bypassed = true;
    }
    return bypassed;
}

Plan measured_plan(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                   const MeasuredPlanner &planner) {
    const std::vector<std::string> ids = profiled_ids(members, planner);
    const Plan optimum = planner.optimal(ids, true, 0);
    std::optional<std::vector<PlannedStage>> stages = stages_of(config, members, optimum);
    if (!stages)
        return optimum;
    const double limit = optimum.predicted_ms_per_token * (1 + config.cached_range_slack);
    std::optional<Plan> chosen;
    auto with_members = [&](const std::vector<int> &now) {
        Plan q = optimum;
        for (size_t i = 0; i < now.size(); ++i) {
            if (now[i] < 0)
                continue;
            q.stages[i].node_id = members[now[i]].fingerprint;
            q.stages[i].name = members[now[i]].name;
        }
        return q;
    };
    const bool moved = trade_onto_cached(members, *stages, [&](const std::vector<int> &now) {
        std::optional<Plan> q = planner.predict(with_members(now), ids, true);
        if (!q || q->predicted_ms_per_token > limit)
            return false;
        chosen = std::move(q);
        return true;
    });
    if (!moved || !chosen)
        return optimum;
    COLONY_LOG_INFO(
        "control: workers traded ranges to use their shard caches (%.2f ms per token "
        "predicted, the optimum %.2f)",
        chosen->predicted_ms_per_token, optimum.predicted_ms_per_token);
    chosen->method = optimum.method;
    chosen->epoch = optimum.epoch;
    return *chosen;
}

std::optional<std::vector<PlannedStage>> stages_of(const LayoutConfig &config,
                                                   const std::vector<LayoutMember> &members,
                                                   const Plan &plan) {
    std::vector<PlannedStage> stages;
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        const PlanStage &s = plan.stages[i];
        PlannedStage ps;
        ps.range = {static_cast<uint32_t>(s.layers.first), static_cast<uint32_t>(s.layers.last)};
        if (s.node_id == config.coordinator_id) {
            if (i != 0)
                return std::nullopt;
            ps.member = -1;
        } else {
            auto it = std::find_if(members.begin(), members.end(), [&](const LayoutMember &m) {
                return m.fingerprint == s.node_id;
            });
            if (it == members.end())
                return std::nullopt;
            ps.member = static_cast<int>(it - members.begin());
        }
        stages.push_back(ps);
    }
    if (stages.empty() || stages.front().member != -1)
        return std::nullopt;
    return stages;
}

Plan plan_of(const LayoutConfig &config, const std::vector<LayoutMember> &members,
             const std::vector<PlannedStage> &stages, Plan base) {
    base.stages.clear();
    for (const PlannedStage &s : stages) {
        PlanStage st;
        st.node_id = s.member < 0 ? config.coordinator_id : members[s.member].fingerprint;
        st.name = s.member < 0 ? config.coordinator_name : members[s.member].name;
        st.layers = {static_cast<int>(s.range.first), static_cast<int>(s.range.last)};
        base.stages.push_back(st);
    }
    return base;
}

WireAssign assign_for(const LayoutConfig &config, uint64_t epoch, LayerRange range) {
    WireAssign a;
    a.plan_epoch = epoch;
    a.layer_first = range.first;
    a.layer_last = range.last;
    a.model_hash = config.model_hash;
    a.n_layer = config.n_layer;
    a.n_embd = config.n_embd;
    a.n_vocab = config.n_vocab;
    a.dtype = config.wire_type;
    a.n_ctx = config.n_ctx;
    a.n_ubatch = config.n_ubatch;
    a.n_seq_max = config.n_seq_max;
    a.is_last = range.last == config.n_layer;  // a layout's ranges cover the model
    a.sampling = true;
    a.skip_layers = config.skip.within(range).blocks;
    a.dyn_skip = config.dyn_skip.threshold;
    a.dyn_skip_probe = config.dyn_skip.probe;
    a.hot_layers = config.dyn_skip.hot.blocks;
    return a;
}

std::vector<StageAssign> stage_assigns(const LayoutConfig &config,
                                       const std::vector<LayoutMember> &members,
                                       const std::vector<PlannedStage> &stages, uint64_t epoch) {
    if (stages.empty() || stages.front().member != -1)
        throw Error(ErrorCode::kInternal, "a plan must start on the coordinator");
    std::vector<StageAssign> out;
    for (size_t i = 1; i < stages.size(); ++i) {
        WireAssign a = assign_for(config, epoch, stages[i].range);
        if (i + 1 == stages.size()) {
            a.next_endpoint = config.coordinator_data_endpoint;
            a.next_key = config.secure ? raw_key(config.coordinator_key_z85) : WireKey{};
        } else {
            const LayoutMember &next = members[stages[i + 1].member];
            a.next_endpoint = next.data_endpoint;
            a.next_key = config.secure ? raw_key(next.key_z85) : WireKey{};
        }
        if (i > 1 && config.secure)
            a.prev_key = raw_key(members[stages[i - 1].member].key_z85);
        out.push_back({stages[i].member, std::move(a)});
    }
    return out;
}

WireAssign probe_assign(const LayoutConfig &config, LayerRange range) {
    WireAssign a = assign_for(config, 0, range);  // epoch 0: load, measure, report; never READY
    a.next_endpoint = config.coordinator_data_endpoint;  // never used: nothing runs on a probe
    a.next_key = config.secure ? raw_key(config.coordinator_key_z85) : WireKey{};
    return a;
}

LocalPlan local_plan(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                     const std::vector<PlannedStage> &stages) {
    if (stages.empty() || stages.front().member != -1)
        throw Error(ErrorCode::kInternal, "a plan must start on the coordinator");
    LocalPlan local;
    local.range = stages[0].range;
    local.is_last = stages.size() == 1;
    if (!local.is_last) {
        const LayoutMember &next = members[stages[1].member];
        local.next_endpoint = next.data_endpoint;
        local.next_key_z85 = config.secure ? next.key_z85 : "";
        if (config.secure)
            local.last_user_id = members[stages.back().member].fingerprint;
    }
    return local;
}

}  // namespace colony
