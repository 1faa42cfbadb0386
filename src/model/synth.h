// Synthetic GGUF models: random weights with the real shapes of known models
// (Qwen2.5, Qwen3, Qwen3 MoE, Llama 3, Phi-3.5, Gemma 3, gpt-oss), a real tokenizer copied from a
// vocab GGUF, and a quant type mixture like llama-quantize's. Used for tests and benchmarks that
// need a model of a given size without downloading one.
//
// Everything written is deterministic from (seed, hyper-parameters, quant type,
// vocab file): weights come from a counter-based PRNG keyed by the seed and the
// tensor name (see synth_fill_rows), so a tensor's values do not depend on the
// order in which tensors are written or on the number of threads. Files are
// byte-identical for the same build; another CPU architecture or compiler may
// round a few values differently (FMA contraction in the generator and in ggml's
// quantizers), so do not compare hashes across platforms.
//
// GGUF keys and tensor names/shapes follow the pinned tree: src/llama-arch.cpp
// (LLM_KV_*, LLM_TENSOR_*), src/models/{llama,qwen2,qwen3,qwen3moe,phi3,gemma3,openai-moe}.cpp
// (load_arch_tensors)
// and the HF converters (conversion/base.py, conversion/llama.py).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ggml.h"

namespace colony {

/// Architecture of a synthetic model; its GGUF name is synth_arch_name().
enum class SynthArch { kLlama, kQwen2, kQwen3, kQwen3Moe, kPhi3, kQwen2Moe, kGemma3, kGptOss };

/// "llama", "qwen2", "qwen3", "qwen3moe", "phi3", "qwen2moe", "gemma3", "gpt-oss"
/// (general.architecture).
const char *synth_arch_name(SynthArch arch);

/// Hyper-parameters of a synthetic model. Shapes use ggml order (ne[0] innermost):
/// attn_q.weight is [n_embd, head_dim*n_head], ffn_down.weight [n_ff, n_embd].
struct SynthHparams {
    std::string preset;  // preset name, also written to general.name
    SynthArch arch = SynthArch::kLlama;
    uint32_t n_layer = 0;      // transformer blocks
    uint32_t n_embd = 0;       // hidden size
    uint32_t n_head = 0;       // query heads
    uint32_t n_head_kv = 0;    // key/value heads (GQA when < n_head)
    uint32_t n_ff = 0;         // feed-forward inner size
    uint32_t head_dim = 0;     // per-head size of Q, K and V (= RoPE dims)
    uint32_t n_ctx_train = 0;  // <arch>.context_length, tokens
    float rope_freq_base = 10000.0f;
    float rms_eps = 1e-5f;
    bool qkv_bias = false;         // attn_{q,k,v}.bias (qwen2)
    bool qk_norm = false;          // attn_{q,k}_norm.weight of size head_dim (qwen3)
    bool tied_embeddings = false;  // no output.weight: the LM head is token_embd
    bool write_head_dim = false;   // write <arch>.attention.key_length/value_length
    // Llama 3 RoPE scaling, written as the rope_freqs.weight tensor the way the
    // HF converter does (conversion/llama.py, generate_extra_tensors); 0 = none.
    float rope_llama3_factor = 0.0f;
    float rope_llama3_low_freq_factor = 1.0f;
    float rope_llama3_high_freq_factor = 4.0f;
    uint32_t rope_llama3_orig_ctx = 8192;
    // phi3: LongRoPE, as the converter writes it (conversion/phi.py): per-dimension
    // factors for contexts up to rope_orig_ctx (short) and beyond (long) as
    // rope_factors_{short,long}.weight, and rope.scaling.attn_factor
    // sqrt(1 + ln(n_ctx_train / rope_orig_ctx) / ln(rope_orig_ctx)); 0 = none
    uint32_t rope_orig_ctx = 0;
    // YaRN RoPE scaling (gpt-oss): rope.scaling.type "yarn" with this factor
    // over rope_orig_ctx; 0 = none
    float rope_yarn_factor = 0.0f;
    // qwen3moe: routed experts per block, used per token, and their inner size
    uint32_t n_expert = 0;
    uint32_t n_expert_used = 0;
    uint32_t n_ff_exp = 0;
    uint32_t n_ff_shexp = 0;  // qwen2moe: the shared expert's inner size
    // gemma3 and gpt-oss: the sliding window of their local blocks and their
    // pattern (every swa_pattern-th block global; written when not the
    // architecture's default in llama.cpp: 6 for gemma3, 2 for gpt-oss)
    uint32_t n_swa = 0;
    uint32_t swa_pattern = 6;
    std::string vocab_file;  // vocab GGUF name in <llama.cpp tree>/models/
};

/// A named preset with the hyper-parameters of a released model.
struct SynthPreset {
    const char *name;
    const char *description;
    SynthHparams hparams;
};

/// All presets, in a stable order (for --help).
const std::vector<SynthPreset> &synth_presets();

/// Hyper-parameters of preset `name` (exact match). Errors: kInvalidArgument
/// naming the known presets.
SynthHparams synth_find_preset(std::string_view name);

/// Overrides for "tiny" variants; unset fields keep the preset's value.
struct SynthOverrides {
    std::optional<uint32_t> n_layer;
    std::optional<uint32_t> n_embd;
    std::optional<uint32_t> n_head;
    std::optional<uint32_t> n_head_kv;
    std::optional<uint32_t> n_ff;
    std::optional<uint32_t> head_dim;
    std::optional<uint32_t> n_ctx_train;
    std::optional<uint32_t> n_expert;       // MoE presets only
    std::optional<uint32_t> n_expert_used;  // MoE presets only
    std::optional<uint32_t> n_ff_exp;       // MoE presets only
};

/// Applies `ov` to `hp` and validates the result (synth_validate_hparams).
/// head_dim: the override if given; else the preset's if neither n_embd nor
/// n_head is overridden; else n_embd / n_head. Errors: kInvalidArgument.
SynthHparams synth_apply_overrides(SynthHparams hp, const SynthOverrides &ov);

/// Checks that libllama can load a model with these hyper-parameters: all sizes
/// > 0, n_layer <= 512, n_head a multiple of n_head_kv, head_dim even, and for
/// qwen2 head_dim*n_head == n_embd (its tensors are sized by n_embd); for
/// qwen3moe and qwen2moe 1 <= n_expert_used <= n_expert <= 512 and n_ff_exp
/// > 0 (qwen2moe also n_ff_shexp > 0 and qwen2's head rule), for the others
/// no experts.
/// Errors: kInvalidArgument saying which value is wrong.
void synth_validate_hparams(const SynthHparams &hp);

/// A model file type: a llama_ftype (general.file_type) and its base tensor type.
struct SynthFtype {
    const char *name;     // "Q4_K_M", as llama-quantize spells it
    int32_t llama_ftype;  // enum llama_ftype value (include/llama.h)
    ggml_type base_type;  // type of most 2-D weights
};

/// Supported file types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q6_K Q4_K_S
/// Q4_K_M Q5_K_S Q5_K_M MXFP4_MOE (experts MXFP4, other matrices Q8_0: how
/// gpt-oss is released).
const std::vector<SynthFtype> &synth_ftypes();

/// File type by name, case-insensitive. Errors: kInvalidArgument naming the known ones.
SynthFtype synth_find_ftype(std::string_view name);

/// How a tensor's values are generated (see synth_fill_rows).
enum class SynthInit {
    kMatrix,     // N(0, 1/ne[0]): unit-variance outputs for unit-RMS inputs
    kNorm,       // 1 + N(0, 0.02^2): RMS-norm weights
    kBias,       // N(0, 0.02^2)
    kRopeFreqs,  // Llama 3 rope scaling factors (deterministic)
    kRopeShort,  // phi3 short factors: 1 + 0.1 i / (n - 1) (deterministic)
    kRopeLong,   // phi3 long factors: 1 + 40 (i / (n - 1))^2 (deterministic)
    kSink,       // N(0, 1): gpt-oss attention sink logits, on the scale of a score
};

/// One tensor of the planned file: name, ggml shape, stored type, generator.
struct SynthTensor {
    std::string name;
    int n_dims = 1;
    int64_t ne[3] = {1, 1, 1};  // ne[0] = row length (innermost), ne[1] rows, ne[2] experts
    ggml_type type = GGML_TYPE_F32;
    SynthInit init = SynthInit::kMatrix;

