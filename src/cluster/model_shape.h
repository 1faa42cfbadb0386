// The planner's view of a model (ModelShape), read from its GGUF: the bytes of
// every block (quant mixtures differ per block), of the embedding and the head,
// the KV cache bytes per token, and the hidden state's size on the wire.
#pragma once

#include <cstdint>

#include "cluster/plan.h"
#include "ggml.h"

namespace colony {

class GgufFile;
struct ModelHparams;

/// ModelShape of `file` for a context of n_ctx tokens per sequence, n_parallel
/// sequences, KV cache of type_k/type_v and hidden states sent as `wire_type`
/// (F16 by default). Errors: kCorrupt when a block's tensors are missing.
ModelShape model_shape_from_gguf(const GgufFile &file, const ModelHparams &hp, uint64_t n_ctx, uint32_t n_parallel,
                                 ggml_type type_k = GGML_TYPE_F16, ggml_type type_v = GGML_TYPE_F16,
                                 ggml_type wire_type = GGML_TYPE_F16);

}  // namespace colony
