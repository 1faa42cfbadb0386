// Hyper-parameters of a decoder-only transformer, read from GGUF metadata.
//
// Key names follow the pinned tree's src/llama-arch.cpp (LLM_KV_*), e.g.
// "<arch>.block_count", "<arch>.attention.head_count_kv". Supported
// architectures: llama, qwen2, qwen2moe, qwen3, qwen3moe, phi3, gemma3,
// gpt-oss. Any other is Error(kUnsupported) naming it.
#pragma once

#include <cstdint>
#include <string>

namespace colony {

class GgufFile;

enum class Arch { kLlama, kQwen2, kQwen3, kQwen3Moe, kPhi3, kQwen2Moe, kGemma3, kGptOss };

/// Most routed experts per block a model may declare (llama.cpp's
/// LLAMA_MAX_EXPERTS, src/llama-hparams.h).
inline constexpr uint32_t kMaxExperts = 512;

/// RoPE variants as ggml's ggml_rope_ext mode: 0 = normal (adjacent pairs,
/// llama), 2 = NeoX (halves, qwen2/qwen3). Source: ggml.h GGML_ROPE_TYPE_NEOX.
enum class RopeType : int { kNormal = 0, kNeox = 2 };

/// Most transformer blocks a model may declare (block_count); a larger
/// count is a corrupt or forged file.
inline constexpr uint32_t kMaxLayers = 1u << 14;

struct ModelHparams {
    Arch arch = Arch::kLlama;
    std::string arch_name;    // as in general.architecture
    uint32_t n_layer = 0;     // transformer blocks
    uint32_t n_embd = 0;      // hidden size
    uint32_t n_head = 0;      // query heads
    uint32_t n_head_kv = 0;   // key/value heads (GQA when < n_head)
    uint32_t head_dim_k = 0;  // per-head size of Q and K (may differ from n_embd/n_head, qwen3)
    uint32_t head_dim_v = 0;  // per-head size of V
    uint32_t n_ff = 0;        // feed-forward inner size
    uint32_t n_vocab = 0;
    uint32_t n_ctx_train = 0;
    uint32_t n_rot = 0;  // rotary dimensions per head
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1/factor for linear scaling
    float rope_attn_factor =
        1.0f;                 // rope.scaling.attn_factor: scales RoPE's cos/sin (phi3 longrope)
    uint32_t n_ctx_orig = 0;  // rope.scaling.original_context_length, else n_ctx_train; phi3
                              // takes its long RoPE factors for contexts beyond it
    // YaRN (rope.scaling.type "yarn"; Peng et al. 2023, "YaRN: Efficient
    // Context Window Extension of Large Language Models"): ggml_rope_ext's
    // ext_factor 1 mixes interpolated and extrapolated frequencies between
    // beta_fast and beta_slow rotations over n_ctx_orig; 0 without YaRN. The
    // values llama.cpp's llama_context derives (src/llama-context.cpp).
    float rope_ext_factor = 0.0f;
    float rope_beta_fast = 32.0f;
    float rope_beta_slow = 1.0f;
    RopeType rope_type = RopeType::kNormal;
    bool has_qk_norm = false;  // qwen3: RMS norm of Q and K per head before RoPE
    // Mixture of experts (qwen3moe, qwen2moe; 0 = a dense FFN): each token's
    // FFN is the weighted sum of its n_expert_used best experts out of
    // n_expert, each a SwiGLU of inner size n_ff_exp (src/models/qwen3moe.cpp);
    // qwen2moe adds a shared expert of inner size n_ff_shexp, gated by a
    // sigmoid, and does not normalize the experts' weights (qwen2moe.cpp);
    // gpt-oss picks the top experts by router logit (plus a bias), weighs
    // them by a softmax over those logits, and runs biased experts through
    // OpenAI's clamped SwiGLU (src/models/openai-moe.cpp,
    // LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT, LLM_FFN_SWIGLU_OAI_MOE)
    uint32_t n_expert = 0;
    uint32_t n_expert_used = 0;
    uint32_t n_ff_exp = 0;
    uint32_t n_ff_shexp = 0;
    // Gemma 3 (src/models/gemma3.cpp): blocks il with il % swa_pattern <
    // swa_pattern - 1 attend only to the last n_swa positions (llama.cpp's
    // LLAMA_SWA_TYPE_STANDARD: key p0 is masked for query p1 when p1 - p0 >=
    // n_swa) and rotate with rope_freq_base_swa and scale 1; the others are
    // global. Q is scaled by attn_scale before attention (0: 1/sqrt(head
    // size) inside attention, as the other architectures), the token
    // embedding by sqrt(n_embd), each block's attention and FFN outputs are
    // RMS-normed again (post norms), the FFN is GELU-gated, and logits are
    // soft-capped by final_logit_softcap (0: off).
    // gpt-oss windows blocks 0, 2, 4 ... the same way (pattern 2), with the
    // model's own RoPE base and scale in them, and adds a learned attention
    // sink per head to each softmax's denominator (attn_sinks).
    uint32_t n_swa = 0;  // 0: every block global
    uint32_t swa_pattern = 0;
    float rope_freq_base_swa = 10000.0f;
    float rope_freq_scale_swa = 1.0f;
    float attn_scale = 0.0f;
    float final_logit_softcap = 0.0f;

    bool is_swa(uint32_t il) const {
        return n_swa > 0 && (swa_pattern == 0 || il % swa_pattern < swa_pattern - 1);
    }
    /// RoPE base and scale of block il.
    float rope_base(uint32_t il) const { return is_swa(il) ? rope_freq_base_swa : rope_freq_base; }
    float rope_scale(uint32_t il) const {
        return is_swa(il) ? rope_freq_scale_swa : rope_freq_scale;
    }

    bool is_moe() const { return n_expert > 0; }
    uint32_t n_embd_q() const { return head_dim_k * n_head; }
    uint32_t n_embd_k_gqa() const { return head_dim_k * n_head_kv; }
    uint32_t n_embd_v_gqa() const { return head_dim_v * n_head_kv; }

    /// Reads and validates the hyper-parameters. Errors: kUnsupported for an
    /// unknown architecture or RoPE scaling, kCorrupt for missing or
    /// inconsistent values (e.g. n_head not a multiple of n_head_kv).
    static ModelHparams from_gguf(const GgufFile &file);
};

/// "llama", "qwen2", "qwen3", "qwen3moe", "phi3", "qwen2moe", "gemma3", "gpt-oss".
const char *arch_name(Arch arch);

}  // namespace colony
