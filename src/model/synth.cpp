// Presets, file types and the tensor plan of synthetic models (see synth.h).
#include "model/synth.h"

#include <algorithm>
#include <cctype>

#include "llama.h"
#include "util/error.h"

namespace colony {

namespace {

// Presets: config.json of each released model on Hugging Face, as converted by the
// pinned tree (conversion/base.py writes key_length/value_length only when the
// config has head_dim; conversion/llama.py writes rope_freqs for "llama3" RoPE).
SynthHparams make_qwen2(const char *name, uint32_t n_layer, uint32_t n_embd, uint32_t n_head,
                        uint32_t n_head_kv, uint32_t n_ff) {
    SynthHparams hp;
    hp.preset = name;
    hp.arch = SynthArch::kQwen2;
    hp.n_layer = n_layer;
    hp.n_embd = n_embd;
    hp.n_head = n_head;
    hp.n_head_kv = n_head_kv;
    hp.n_ff = n_ff;
    hp.head_dim = n_embd / n_head;
    hp.n_ctx_train = 32768;
    hp.rope_freq_base = 1000000.0f;
    hp.rms_eps = 1e-6f;
    hp.qkv_bias = true;
    hp.tied_embeddings = true;
    hp.vocab_file = "ggml-vocab-qwen2.gguf";
    return hp;
}

SynthHparams make_qwen3_0_6b() {
    SynthHparams hp;
    hp.preset = "qwen3-0.6b";
    hp.arch = SynthArch::kQwen3;
    hp.n_layer = 28;
    hp.n_embd = 1024;
    hp.n_head = 16;
    hp.n_head_kv = 8;
    hp.n_ff = 3072;
    hp.head_dim = 128;  // != n_embd / n_head
    hp.n_ctx_train = 40960;
    hp.rope_freq_base = 1000000.0f;
    hp.rms_eps = 1e-6f;
    hp.qk_norm = true;
    hp.tied_embeddings = true;
    hp.write_head_dim = true;
    hp.vocab_file = "ggml-vocab-qwen2.gguf";
    return hp;
}

// Qwen3-30B-A3B (config.json): 48 blocks, 128 experts of inner size 768, 8
// used per token; feed_forward_length 6144 is the dense size the converter
// also writes (unused by the MoE blocks).
SynthHparams make_qwen3_30b_a3b() {
    SynthHparams hp = make_qwen3_0_6b();
    hp.preset = "qwen3-30b-a3b";
    hp.arch = SynthArch::kQwen3Moe;
    hp.n_layer = 48;
    hp.n_embd = 2048;
    hp.n_head = 32;
    hp.n_head_kv = 4;
    hp.n_ff = 6144;
    hp.head_dim = 128;
    hp.tied_embeddings = false;
    hp.n_expert = 128;
    hp.n_expert_used = 8;
    hp.n_ff_exp = 768;
    return hp;
}

// Qwen1.5-MoE-A2.7B (config.json): qwen2moe, 24 blocks, 60 experts of inner
// size 1408 (4 used) and a shared expert of 5632; QKV biases, untied.
SynthHparams make_qwen1_5_moe_a2_7b() {
    SynthHparams hp = make_qwen2("qwen1.5-moe-a2.7b", 24, 2048, 16, 16, 5632);
    hp.arch = SynthArch::kQwen2Moe;
    hp.n_ctx_train = 8192;
    hp.tied_embeddings = false;
    hp.n_expert = 60;
    hp.n_expert_used = 4;
    hp.n_ff_exp = 1408;
    hp.n_ff_shexp = 5632;
    return hp;
}

// Phi-3.5-mini-instruct (config.json): 32 blocks, 3072 embd, 32 heads of 96
// (no GQA), ff 8192, 128k context by LongRoPE over an original 4096.
SynthHparams make_phi3_5_mini() {
    SynthHparams hp;
    hp.preset = "phi-3.5-mini";
    hp.arch = SynthArch::kPhi3;
    hp.n_layer = 32;
    hp.n_embd = 3072;
    hp.n_head = 32;
    hp.n_head_kv = 32;
    hp.n_ff = 8192;
    hp.head_dim = 96;
    hp.n_ctx_train = 131072;
    hp.rope_orig_ctx = 4096;
    hp.rope_freq_base = 10000.0f;
    hp.rms_eps = 1e-5f;
    hp.vocab_file = "ggml-vocab-phi-3.gguf";
    return hp;
}

// Gemma-3-1B-it (config.json): 26 blocks, 1152 embd, 4 heads of 256 over 1
// KV head, ff 6912, a window of 512 in 5 of every 6 blocks, RoPE base 1e6
// (10000 in windowed blocks), QK-norm, post norms, tied. Its tokenizer is a
// 262144-token SentencePiece vocabulary; the pinned tree has Gemma 4's of the
// same size, used here (a synthetic model's text is noise either way).
SynthHparams make_gemma3_1b() {
    SynthHparams hp;
    hp.preset = "gemma-3-1b";
    hp.arch = SynthArch::kGemma3;
    hp.n_layer = 26;
    hp.n_embd = 1152;
    hp.n_head = 4;
    hp.n_head_kv = 1;
    hp.n_ff = 6912;
    hp.head_dim = 256;
    hp.n_ctx_train = 32768;
    hp.rope_freq_base = 1000000.0f;
    hp.rms_eps = 1e-6f;
    hp.qk_norm = true;
    hp.tied_embeddings = true;
    hp.write_head_dim = true;
    hp.n_swa = 512;
    hp.vocab_file = "ggml-vocab-gemma-4.gguf";
    return hp;
}

// gpt-oss-20b (openai/gpt-oss-20b config.json, as conversion/gpt_oss.py
// writes it): 24 blocks, 2880 wide, 64 query heads and 8 KV heads of 64, a
// window of 128 in every other block, YaRN 32x over 4096, 32 experts (4 used)
// of 2880. Its o200k tokenizer is not in the pinned tree: the Llama 3 one
// (a tiktoken-style BPE of 128256 tokens) stands in.
SynthHparams make_gpt_oss(const char *name, uint32_t n_layer, uint32_t n_expert) {
    SynthHparams hp;
    hp.preset = name;
    hp.arch = SynthArch::kGptOss;
    hp.n_layer = n_layer;
    hp.n_embd = 2880;
    hp.n_head = 64;
    hp.n_head_kv = 8;
    hp.n_ff = 2880;
    hp.head_dim = 64;
    hp.n_ctx_train = 131072;
    hp.rope_freq_base = 150000.0f;
    hp.rms_eps = 1e-5f;
    hp.qkv_bias = true;
    hp.write_head_dim = true;
    hp.rope_orig_ctx = 4096;
    hp.rope_yarn_factor = 32.0f;
    hp.n_swa = 128;
    hp.swa_pattern = 2;
    hp.n_expert = n_expert;
    hp.n_expert_used = 4;
    hp.n_ff_exp = 2880;
    hp.vocab_file = "ggml-vocab-llama-bpe.gguf";
    return hp;
}

SynthHparams make_llama3(const char *name, uint32_t n_layer, uint32_t n_embd, uint32_t n_head,
                         uint32_t n_head_kv, uint32_t n_ff, bool llama3_2) {
    SynthHparams hp;
    hp.preset = name;
    hp.arch = SynthArch::kLlama;
    hp.n_layer = n_layer;
    hp.n_embd = n_embd;
    hp.n_head = n_head;
    hp.n_head_kv = n_head_kv;
    hp.n_ff = n_ff;
    hp.head_dim = n_embd / n_head;
    hp.rope_freq_base = 500000.0f;
    hp.rms_eps = 1e-5f;
    hp.vocab_file = "ggml-vocab-llama-bpe.gguf";
    if (llama3_2) {
        // Llama 3.2: tied embeddings, head_dim in config, 128k context with "llama3"
        // RoPE scaling (factor 32, low 1, high 4, original 8192).
        hp.n_ctx_train = 131072;
        hp.tied_embeddings = true;
        hp.write_head_dim = true;
        hp.rope_llama3_factor = 32.0f;
    } else {
        hp.n_ctx_train = 8192;  // Llama 3 (not 3.1): no RoPE scaling
    }
    return hp;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// ref: src/llama-quant.cpp, llama_tensor_get_type_impl (use_more_bits lambda).
bool use_more_bits(int i_layer, int n_layer) {
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

// ref: src/llama-quant.cpp, tensor_type_fallback: a row length that is not a multiple of
// the block size demotes a 256-block K-quant to a 32-block type, else to F16.
ggml_type fallback_type(ggml_type type, int64_t ncols) {
    if (ncols % ggml_blck_size(type) == 0) {
        return type;
    }
    ggml_type out = type;
    switch (type) {
        case GGML_TYPE_Q4_K:
            out = GGML_TYPE_Q5_0;
            break;
        case GGML_TYPE_Q5_K:
            out = GGML_TYPE_Q5_1;
            break;
        case GGML_TYPE_Q6_K:
            out = GGML_TYPE_Q8_0;
            break;
        default:
            break;
    }
    return ncols % ggml_blck_size(out) == 0 ? out : GGML_TYPE_F16;
}

enum class Role {
    kTokenEmbd,
    kOutput,
    kAttnQ,
    kAttnK,
    kAttnV,
    kAttnOut,
    kFfnGate,
    kFfnUp,
    kFfnDown
};

// Type of a 2-D weight; ref: src/llama-quant.cpp, llama_tensor_get_type and
// llama_tensor_get_type_impl, restricted to the file types of synth_ftypes(), no imatrix.
// For these architectures the attn_v and ffn_down counters equal the layer index.
ggml_type weight_type(const SynthFtype &ft, Role role, int il, int n_layer, bool tied,
                      int64_t ncols) {
    const ggml_type base = ft.base_type;
    if (!ggml_is_quantized(base)) {
        return base;  // F32/F16/BF16: every 2-D weight gets the base type
    }
    ggml_type t = base;
    const auto ftype = static_cast<llama_ftype>(ft.llama_ftype);
    if (ftype == LLAMA_FTYPE_MOSTLY_MXFP4_MOE)  // experts are typed by expert_type
        return fallback_type(GGML_TYPE_Q8_0, ncols);
    if (role == Role::kOutput || (tied && role == Role::kTokenEmbd)) {
        if (ncols % ggml_blck_size(base) != 0) {
            t = GGML_TYPE_Q8_0;
        } else if (base != GGML_TYPE_Q8_0) {
            t = GGML_TYPE_Q6_K;
        }
    } else if (role == Role::kAttnV) {
        if ((ftype == LLAMA_FTYPE_MOSTLY_Q4_K_M || ftype == LLAMA_FTYPE_MOSTLY_Q5_K_M) &&
            use_more_bits(il, n_layer)) {
            t = GGML_TYPE_Q6_K;
        } else if (ftype == LLAMA_FTYPE_MOSTLY_Q4_K_S && il < 4) {
            t = GGML_TYPE_Q5_K;
        }
    } else if (role == Role::kFfnDown) {
        if ((ftype == LLAMA_FTYPE_MOSTLY_Q4_K_M || ftype == LLAMA_FTYPE_MOSTLY_Q5_K_M) &&
            use_more_bits(il, n_layer)) {
            t = GGML_TYPE_Q6_K;
        } else if (ftype == LLAMA_FTYPE_MOSTLY_Q4_K_S && il < n_layer / 8) {
            t = GGML_TYPE_Q5_K;
        }
    }
    return fallback_type(t, ncols);
}

// A 3-D expert tensor's type: MXFP4 in an MXFP4_MOE file (llama-quantize:
// tensors with ne[2] > 1), else as its role's 2-D type.
ggml_type expert_type(const SynthFtype &ft, Role role, int il, int n_layer, int64_t ncols) {
    if (ft.llama_ftype == LLAMA_FTYPE_MOSTLY_MXFP4_MOE)
        return fallback_type(GGML_TYPE_MXFP4, ncols);
    return weight_type(ft, role, il, n_layer, false, ncols);
}

SynthTensor vector_tensor(std::string name, int64_t n, SynthInit init) {
    SynthTensor t;
    t.name = std::move(name);
    t.n_dims = 1;
    t.ne[0] = n;
    t.ne[1] = 1;
    t.type = GGML_TYPE_F32;
    t.init = init;
    return t;
}

SynthTensor matrix_tensor(std::string name, int64_t ne0, int64_t ne1, ggml_type type) {
    SynthTensor t;
    t.name = std::move(name);
    t.n_dims = 2;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.type = type;
    t.init = SynthInit::kMatrix;
    return t;
}

// The matrices of n_experts experts, one after another ([ne0, ne1, n_experts]).
SynthTensor experts_tensor(std::string name, int64_t ne0, int64_t ne1, int64_t n_experts,
                           ggml_type type) {
    SynthTensor t = matrix_tensor(std::move(name), ne0, ne1, type);
    t.n_dims = 3;
    t.ne[2] = n_experts;
    return t;
}

void check(bool ok, const std::string &what) {
    if (!ok) {
        throw Error(ErrorCode::kInvalidArgument, "" + what);
    }
}

}  // namespace

const char *synth_arch_name(SynthArch arch) {
    switch (arch) {
        case SynthArch::kLlama:
            return "llama";
        case SynthArch::kQwen2:
            return "qwen2";
        case SynthArch::kQwen3:
            return "qwen3";
        case SynthArch::kQwen3Moe:
            return "qwen3moe";
        case SynthArch::kPhi3:
            return "phi3";
        case SynthArch::kQwen2Moe:
            return "qwen2moe";
        case SynthArch::kGemma3:
            return "gemma3";
        case SynthArch::kGptOss:
            return "gpt-oss";
    }
    return "?";
}

const std::vector<SynthPreset> &synth_presets() {
    static const std::vector<SynthPreset> presets = {
        {"qwen2.5-0.5b", "Qwen2.5-0.5B: qwen2, 24 layers, 896 embd, 14/2 heads, ff 4864, tied",
         make_qwen2("qwen2.5-0.5b", 24, 896, 14, 2, 4864)},
        {"qwen2.5-1.5b", "Qwen2.5-1.5B: qwen2, 28 layers, 1536 embd, 12/2 heads, ff 8960, tied",
         make_qwen2("qwen2.5-1.5b", 28, 1536, 12, 2, 8960)},
        {"qwen3-0.6b",
         "Qwen3-0.6B: qwen3, 28 layers, 1024 embd, 16/8 heads x 128, ff 3072, QK-norm, tied",
         make_qwen3_0_6b()},
        {"qwen3-30b-a3b",
         "Qwen3-30B-A3B: qwen3moe, 48 layers, 2048 embd, 32/4 heads x 128, 128 experts "
         "(8 used) x ff 768, QK-norm",
         make_qwen3_30b_a3b()},
        {"qwen1.5-moe-a2.7b",
         "Qwen1.5-MoE-A2.7B: qwen2moe, 24 layers, 2048 embd, 16/16 heads, 60 experts (4 used) x "
         "ff 1408 and a shared expert of 5632, QKV biases",
         make_qwen1_5_moe_a2_7b()},
        {"phi-3.5-mini",
         "Phi-3.5-mini: phi3, 32 layers, 3072 embd, 32/32 heads x 96, ff 8192, fused QKV and "
         "gate-up, LongRoPE",
         make_phi3_5_mini()},
        {"gemma-3-1b",
         "Gemma-3-1B: gemma3, 26 layers, 1152 embd, 4/1 heads x 256, ff 6912, window 512 in 5 of "
         "6 blocks, QK-norm, post norms, tied",
         make_gemma3_1b()},
        {"gpt-oss-20b",
         "gpt-oss-20b: gpt-oss, 24 layers, 2880 embd, 64/8 heads x 64, 32 experts (4 used) x ff "
         "2880, window 128 in every other block, attention sinks, YaRN (Llama 3 tokenizer)",
         make_gpt_oss("gpt-oss-20b", 24, 32)},
        {"gpt-oss-120b",
         "gpt-oss-120b: gpt-oss, 36 layers, 2880 embd, 64/8 heads x 64, 128 experts (4 used) x "
         "ff 2880, window 128 in every other block, attention sinks, YaRN (Llama 3 tokenizer)",
         make_gpt_oss("gpt-oss-120b", 36, 128)},
        {"llama-3.2-1b",
         "Llama-3.2-1B: llama, 16 layers, 2048 embd, 32/8 heads, ff 8192, tied, rope_freqs",
         make_llama3("llama-3.2-1b", 16, 2048, 32, 8, 8192, true)},
        {"llama-3.2-3b",
         "Llama-3.2-3B: llama, 28 layers, 3072 embd, 24/8 heads, ff 8192, tied, rope_freqs",
         make_llama3("llama-3.2-3b", 28, 3072, 24, 8, 8192, true)},
        {"llama-3-8b",
         "Llama-3-8B: llama, 32 layers, 4096 embd, 32/8 heads, ff 14336, output.weight",
         make_llama3("llama-3-8b", 32, 4096, 32, 8, 14336, false)},
    };
    return presets;
}

SynthHparams synth_find_preset(std::string_view name) {
    std::string known;
    for (const SynthPreset &p : synth_presets()) {
        if (name == p.name) {
            return p.hparams;
        }
        known += known.empty() ? "" : ", ";
        known += p.name;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "unknown preset '" + std::string(name) + "' (known: " + known + ")");
}

void synth_validate_hparams(const SynthHparams &hp) {
    check(hp.n_layer >= 1 && hp.n_layer <= 512, "n_layer must be in [1, 512]");
    check(hp.n_embd >= 1, "n_embd must be > 0");
    check(hp.n_ff >= 1, "n_ff must be > 0");
    check(hp.n_ctx_train >= 1, "context length must be > 0");
    check(hp.n_head >= 1 && hp.n_head_kv >= 1, "n_head and n_head_kv must be > 0");
    check(hp.n_head % hp.n_head_kv == 0, "n_head (" + std::to_string(hp.n_head) +
                                             ") must be a multiple of n_head_kv (" +
                                             std::to_string(hp.n_head_kv) + ")");
    check(hp.head_dim >= 2 && hp.head_dim % 2 == 0,
          "head_dim must be even and > 0 (RoPE rotates pairs), got " + std::to_string(hp.head_dim));
    if (hp.arch == SynthArch::kQwen2 || hp.arch == SynthArch::kQwen2Moe) {
        check(uint64_t{hp.head_dim} * hp.n_head == hp.n_embd,
              "qwen2 needs head_dim * n_head == n_embd (its attention tensors are n_embd wide)");
    }
    if (hp.arch == SynthArch::kPhi3) {
        check(uint64_t{hp.head_dim} * hp.n_head == hp.n_embd,
              "phi3 needs head_dim * n_head == n_embd (its attn_output is n_embd square)");
    }
    if (hp.arch == SynthArch::kQwen2Moe)
        check(hp.n_ff_shexp >= 1, "n_ff_shexp must be > 0");
    if (hp.arch == SynthArch::kQwen3Moe || hp.arch == SynthArch::kQwen2Moe ||
        hp.arch == SynthArch::kGptOss) {
        check(hp.n_expert >= 1 && hp.n_expert <= 512, "n_expert must be in [1, 512]");
        check(hp.n_expert_used >= 1 && hp.n_expert_used <= hp.n_expert,
              "n_expert_used must be in [1, n_expert]");
        check(hp.n_ff_exp >= 1, "n_ff_exp must be > 0");
    } else {
        check(hp.n_expert == 0 && hp.n_expert_used == 0,
              std::string(synth_arch_name(hp.arch)) + " has no experts");
    }
}

SynthHparams synth_apply_overrides(SynthHparams hp, const SynthOverrides &ov) {
    const bool shape_changed = ov.n_embd.has_value() || ov.n_head.has_value();
    hp.n_layer = ov.n_layer.value_or(hp.n_layer);
    hp.n_embd = ov.n_embd.value_or(hp.n_embd);
    hp.n_head = ov.n_head.value_or(hp.n_head);
    hp.n_head_kv = ov.n_head_kv.value_or(hp.n_head_kv);
    hp.n_ff = ov.n_ff.value_or(hp.n_ff);
    hp.n_ctx_train = ov.n_ctx_train.value_or(hp.n_ctx_train);
    hp.n_expert = ov.n_expert.value_or(hp.n_expert);
    hp.n_expert_used = ov.n_expert_used.value_or(hp.n_expert_used);
    hp.n_ff_exp = ov.n_ff_exp.value_or(hp.n_ff_exp);
    if (ov.head_dim) {
        hp.head_dim = *ov.head_dim;
    } else if (shape_changed) {
        check(hp.n_head >= 1 && hp.n_embd % hp.n_head == 0,
              "n_embd (" + std::to_string(hp.n_embd) + ") is not a multiple of n_head (" +
                  std::to_string(hp.n_head) + "); give --head-dim");
        hp.head_dim = hp.n_embd / hp.n_head;
    }
    if (hp.head_dim * hp.n_head != hp.n_embd) {
        hp.write_head_dim = true;  // libllama would assume n_embd / n_head otherwise
    }
    synth_validate_hparams(hp);
    return hp;
}

const std::vector<SynthFtype> &synth_ftypes() {
    static const std::vector<SynthFtype> ftypes = {
        {"F32", LLAMA_FTYPE_ALL_F32, GGML_TYPE_F32},
        {"F16", LLAMA_FTYPE_MOSTLY_F16, GGML_TYPE_F16},
        {"BF16", LLAMA_FTYPE_MOSTLY_BF16, GGML_TYPE_BF16},
        {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0, GGML_TYPE_Q8_0},
        {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0, GGML_TYPE_Q4_0},
        {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1, GGML_TYPE_Q4_1},
        {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0, GGML_TYPE_Q5_0},
        {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1, GGML_TYPE_Q5_1},
        {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K, GGML_TYPE_Q6_K},
        {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S, GGML_TYPE_Q4_K},
        {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M, GGML_TYPE_Q4_K},
        {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S, GGML_TYPE_Q5_K},
        {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M, GGML_TYPE_Q5_K},
        {"MXFP4_MOE", LLAMA_FTYPE_MOSTLY_MXFP4_MOE, GGML_TYPE_MXFP4},
    };
    return ftypes;
}

SynthFtype synth_find_ftype(std::string_view name) {
    std::string known;
    for (const SynthFtype &f : synth_ftypes()) {
        if (lower(name) == lower(f.name)) {
            return f;
        }
        known += known.empty() ? "" : " ";
        known += f.name;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "unknown quant type '" + std::string(name) + "' (known: " + known + ")");
}

uint64_t SynthTensor::nbytes() const {
    return static_cast<uint64_t>(ggml_row_size(type, ne[0])) * static_cast<uint64_t>(n_rows());
}

std::vector<SynthTensor> synth_plan_tensors(const SynthHparams &hp, uint32_t n_vocab,
                                            const SynthFtype &ft) {
    const int n_layer = static_cast<int>(hp.n_layer);
    const int64_t n_embd = hp.n_embd;
    const int64_t n_q = int64_t{hp.head_dim} * hp.n_head;      // attn_q rows
    const int64_t n_kv = int64_t{hp.head_dim} * hp.n_head_kv;  // attn_k/attn_v rows
    const bool tied = hp.tied_embeddings;
    auto wtype = [&](Role role, int il, int64_t ncols) {
        return weight_type(ft, role, il, n_layer, tied, ncols);
    };
    auto blk = [](int il, const char *suffix) {
        return "blk." + std::to_string(il) + "." + suffix;
    };

    std::vector<SynthTensor> out;
    out.push_back(
        matrix_tensor("token_embd.weight", n_embd, n_vocab, wtype(Role::kTokenEmbd, -1, n_embd)));
    if (hp.rope_llama3_factor > 0.0f) {
        out.push_back(vector_tensor("rope_freqs.weight", hp.head_dim / 2, SynthInit::kRopeFreqs));
    }
    const bool phi3 = hp.arch == SynthArch::kPhi3;
    const bool gpt_oss = hp.arch == SynthArch::kGptOss;
    if (phi3 && hp.rope_orig_ctx > 0) {
        out.push_back(
            vector_tensor("rope_factors_long.weight", hp.head_dim / 2, SynthInit::kRopeLong));
        out.push_back(
            vector_tensor("rope_factors_short.weight", hp.head_dim / 2, SynthInit::kRopeShort));
    }
    for (int il = 0; il < n_layer; ++il) {
        out.push_back(vector_tensor(blk(il, "attn_norm.weight"), n_embd, SynthInit::kNorm));
        if (phi3) {
            out.push_back(matrix_tensor(blk(il, "attn_qkv.weight"), n_embd, n_q + 2 * n_kv,
                                        wtype(Role::kAttnV, il, n_embd)));
            out.push_back(matrix_tensor(blk(il, "attn_output.weight"), n_q, n_embd,
                                        wtype(Role::kAttnOut, il, n_q)));
            out.push_back(vector_tensor(blk(il, "ffn_norm.weight"), n_embd, SynthInit::kNorm));
            out.push_back(matrix_tensor(blk(il, "ffn_up.weight"), n_embd, 2 * int64_t{hp.n_ff},
                                        wtype(Role::kFfnUp, il, n_embd)));
            out.push_back(matrix_tensor(blk(il, "ffn_down.weight"), hp.n_ff, n_embd,
                                        wtype(Role::kFfnDown, il, hp.n_ff)));
            continue;
        }
        out.push_back(
            matrix_tensor(blk(il, "attn_q.weight"), n_embd, n_q, wtype(Role::kAttnQ, il, n_embd)));
        if (hp.qkv_bias) {
            out.push_back(vector_tensor(blk(il, "attn_q.bias"), n_q, SynthInit::kBias));
        }
        out.push_back(
            matrix_tensor(blk(il, "attn_k.weight"), n_embd, n_kv, wtype(Role::kAttnK, il, n_embd)));
        if (hp.qkv_bias) {
            out.push_back(vector_tensor(blk(il, "attn_k.bias"), n_kv, SynthInit::kBias));
        }
        out.push_back(
            matrix_tensor(blk(il, "attn_v.weight"), n_embd, n_kv, wtype(Role::kAttnV, il, n_embd)));
        if (hp.qkv_bias) {
            out.push_back(vector_tensor(blk(il, "attn_v.bias"), n_kv, SynthInit::kBias));
        }
        if (hp.qk_norm) {
            out.push_back(
                vector_tensor(blk(il, "attn_q_norm.weight"), hp.head_dim, SynthInit::kNorm));
            out.push_back(
                vector_tensor(blk(il, "attn_k_norm.weight"), hp.head_dim, SynthInit::kNorm));
        }
        out.push_back(matrix_tensor(blk(il, "attn_output.weight"), n_q, n_embd,
                                    wtype(Role::kAttnOut, il, n_q)));
        if (gpt_oss) {
            out.push_back(vector_tensor(blk(il, "attn_output.bias"), n_embd, SynthInit::kBias));
            out.push_back(vector_tensor(blk(il, "attn_sinks.weight"), hp.n_head, SynthInit::kSink));
        }
        if (hp.arch == SynthArch::kGemma3) {
            out.push_back(
                vector_tensor(blk(il, "post_attention_norm.weight"), n_embd, SynthInit::kNorm));
            out.push_back(vector_tensor(blk(il, "post_ffw_norm.weight"), n_embd, SynthInit::kNorm));
        }
        out.push_back(
            vector_tensor(blk(il, gpt_oss ? "post_attention_norm.weight" : "ffn_norm.weight"),
                          n_embd, SynthInit::kNorm));
        if (hp.n_expert > 0) {
            const int64_t nx = hp.n_expert, ff = hp.n_ff_exp;
            auto xtype = [&](Role role, int64_t ncols) {
                return expert_type(ft, role, il, n_layer, ncols);
            };
            auto expert_bias = [&](const char *name, int64_t n) {
                SynthTensor b = matrix_tensor(blk(il, name), n, nx, GGML_TYPE_F32);
                b.init = SynthInit::kBias;
                out.push_back(b);
            };
            out.push_back(matrix_tensor(blk(il, "ffn_gate_inp.weight"), n_embd, nx, GGML_TYPE_F32));
            if (gpt_oss)
                out.push_back(vector_tensor(blk(il, "ffn_gate_inp.bias"), nx, SynthInit::kBias));
            out.push_back(experts_tensor(blk(il, "ffn_gate_exps.weight"), n_embd, ff, nx,
                                         xtype(Role::kFfnGate, n_embd)));
            out.push_back(experts_tensor(blk(il, "ffn_down_exps.weight"), ff, n_embd, nx,
                                         xtype(Role::kFfnDown, ff)));
            out.push_back(experts_tensor(blk(il, "ffn_up_exps.weight"), n_embd, ff, nx,
                                         xtype(Role::kFfnUp, n_embd)));
            if (gpt_oss) {
                expert_bias("ffn_gate_exps.bias", ff);
                expert_bias("ffn_down_exps.bias", n_embd);
                expert_bias("ffn_up_exps.bias", ff);
            }
            if (hp.n_ff_shexp > 0) {
                const int64_t fs = hp.n_ff_shexp;
                out.push_back(vector_tensor(blk(il, "ffn_gate_inp_shexp.weight"), n_embd,
                                            SynthInit::kMatrix));
                out.push_back(matrix_tensor(blk(il, "ffn_gate_shexp.weight"), n_embd, fs,
                                            wtype(Role::kFfnGate, il, n_embd)));
                out.push_back(matrix_tensor(blk(il, "ffn_down_shexp.weight"), fs, n_embd,
                                            wtype(Role::kFfnDown, il, fs)));
                out.push_back(matrix_tensor(blk(il, "ffn_up_shexp.weight"), n_embd, fs,
                                            wtype(Role::kFfnUp, il, n_embd)));
            }
            continue;
        }
        out.push_back(matrix_tensor(blk(il, "ffn_gate.weight"), n_embd, hp.n_ff,
                                    wtype(Role::kFfnGate, il, n_embd)));
        out.push_back(matrix_tensor(blk(il, "ffn_up.weight"), n_embd, hp.n_ff,
                                    wtype(Role::kFfnUp, il, n_embd)));
        out.push_back(matrix_tensor(blk(il, "ffn_down.weight"), hp.n_ff, n_embd,
                                    wtype(Role::kFfnDown, il, hp.n_ff)));
    }
    out.push_back(vector_tensor("output_norm.weight", n_embd, SynthInit::kNorm));
    if (!tied) {
        out.push_back(
            matrix_tensor("output.weight", n_embd, n_vocab, wtype(Role::kOutput, -1, n_embd)));
    }
    return out;
}

}  // namespace colony
