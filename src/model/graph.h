// The ggml compute graph of one stage for one ubatch.
//
// The blocks follow the pinned tree's src/models/{llama,qwen2,qwen3}.cpp and
// src/llama-graph.cpp (build_norm, build_qkv, build_attn with flash attention,
// build_ffn SILU/PAR) op for op, so a stage computes what libllama computes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ggml-cpp.h"
#include "ggml.h"
#include "model/hparams.h"

namespace colony {

class StageWeights;
class KvCache;

/// What determines a graph's structure. Graphs with equal shapes are reused
/// with new input values (positions, mask, cache cells, tokens).
struct GraphShape {
    uint32_t n_tokens = 0;   // tokens in the ubatch
    uint32_t n_kv = 0;       // KV cells attended (KvCache::n_kv)
    uint32_t n_outputs = 0;  // last stage: rows of logits wanted (<= n_tokens)
    /// Dynamic skipping (runtime/dynamic_skip.h): per block of the range a
    /// DynamicSkipGate::Mode (0 compute, 1 K/V only, 2 a row mask), and each
    /// computed block's cos(input, output) per row as an output. Empty: off.
    std::vector<uint8_t> block_mode;
    bool operator==(const GraphShape &o) const {
        return n_tokens == o.n_tokens && n_kv == o.n_kv && n_outputs == o.n_outputs &&
               block_mode == o.block_mode;
    }
};

/// A built graph and its input/output tensors.
struct StageGraph {
    GraphShape shape;
    ggml_context_ptr ctx;
    ggml_cgraph *gf = nullptr;
    ggml_tensor *inp_tokens = nullptr;    // I32 [n_tokens]              first stage
    ggml_tensor *inp_embd = nullptr;      // F32 [n_embd, n_tokens]      other stages
    ggml_tensor *inp_pos = nullptr;       // I32 [n_tokens]
    ggml_tensor *inp_mask = nullptr;      // F16 [n_kv, n_tokens, 1, 1]
    ggml_tensor *inp_mask_swa = nullptr;  // the same for sliding-window blocks (gemma3; else null)
    ggml_tensor *inp_k_rot =
        nullptr;  // F32 [n, n] Hadamard rotation of Q and K (quantized K; else null)
    ggml_tensor *inp_v_rot = nullptr;    // F32 [64, 64] the same for V (quantized V; else null)
    ggml_tensor *inp_k_idxs = nullptr;   // I64 [n_tokens] cache cell of each token
    ggml_tensor *inp_out_ids = nullptr;  // I32 [n_outputs] (last stage, when n_outputs < n_tokens)
    ggml_tensor *out = nullptr;  // F32 hidden [n_embd, n_tokens] or logits [n_vocab, n_outputs]
    ggml_tensor *out_hidden = nullptr;  // last stage: F32 [n_embd, n_outputs] after output_norm
                                        // (the rows' embeddings, for pooling)
    // dynamic skipping, per block of the range (null where not used):
    std::vector<ggml_tensor *> inp_keep;  // F32 [1, n_tokens] 1 = the row computes the block
    std::vector<ggml_tensor *> out_cos;   // F32 [1, n_tokens] cos(block input, block output)
};

/// Builds the graph of `weights`' layer range for `shape`. The stage is first
/// (token ids in) when weights.is_first(), last (logits out) when is_last().
/// With `meta`, the graph's tensor and node metadata live in that buffer
/// (resized to fit, then reused by later builds, as llama.cpp's
/// buf_compute_meta): the caller keeps it alive and unused by another build
/// while the graph lives. Without it the graph allocates its own.
std::unique_ptr<StageGraph> build_stage_graph(const ModelHparams &hp, const StageWeights &weights,
                                              const KvCache &kv, const GraphShape &shape,
                                              std::vector<uint8_t> *meta = nullptr);

/// The graph that re-rotates the keys of moved KV cells after a context
/// shift (KvCache::seq_add): for every block of the stage's range, RoPE by
/// each cell's pending shift over the first n_rot dimensions of every key
/// head, in place (quantized keys: dequantized to F32, rotated, written
/// back), as llama.cpp's llama_kv_cache::build_graph_shift does.
struct KShiftGraph {
    ggml_context_ptr ctx;
    ggml_cgraph *gf = nullptr;
    ggml_tensor *inp_shift = nullptr;  // I32 [kv.size()] per-cell shift (KvCache::shifts)
    ggml_tensor *inp_k_rot = nullptr;  // as StageGraph's: a rotated quantized K is un-rotated first
};

/// The attn_factor a K-shift passes to ggml_rope_ext so that re-rotating a
/// cached key changes only its angle: 1 / (1 + 0.1 ln(1/freq_scale)) under
/// YaRN (ext_factor != 0: ggml scales cos/sin by that factor), else 1. The
/// model's rope.scaling.attn_factor already sits in the cached key. llama.cpp
/// (llama_kv_cache::build_rope_shift) passes the forward factor instead, so
/// each of its shifts scales a YaRN or phi3 key's length once more.
float k_shift_attn_factor(const ModelHparams &hp, uint32_t il);

/// llama.cpp's rotation of a quantized KV cache (llama-kv-cache.cpp,
/// build_input_k_rot/v_rot; llama-graph.cpp, build_attn): Q and K are
/// multiplied by an orthonormal Walsh-Hadamard matrix in blocks of n before K
/// is stored (Q.K is unchanged, and the rotated values quantize with less
/// error), V likewise, and the attention output by the same matrix again
/// (H H = I). The side for K: the largest power of two >= 64 that divides the
/// head size; 0 (no rotation) when type_k is not quantized or the head size is
/// not a multiple of 64.
uint32_t k_rotation_size(const ModelHparams &hp, ggml_type type_k);
/// The side for V: 64 when type_v is quantized and its head size a multiple of 64, else 0.
uint32_t v_rotation_size(const ModelHparams &hp, ggml_type type_v);
/// The n x n matrix (n a power of two), row-major, entries +-1/sqrt(n)
/// (ggml_gen_hadamard in llama-kv-cache.cpp).
std::vector<float> hadamard_matrix(uint32_t n);
std::unique_ptr<KShiftGraph> build_k_shift_graph(const ModelHparams &hp,
                                                 const StageWeights &weights, const KvCache &kv);

}  // namespace colony
