// Planners: which devices take part, in which order, with which layer ranges
// (DESIGN.md, decision 8). Three ways to get a Plan:
//   plan_optimal       exact minimum of the predicted time per token;
//   plan_proportional  every eligible device, layers split by speed under
//                      memory caps (the usual split of other systems; a baseline);
//   plan_manual        a user's "0:10,10:20,20:28" split on given nodes.
// All three predict times with the same cost model (cluster/plan_cost.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster/layer_split.h"
#include "cluster/plan.h"

namespace colony {

/// Exact planner. Minimises options.objective over every subset of eligible
/// devices, every order and every split into contiguous non-empty ranges,
/// under every stage's memory limit (weights of its range + KV cache for
/// n_ctx * n_parallel tokens + embedding on stage 0 + output head on the last
/// stage + headroom <= mem_available_bytes).
///
/// Eligible: battery not below options.min_battery_percent unless charging,
/// not hotter than options.max_temperature_c, room for at least one block.
/// The coordinator is exempt from the battery and temperature rules when it
/// must participate. Every other device is listed in Plan::left_out with its
/// reason; an eligible device that the optimum does not use gets "would add X
/// ms per token" (best plan that includes it minus the optimum).
///
/// Method: dynamic programming backwards over states (first layer l of a
/// stage, set S of devices used from l to the end, device j owning that
/// stage); the value is the objective of the suffix. A state extends to the
/// previous stage by a device i not in S and a range [l0, l) that fits i's
/// memory. With k eligible devices and n blocks that is O(2^k * k * n) states
/// and O(2^(k-2) * k^2 * n^2) transitions (k = 8, n = 128: ~3e7, a few tens of
/// ms) and 12 * 2^k * k * n bytes of tables (k = 8, n = 128: 3 MiB). The
/// throughput objective runs it twice: the minimum bottleneck, then the
/// minimum latency with every element capped at that bottleneck. Ties go to
/// fewer stages.
///
/// Since every single device is a candidate, the result is never slower than
/// the best single device that can hold the model; if none can, the model is
/// still split when it fits in total. With coordinator_must_participate the
/// candidates are the plans that include the coordinator (and, with
/// coordinator_first, that start on it): the guarantee then holds against the
/// coordinator alone, and against any plan the coordinator could run.
///
/// Throws Error(kInvalidArgument) for bad input (PlanCostModel), and
/// Error(kResource) when no placement fits, saying how many bytes the model
/// needs and how many the eligible devices have.
Plan plan_optimal(const PlannerInput &input);

/// Proportional split: all eligible devices in input order, each getting a
/// share of the blocks proportional to its speed (1 / decode_ms_per_layer),
/// capped by what fits its memory (water-filling, largest remainders). A
/// device whose share rounds to zero is left out. Throws Error(kResource) when
/// the split does not fit (the caps assume blocks of mean size).
Plan plan_proportional(const PlannerInput &input);

/// A plan with the given ranges on the given nodes (same length, distinct
/// known node ids, in pipeline order). Throws Error(kInvalidArgument) for a
/// bad layout or unknown node and Error(kResource) when a stage does not fit
/// its node's memory.
Plan plan_manual(const PlannerInput &input, const std::vector<LayerRange> &ranges,
                 const std::vector<std::string> &node_ids);

/// Re-predicts an existing plan's layout with new inputs (e.g. profiles
/// updated with measured times): same nodes and ranges, fresh times.
/// Throws like plan_manual (also when a node of the plan is no longer in the
/// input).
Plan predict_plan(const PlannerInput &input, const Plan &plan);

}  // namespace colony
