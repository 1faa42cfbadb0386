// Layer splits, the one parser and printer of `--split 0:3,3:5` and the
// simple proportional split (by memory limit or threads) that a cluster
// starts with before the measured planner (planner.h) takes over.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/layer_range.h"

namespace colony {

/// Parses a split "0:10,10:20,20:28" (first:last per stage, last exclusive,
/// spaces allowed around numbers). Throws Error(kInvalidArgument) naming the
/// offending range unless the ranges are non-empty, contiguous, start at 0
/// and end at n_layer (>= 1).
std::vector<LayerRange> parse_layer_split(std::string_view text, uint32_t n_layer);

/// "0:3,3:5" for {[0,3),[3,5)}.
std::string format_layer_split(const std::vector<LayerRange> &ranges);

/// Splits [0, n_layer) into weights.size() contiguous ranges whose sizes are
/// proportional to weights (largest-remainder rounding), each at least one
/// layer. Weights <= 0 count as the smallest positive weight (or 1 when all are
/// <= 0). Throws Error(kInvalidArgument) when there are no weights or more
/// nodes than layers.
std::vector<LayerRange> proportional_layer_split(uint32_t n_layer,
                                                 const std::vector<double> &weights);

}  // namespace colony
