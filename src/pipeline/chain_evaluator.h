// A perplexity run with a cluster's numerics in one process: the model's
// layer ranges as a chain of stages, each stage's hidden states packed to the
// wire type and unpacked before the next one (net/wire_dtype.h, what a
// stage's ACTIVATIONS carry), the last stage computing the logits, so the
// statistics (runtime/perplexity.h) never need logits on a network. It
// measures what a split, a wire type and the stages' KV types cost in
// quality without starting processes; the floats are a cluster's when every
// stage runs the cluster's invariance (runtime/stage.h, kAttention).
#pragma once

#include <vector>

#include "net/wire_dtype.h"
#include "runtime/perplexity.h"

namespace colony {

class Stage;

/// A ChunkEvaluator over `stages` in order: the first holds the token
/// embedding, the last the output head, their ranges contiguous (the caller
/// builds them; each holds n_ctx tokens of sequence 0 and is cleared before
/// every chunk). Hidden states between stages go through `wire_type`.
/// Errors: Error(kInvalidArgument) for an empty chain, a first stage without
/// the embedding or a last one without the head; the engine's errors.
ChunkEvaluator stage_chain_evaluator(std::vector<Stage *> stages, WireDtype wire_type);

}  // namespace colony
