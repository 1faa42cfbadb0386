// One ubatch through one stage of the pipeline, shared by the coordinator
// (stage 0, and the whole model when it has no workers) and the workers:
// ACTIVATIONS in -> Stage::forward -> ACTIVATIONS for the next stage (hidden
// state packed to the wire dtype) or, on the last stage, TOKENS (one sampled
// token per output row).
#pragma once

#include <variant>

#include "net/wire.h"

namespace colony {

class Stage;
class SequenceSamplers;

/// What a stage step produces: the next hop's ubatch or the sampled tokens.
using StageOutput = std::variant<WireActivations, WireTokens>;

/// Runs `in` (already checked with wire_check_activations against this
/// stage's plan) through `stage`. The first stage reads in.tokens, others
/// unpack in.data (in.dtype) to F32. A non-last stage returns ACTIVATIONS with
/// the same sequences, tokens, positions and outputs and its hidden state
/// packed as out_dtype. The last stage feeds the input tokens to `samplers`
/// and samples one token per output row (with no output rows it still runs,
/// to fill the KV cache, and returns an empty TOKENS). Throws what
/// Stage::forward and the samplers throw; the KV cache is then unchanged.
StageOutput run_stage_step(Stage &stage, const WireActivations &in, WireDtype out_dtype,
                           SequenceSamplers &samplers);

}  // namespace colony
