// Which worker serves which layer range: a plan fixes the ranges (and, for
// the measured planner, an order of nodes), but when workers are alike the
// choice of who takes which range is free. Giving a worker the range it
// already holds in its shard cache (DESIGN.md, decision 7) turns a restart
// into a load from disk instead of a shard transfer.
#pragma once

#include <functional>
#include <vector>

#include "model/layer_range.h"

namespace colony {

/// Trades members between stages so that more members serve a range they
/// have cached. members[i] serves ranges[i]; a negative member (the
/// coordinator) never moves. has_cached(member, range) says whether a member
/// holds that range. acceptable(members) decides whether a trade may stay
/// (e.g. the plan is no slower); a refused trade is undone. Each kept trade
/// gives one more member its cached range, so this ends after at most
/// members.size() kept trades. members and ranges have the same size.
void prefer_cached_ranges(std::vector<int> &members, const std::vector<LayerRange> &ranges,
                          const std::function<bool(int member, LayerRange range)> &has_cached,
                          const std::function<bool(const std::vector<int> &members)> &acceptable);

}  // namespace colony
