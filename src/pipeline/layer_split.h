// How the coordinator divides a model's transformer blocks over the nodes of
// a pipeline: a manual split (`--split 0:3,3:5`) or a split proportional to
// each node's capacity (memory limit, else thread count). The measured planner
// (src/cluster) is a separate issue; these two are the simple policies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/layer_range.h"

namespace colony {

/// Parses "a:b,b:c,...": contiguous ranges that start at 0 and end at n_layer,
/// each non-empty. Throws Error(kInvalidArgument) naming the bad part when the
/// text is malformed, a range is empty, ranges leave a gap or overlap, or the
/// last one does not end at n_layer.
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
