// The non-optimising planners: the proportional baseline, the manual split and
// its parser, and re-prediction of an existing plan.
#include <algorithm>
#include <cmath>

#include "cluster/eligibility.h"
#include "cluster/plan_cost.h"
#include "cluster/planner.h"
#include "util/error.h"

namespace colony {
namespace {

std::vector<std::pair<size_t, LayerRange>> resolve(const PlanCostModel &cost,
                                                   const std::vector<LayerRange> &ranges,
                                                   const std::vector<std::string> &node_ids) {
    if (ranges.size() != node_ids.size()) {
        throw Error(ErrorCode::kInvalidArgument, "manual plan: " + std::to_string(ranges.size()) +
                                                     " layer ranges for " +
                                                     std::to_string(node_ids.size()) + " nodes");
    }
    std::vector<std::pair<size_t, LayerRange>> stages;
    for (size_t s = 0; s < ranges.size(); ++s) {
        const std::optional<size_t> d = cost.device_index(node_ids[s]);
        if (!d) {
            throw Error(ErrorCode::kInvalidArgument,
                        "manual plan: node '" + node_ids[s] + "' has no device profile");
        }
        stages.emplace_back(*d, ranges[s]);
    }
    return stages;
}

/// Real-valued shares of n layers proportional to weights, none above its cap
/// (water-filling). Returns false when the caps hold fewer than n layers.
bool water_fill(double n, const std::vector<double> &weight, const std::vector<double> &cap,
                std::vector<double> *share) {
    const size_t m = weight.size();
    share->assign(m, 0);
    std::vector<bool> fixed(m, false);
    double remaining = n;
    for (bool changed = true; changed;) {
        changed = false;
        double total_weight = 0;
        for (size_t t = 0; t < m; ++t)
            total_weight += fixed[t] ? 0 : weight[t];
        if (total_weight <= 0)
            return remaining <= 1e-9;
        for (size_t t = 0; t < m; ++t) {
            if (fixed[t])
                continue;
            const double want = remaining * weight[t] / total_weight;
            if (want > cap[t]) {
                (*share)[t] = cap[t];
                fixed[t] = true;
                remaining -= cap[t];
                changed = true;
                break;  // recompute the others' shares without it
            }
        }
        if (!changed) {
            for (size_t t = 0; t < m; ++t) {
                if (!fixed[t])
                    (*share)[t] = remaining * weight[t] / total_weight;
            }
        }
    }
    return true;
}

}  // namespace

Plan plan_manual(const PlannerInput &input, const std::vector<LayerRange> &ranges,
                 const std::vector<std::string> &node_ids) {
    const PlanCostModel cost(input);
    const auto stages = resolve(cost, ranges, node_ids);
    cost.check_stages(stages);
    std::map<size_t, std::string> reasons;
    for (size_t i = 0; i < cost.n_devices(); ++i)
        reasons[i] = "not in the manual split";
    return cost.make_plan(stages, PlanMethod::kManual, reasons);
}

Plan predict_plan(const PlannerInput &input, const Plan &plan) {
    const PlanCostModel cost(input);
    std::vector<LayerRange> ranges;
    std::vector<std::string> ids;
    for (const PlanStage &s : plan.stages) {
        ranges.push_back(s.layers);
        ids.push_back(s.node_id);
    }
    const auto stages = resolve(cost, ranges, ids);
    cost.check_stages(stages, /*check_memory=*/false);
    std::map<size_t, std::string> reasons;
    for (const PlanExclusion &e : plan.left_out) {
        if (auto d = cost.device_index(e.node_id))
            reasons[*d] = e.reason;
    }
    Plan out = cost.make_plan(stages, plan.method, reasons);
    out.epoch = plan.epoch;
    return out;
}

Plan plan_proportional(const PlannerInput &input) {
    const PlanCostModel cost(input);
    Eligibility el = select_eligible(cost);
    if (el.eligible.empty())
        throw_no_placement(cost, el);
    const ModelShape &model = input.model;
    const int n = model.n_layer;
    const size_t m = el.eligible.size();
    const double mean_layer_bytes = static_cast<double>(cost.range_bytes({0, n})) / n;

    std::vector<double> weight(m), cap(m);
    for (size_t t = 0; t < m; ++t) {
        const DeviceProfile &d = input.devices[el.eligible[t]];
        weight[t] = 1.0 / d.decode_ms_per_layer;
        double usable = static_cast<double>(d.mem_available_bytes) - d.headroom_bytes;
        if (t == 0)
            usable -= model.first_stage_extra_bytes;
        if (t + 1 == m)
            usable -= model.last_stage_extra_bytes;
        cap[t] = usable <= 0 ? 0 : std::min<double>(n, std::floor(usable / mean_layer_bytes));
    }
    std::vector<double> share;
    if (!water_fill(n, weight, cap, &share))
        throw_no_placement(cost, el);

    // Integer counts: floors, then the largest remainders below the caps.
    std::vector<int> count(m);
    int assigned = 0;
    for (size_t t = 0; t < m; ++t) {
        count[t] = static_cast<int>(std::floor(share[t] + 1e-9));
        assigned += count[t];
    }
    while (assigned < n) {
        int pick = -1;
        double best = -1;
        for (size_t t = 0; t < m; ++t) {
            const double frac = share[t] - count[t];
            if (count[t] < cap[t] && frac > best) {
                best = frac;
                pick = static_cast<int>(t);
            }
        }
        if (pick < 0)
            throw_no_placement(cost, el);
        ++count[pick];
        ++assigned;
    }

    std::vector<std::pair<size_t, LayerRange>> stages;
    int next = 0;
    for (size_t t = 0; t < m; ++t) {
        if (count[t] == 0) {
            el.reasons[el.eligible[t]] = "proportional share rounds to 0 layers";
            continue;
        }
        stages.emplace_back(el.eligible[t], LayerRange{next, next + count[t]});
        next += count[t];
    }
    try {
        cost.check_stages(stages);
    } catch (const Error &e) {
        throw Error(e.code(), std::string("proportional split: ") + e.what() +
                                  " (blocks differ in size; try the optimal planner)");
    }
    return cost.make_plan(stages, PlanMethod::kProportional, el.reasons);
}

}  // namespace colony
