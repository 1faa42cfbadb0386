// Weights of one stage: the tensors of its layer range, plus the token
// embedding on the first stage and the output norm and LM head on the last.
//
// Loading follows llama.cpp's CPU path (src/llama-model-loader.cpp,
// select_weight_buft / make_cpu_buft_list): each matrix goes to the first CPU
// *extra* buffer type (weight repacking, e.g. Q4_0 -> Q4_0x8) whose device
// supports the op that uses it; everything else stays in the file mapping
// (mmap, zero copy). Only the byte ranges of tensors this stage needs are mapped;
// repacked tensors are read with pread so their file pages never count as RSS.
// Offloaded blocks (WeightLoadOptions::gpu) go to the GPU device's buffer
// type instead, as llama.cpp's make_gpu_buft_list does.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpp.h"
#include "model/hparams.h"
#include "model/layer_range.h"
#include "model/layer_skip.h"

namespace colony {

class GgufFile;
class MappedRange;

/// Tensors of one transformer block. Optional ones are nullptr when absent.
/// Shapes in ggml order (innermost first): wq [n_embd, n_embd_q], wk [n_embd,
/// n_embd_k_gqa], wv [n_embd, n_embd_v_gqa], wo [n_embd_q, n_embd], ffn_gate/up
/// [n_embd, n_ff], ffn_down [n_ff, n_embd], norms [n_embd], q/k_norm [head_dim].
/// A MoE block has the router ffn_gate_inp [n_embd, n_expert] and the
/// experts ffn_gate/up_exps [n_embd, n_ff_exp, n_expert], ffn_down_exps
/// [n_ff_exp, n_embd, n_expert] instead of ffn_gate/up/down. A phi3 block has
/// wqkv instead of wq/wk/wv, and ffn_up [n_embd, 2 n_ff] (gate and up
/// fused) without ffn_gate.
struct LayerWeights {
    ggml_tensor *attn_norm = nullptr;
    ggml_tensor *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
    ggml_tensor *wqkv = nullptr;  // phi3: Q, K and V fused [n_embd, n_embd_q + 2 n_embd_k_gqa]
    ggml_tensor *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;  // optional (qwen2)
    ggml_tensor *q_norm = nullptr, *k_norm = nullptr;                        // qwen3
    ggml_tensor *ffn_norm = nullptr;
    ggml_tensor *ffn_gate = nullptr, *ffn_up = nullptr, *ffn_down = nullptr;
    ggml_tensor *ffn_gate_inp = nullptr;
    ggml_tensor *ffn_gate_exps = nullptr, *ffn_up_exps = nullptr, *ffn_down_exps = nullptr;
    // qwen2moe's shared expert: its gate [n_embd] and SwiGLU [n_embd, n_ff_shexp] ...
    ggml_tensor *ffn_gate_inp_shexp = nullptr;
    ggml_tensor *ffn_gate_shexp = nullptr, *ffn_up_shexp = nullptr, *ffn_down_shexp = nullptr;
    ggml_tensor *bqkv = nullptr;  // optional bias of wqkv
    // gemma3: RMS norms of the attention and FFN outputs before each residual add
    ggml_tensor *attn_post_norm = nullptr, *ffn_post_norm = nullptr;
    // gpt-oss: one attention sink logit per head [n_head] (F32), the router's
    // bias [n_expert] and the experts' biases: gate/up [n_ff_exp, n_expert],
    // down [n_embd, n_expert]. Its pre-FFN norm is the file's
    // post_attention_norm, loaded as ffn_norm (src/models/openai-moe.cpp).
    ggml_tensor *attn_sinks = nullptr;
    ggml_tensor *ffn_gate_inp_b = nullptr;
    ggml_tensor *ffn_gate_exps_b = nullptr, *ffn_up_exps_b = nullptr, *ffn_down_exps_b = nullptr;
};

/// Which of a stage's weights live on a GPU (llama.cpp's -ngl): the blocks
/// from gpu_first on, and the LM head and output norm when gpu_output.
/// They are copied into `gpu`'s buffers (no mmap); a matrix whose op the
/// device does not support stays on the CPU, as llama.cpp's
/// select_weight_buft does. The token embedding always stays on the CPU
/// (llama.cpp too: GET_ROWS of one row per token is not worth a copy).
struct GpuPlacement {
    ggml_backend_dev_t gpu = nullptr;  // nullptr: everything on the CPU
    uint32_t gpu_first = UINT32_MAX;   // absolute index of the first offloaded block
    bool gpu_output = false;
    bool on_gpu(uint32_t il) const { return gpu != nullptr && il >= gpu_first; }
};

struct WeightLoadOptions {
    bool use_mmap = true;    // map non-repacked tensors instead of copying them
    bool use_repack = true;  // use the CPU backend's extra buffer types
    GpuPlacement gpu;        // offloaded blocks (default: none)
    /// Load the output norm and LM head even when the range ends before the
    /// last block: the stage then gives logits of its last block's hidden
    /// state (an early exit; the self-speculative draft, --spec-type skip).
    bool early_exit_head = false;
    /// The opposite: a range that ends at the last block stops at its
    /// hidden state (no output norm, no head), as a middle stage does; what
    /// block influence measures (runtime/layer_importance.h).
    bool no_head = false;
    /// Blocks not loaded (--skip-layers, model/layer_skip.h): their
    /// LayerWeights stay empty and the graph passes the hidden state through.
    LayerSkip skip;
    /// Positions per sequence the stage serves: phi3 loads its long RoPE
    /// factors as rope_freqs when this exceeds n_ctx_orig, else its short
    /// ones (llama.cpp's llama_model::get_rope_factors).
    uint32_t n_ctx_seq = 0;
    /// Called with (bytes done, bytes total) while loading; may be empty.
    std::function<void(uint64_t, uint64_t)> progress;
};

class StageWeights {
  public:
    /// Loads the tensors that `range` needs from `file`. The stage is first when
    /// range.first == 0 (token embedding) and last when range.last == n_layer
    /// (output norm and LM head; the LM head falls back to the token embedding for
    /// tied models), or when opts.early_exit_head. Errors: kOutOfRange for a range outside the
    /// model, kCorrupt for a missing tensor or a tensor of the wrong shape (naming expected and
    /// found shapes), kResource when a buffer cannot be allocated.
    StageWeights(const GgufFile &file, const ModelHparams &hp, LayerRange range,
                 ggml_backend_dev_t dev, const WeightLoadOptions &opts);
    ~StageWeights();
    StageWeights(const StageWeights &) = delete;
    StageWeights &operator=(const StageWeights &) = delete;

