// Which devices may take part in a plan at all, and why the others may not.
// Internal to the planners (planner.cpp, plan_split.cpp).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "cluster/plan_cost.h"

namespace colony {

struct Eligibility {
    std::vector<size_t> eligible;           // input device indices, ascending
    std::map<size_t, std::string> reasons;  // every other device -> why it is left out
};

/// Applies the rules of PlannerOptions: battery below min_battery_percent and
/// not charging, hotter than max_temperature_c (both waived for a coordinator
/// that must participate), and not enough memory for any single block with
/// its KV cache, stage extras and headroom.
Eligibility select_eligible(const PlanCostModel &cost);

/// Throws Error(kResource) explaining why no placement exists: the devices
/// that cannot take part, or the bytes the model needs (weights, KV cache,
/// embedding, output head) against what the eligible devices have after
/// headroom, or, when the total fits, that the blocks do not pack.
[[noreturn]] void throw_no_placement(const PlanCostModel &cost, const Eligibility &el);

}  // namespace colony
