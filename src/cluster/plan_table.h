// Presenting a plan: the text table of `colony plan` and the JSON of
// /v1/cluster (issue 5: device, layers, predicted ms per token, and why a
// device was left out).
#pragma once

#include <string>

#include "cluster/plan.h"
#include "nlohmann/json_fwd.hpp"

namespace colony {

/// Multi-line text table, one row per stage in pipeline order, then one per
/// device left out with its reason:
///
///   plan 3 (optimal, latency): 28 layers on 2 of 3 devices, 41.20 ms per token (24.3 tokens/s)
///   #  device  layers  ms/token  compute  hop out  memory need/have     state
///   0  fast    0-19    30.10     29.90    0.20     1.20 GiB/7.80 GiB    stage 0
///   -  slow    -       -         -        -        -                    left out: would add 12.30
///   ms per token
///
/// Layer ranges are shown inclusive ("0-19" is [0, 20)). Ends with a newline.
std::string render_plan_table(const Plan &plan);

/// JSON object: epoch, method, objective, coordinator_id, n_layer, hop_in_ms,
/// latency_ms_per_token, bottleneck_ms_per_token, predicted_ms_per_token,
/// stages [{node_id, name, first_layer, last_layer (exclusive),
/// decode_ms_per_layer, compute_ms, hop_out_ms, predicted_ms, memory_bytes,
/// memory_available_bytes}], left_out [{node_id, name, reason}]. A time that is
/// infinite (no measured link) is written as null.
nlohmann::json plan_to_json(const Plan &plan);

}  // namespace colony