    int64_t n_rows() const { return ne[1] * ne[2]; }
    /// Bytes of the tensor's data (ggml_row_size(type, ne[0]) * n_rows()).
    uint64_t nbytes() const;
};

/// The tensors of a model in file order: token_embd, [rope_freqs], blk.0 ... blk.N-1
/// (attn_norm, attn_q/k/v [+bias] or phi3's attn_qkv (typed as attn_v, as
/// llama-quantize's category does), [attn_q_norm, attn_k_norm], attn_output,
/// ffn_norm, ffn_gate, ffn_up, ffn_down, or for MoE ffn_gate_inp (F32, as
/// llama-quantize leaves it), ffn_gate_exps, ffn_up_exps, ffn_down_exps, and
/// for qwen2moe the shared expert's ffn_gate_inp_shexp (F32) and
/// ffn_{gate,down,up}_shexp, typed
/// as ffn_gate/up/down; llama-quantize's special cases for 8 experts are not
/// applied; phi3: ffn_up of 2 n_ff rows and no ffn_gate), output_norm, [output];
/// phi3 with LongRoPE adds rope_factors_long and rope_factors_short after
/// token_embd. gpt-oss: attn_q/k/v and attn_output with biases, attn_sinks
/// [n_head], post_attention_norm (its pre-FFN norm) instead of ffn_norm,
/// and biases for the router [n_expert] and each expert (F32 [n_ff_exp,
/// n_expert] and [n_embd, n_expert]), as src/models/openai-moe.cpp loads them.
/// Types follow llama-quantize's llama_tensor_get_type (src/llama-quant.cpp) for
/// the chosen file type: 1-D tensors F32; F32/F16/BF16 files: every 2-D weight in that
/// type; quantized files: output (and token_embd when tied) Q6_K
/// unless the type is Q8_0 or ne[0] is not a block multiple (then Q8_0);
/// Q4_K_M/Q5_K_M: attn_v and ffn_down Q6_K on "use_more_bits" layers;
/// Q4_K_S: attn_v on layers < 4 and ffn_down on layers < n_layer/8 Q5_K;
/// rows not a multiple of the block size fall back (Q4_K->Q5_0, Q5_K->Q5_1,
/// Q6_K->Q8_0, else F16); MXFP4_MOE: 3-D expert tensors MXFP4, other
/// matrices and the output Q8_0. `hp` must be valid.
std::vector<SynthTensor> synth_plan_tensors(const SynthHparams &hp, uint32_t n_vocab,
                                            const SynthFtype &ftype);

/// Fills rows [row0, row0 + n_rows) of `t` as F32 into `dst` (n_rows * ne[0] floats).
/// Element i (row-major index r*ne[0] + c) of a random tensor is derived from
/// splitmix64(key + (i+1)*0x9E3779B97F4A7C15) with key = splitmix64(seed ^ FNV-1a(name));
/// its four 16-bit pieces are summed (Irwin-Hall, n=4) and scaled to unit variance,
/// a bounded (|z| < 3.47) approximately normal value. ref: Steele et al., "Fast
/// splittable pseudorandom number generators", OOPSLA 2014 (splitmix64).
void synth_fill_rows(const SynthTensor &t, const SynthHparams &hp, uint64_t seed, int64_t row0,
                     int64_t n_rows, float *dst);

/// Progress of synth_write_gguf, reported (on the calling thread) after each chunk of
/// rows is written.
struct SynthProgress {
    size_t i_tensor = 0;  // index of the tensor being written
    size_t n_tensors = 0;
    const char *tensor_name = "";
    uint64_t bytes_written = 0;  // including the metadata
    uint64_t bytes_total = 0;    // final file size
};

/// What synth_write_gguf writes, and how.
struct SynthOptions {
    SynthHparams hparams;  // must be valid
    SynthFtype ftype = synth_find_ftype("F16");
    uint64_t seed = 1;
    std::string vocab_path;     // empty: synth_default_vocab_path(hparams)
    std::string chat_template;  // non-empty: tokenizer.chat_template (replaces the vocab's)
    std::string out_path;       // written via "<out_path>.partial", renamed at the end
    int n_threads = 1;          // threads generating and quantizing rows
    std::function<void(const SynthProgress &)> on_progress;  // optional, calling thread
};

/// <llama.cpp tree>/models/<hp.vocab_file>, the tree being the build's COLONY_LLAMA_DIR.
std::string synth_default_vocab_path(const SynthHparams &hp);

/// Chat template set when the vocab has none: ChatML for qwen2/qwen3, the Llama 3
/// instruct template for llama (both detected by llama_chat_apply_template).
const char *synth_fallback_chat_template(SynthArch arch);

/// Summary of a written file.
struct SynthResult {
    size_t n_tensors = 0;
    uint64_t n_bytes = 0;  // file size
    uint32_t n_vocab = 0;  // tokens in the copied vocab
};

/// Writes the model to opts.out_path, streaming: tensors are generated and
/// quantized in chunks of rows and appended, so memory stays bounded
/// (~100 MB of buffers) whatever the model size. Metadata: general.*, the
/// "<arch>.*" hyper-parameters, every "tokenizer.*" key of the vocab GGUF,
/// colony.synth.{preset,seed}. Errors: kNotFound (vocab missing), kCorrupt
/// (vocab not a GGUF with tokenizer.ggml.tokens), kInvalidArgument (bad
/// options, output not writable), kResource (write failed, e.g. disk full).
/// On error no file is left at out_path (nor the .partial file).
SynthResult synth_write_gguf(const SynthOptions &opts);

}  // namespace colony
