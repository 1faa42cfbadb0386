// Measures a stage's speed on the real weights it holds, for the planner's
// device profiles (DESIGN.md decision 8): milliseconds per layer at decode
// (1 token) and at prefill (per token of a prompt chunk).
#pragma once

#include <cstdint>

namespace colony {

class Stage;

struct StageSpeed {
    double decode_ms_per_layer = 0;             // one decode step / layers in the range
    double prefill_ms_per_layer_per_token = 0;  // one prefill chunk / (layers * tokens)
};

/// Runs `n_decode` single-token steps and one prefill chunk of `n_prefill`
/// tokens on a scratch sequence (`seq`, freed afterwards) and times them; the
/// first step of each kind is a warm-up. Uses random token ids on the first
/// stage and zero hidden states elsewhere. Errors from the stage propagate.
StageSpeed measure_stage_speed(Stage &stage, int n_decode = 8, int n_prefill = 64, int32_t seq = 0);

}  // namespace colony
