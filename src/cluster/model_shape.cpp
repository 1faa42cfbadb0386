#include "cluster/model_shape.h"

#include <algorithm>
#include <string>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "util/error.h"

namespace colony {

ModelShape model_shape_from_gguf(const GgufFile &file, const ModelHparams &hp, uint64_t n_ctx,
                                 uint32_t n_parallel, ggml_type type_k, ggml_type type_v,
                                 ggml_type wire_type) {
    ModelShape m;
    m.n_layer = static_cast<int>(hp.n_layer);
    m.hidden_bytes_per_token = ggml_row_size(wire_type, hp.n_embd);
    m.layer_weight_bytes.assign(hp.n_layer, 0);
    for (const GgufTensor &t : file.tensors()) {
        if (t.name.rfind("blk.", 0) != 0)
            continue;
        const size_t dot = t.name.find('.', 4);
        const uint32_t il = static_cast<uint32_t>(std::stoul(t.name.substr(4, dot - 4)));
        if (il < hp.n_layer)
            m.layer_weight_bytes[il] += t.nbytes;
    }
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        if (m.layer_weight_bytes[il] == 0) {
            throw Error(ErrorCode::kCorrupt,
                        file.path() + ": block " + std::to_string(il) + " has no tensors");
        }
    }
    m.kv_bytes_per_token_per_layer =
        ggml_row_size(type_k, hp.n_embd_k_gqa()) + ggml_row_size(type_v, hp.n_embd_v_gqa());
    const GgufTensor *embd = file.find("token_embd.weight");
    const GgufTensor *out = file.find("output.weight");
    const GgufTensor *norm = file.find("output_norm.weight");
    m.first_stage_extra_bytes = embd ? embd->nbytes : 0;
    const uint64_t logits = uint64_t(hp.n_vocab) * sizeof(float) * n_parallel;
    m.last_stage_extra_bytes =
        (out ? out->nbytes : (embd ? embd->nbytes : 0)) + (norm ? norm->nbytes : 0) + logits;
    m.n_ctx = n_ctx;
    m.n_parallel = n_parallel;
    return m;
}

uint64_t decode_read_bytes(const GgufTensor &t, const ModelHparams &hp) {
    if (hp.is_moe() && t.name.find("_exps.") != std::string::npos)
        return t.nbytes / hp.n_expert * hp.n_expert_used;
    return t.nbytes;
}

LayerRange speed_probe_range(const GgufFile &file, const ModelHparams &hp) {
    const int n = static_cast<int>(hp.n_layer);
    if (n < 2)
        return {0, n};
    uint64_t blocks = 0;  // what a decode step reads: a MoE block's used experts only
    for (const GgufTensor &t : file.tensors()) {
        if (t.name.rfind("blk.", 0) == 0)
            blocks += decode_read_bytes(t, hp);
    }
    const uint64_t per_block = std::max<uint64_t>(blocks / static_cast<uint64_t>(n), 1);
    const int k = static_cast<int>(
        std::clamp<uint64_t>((kProbeWeightBytes + per_block - 1) / per_block, 1, n - 1));
    return {n - 1 - k, n - 1};
}

void mark_skipped_layers(ModelShape &m, const LayerSkip &skip) {
    check_layer_skip(skip, static_cast<uint32_t>(m.n_layer));
    m.layer_skipped.clear();
    if (skip.empty())
        return;
    m.layer_skipped.assign(static_cast<size_t>(m.n_layer), 0);
    for (uint32_t il : skip.blocks)
        m.layer_skipped[il] = 1;
}

}  // namespace colony
