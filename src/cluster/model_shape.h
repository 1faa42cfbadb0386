// The planner's view of a model (ModelShape), read from its GGUF: the bytes of
// every block (quant mixtures differ per block), of the embedding and the head,
// the KV cache bytes per token, and the hidden state's size on the wire.
#pragma once

#include <cstdint>

#include "cluster/plan.h"
#include "ggml.h"
#include "model/layer_skip.h"

namespace colony {

class GgufFile;
struct GgufTensor;
struct ModelHparams;

/// ModelShape of `file` for a context of n_ctx tokens per sequence, n_parallel
/// sequences, KV cache of type_k/type_v and hidden states sent as `wire_type`
/// (F16 by default). Errors: kCorrupt when a block's tensors are missing.
ModelShape model_shape_from_gguf(const GgufFile &file, const ModelHparams &hp, uint64_t n_ctx,
                                 uint32_t n_parallel, ggml_type type_k = GGML_TYPE_F16,
                                 ggml_type type_v = GGML_TYPE_F16,
                                 ggml_type wire_type = GGML_TYPE_F16);

/// Marks the blocks of `skip` in m.layer_skipped (--skip-layers: they hold
/// no weights or KV cache and cost no compute in the plan). Blocks past
/// m.n_layer are Error(kInvalidArgument) (check_layer_skip).
void mark_skipped_layers(ModelShape &m, const LayerSkip &skip);

/// Bytes of `t` that one token's decode step reads: all of a dense tensor, and
/// of a MoE expert tensor (name "*_exps.*") the n_expert_used experts' share.
/// The planner's memory counts every expert; its time is measured.
uint64_t decode_read_bytes(const GgufTensor &t, const ModelHparams &hp);

/// Weights a speed measurement should stream per token: more than the CPU
/// caches hold, or a small model's blocks measure cache-resident and too fast.
inline constexpr uint64_t kProbeWeightBytes = 48ull << 20;

/// The blocks [first, last) a node measures its speed on (coordinator_probe.h,
/// `colony plan --measure`, the probe shard of a spare worker): as many
/// consecutive blocks as read kProbeWeightBytes per token (decode_read_bytes;
/// at least one), ending before
/// the last block (which carries the output head) when the model has more
/// than one; {0, 1} for a one-block model.
LayerRange speed_probe_range(const GgufFile &file, const ModelHparams &hp);

}  // namespace colony