    LayerRange range() const { return range_; }
    bool is_first() const { return tok_embd != nullptr; }
    bool is_last() const { return output != nullptr; }
    /// Block `il` (absolute index, range.first <= il < range.last).
    const LayerWeights &layer(uint32_t il) const { return layers_[il - range_.first]; }
    /// Whether block `il` is skipped (WeightLoadOptions::skip; not loaded).
    bool skipped(uint32_t il) const { return skip_.contains(il); }
    const LayerSkip &skip() const { return skip_; }
    uint64_t bytes() const { return bytes_; }  // weight bytes this stage holds
    /// Names of the buffer types used, with bytes each (for logs and profiles).
    std::string describe_buffers() const;
    /// A block matrix stored as low-rank factors (`colony compress`,
    /// model/compress.h): its slot in LayerWeights holds `.lr_b` (ne {r,
    /// n_out}) and this returns `.lr_a` (ne {n_in, r}), applied first, so
    /// W x ~= lr_b (lr_a x). nullptr for a full matrix.
    ggml_tensor *low_rank_input(const ggml_tensor *w) const {
        const auto it = low_rank_.find(w);
        return it == low_rank_.end() ? nullptr : it->second;
    }
    /// How many matrices this stage holds as low-rank factors.
    size_t n_low_rank() const { return low_rank_.size(); }

    ggml_tensor *tok_embd = nullptr;     // F? [n_embd, n_vocab], first stage only
    ggml_tensor *output_norm = nullptr;  // [n_embd], last stage only
    ggml_tensor *output = nullptr;       // [n_embd, n_vocab], last stage only
    ggml_tensor *rope_freqs = nullptr;   // optional [n_rot/2] (llama 3 RoPE scaling, phi3 factors)

  private:
    struct Pending;
    LayerRange range_;
    LayerSkip skip_;
    uint64_t bytes_ = 0;
    ggml_context_ptr ctx_;
    std::vector<LayerWeights> layers_;
    std::vector<ggml_backend_buffer_ptr> buffers_;
    std::vector<std::unique_ptr<MappedRange>> maps_;
    std::deque<ggml_tensor *> low_rank_slots_;  // stable slots of the lr_a factors
    std::unordered_map<const ggml_tensor *, ggml_tensor *> low_rank_;  // lr_b -> lr_a
};

}  // namespace colony
