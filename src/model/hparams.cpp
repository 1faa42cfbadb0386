#include "model/hparams.h"

#include <cmath>

#include "model/gguf_file.h"
#include "util/error.h"

namespace colony {

const char *arch_name(Arch arch) {
    switch (arch) {
        case Arch::kLlama:
            return "llama";
        case Arch::kQwen2:
            return "qwen2";
        case Arch::kQwen3:
            return "qwen3";
        case Arch::kQwen3Moe:
            return "qwen3moe";
        case Arch::kPhi3:
            return "phi3";
        case Arch::kQwen2Moe:
            return "qwen2moe";
        case Arch::kGemma3:
            return "gemma3";
        case Arch::kGptOss:
            return "gpt-oss";
    }
    return "?";
}

namespace {

Arch parse_arch(const std::string &path, const std::string &name) {
    if (name == "llama")
        return Arch::kLlama;
    if (name == "qwen2")
        return Arch::kQwen2;
    if (name == "qwen3")
        return Arch::kQwen3;
    if (name == "qwen3moe")
        return Arch::kQwen3Moe;
    if (name == "phi3")
        return Arch::kPhi3;
    if (name == "qwen2moe")
        return Arch::kQwen2Moe;
    if (name == "gemma3")
        return Arch::kGemma3;
    if (name == "gpt-oss")
        return Arch::kGptOss;
    throw Error(
        ErrorCode::kUnsupported,
        path + ": unsupported architecture '" + name +
            "' (colony supports llama, qwen2, qwen2moe, qwen3, qwen3moe, phi3, gemma3, gpt-oss)");
}

uint32_t positive(const GgufFile &f, const std::string &key, int64_t v) {
    if (v <= 0 || v > (1 << 24)) {
        throw Error(ErrorCode::kCorrupt,
                    f.path() + ": key '" + key + "' has invalid value " + std::to_string(v));
    }
    return static_cast<uint32_t>(v);
}

// The routed experts of a MoE block (src/models/qwen3moe.cpp,
// qwen2moe.cpp, load_arch_hparams): expert_count and expert_used_count are
// required, expert_feed_forward_length defaults to feed_forward_length /
// used, expert_shared_feed_forward_length (qwen2moe) to feed_forward_length.
void read_experts(const GgufFile &f, const std::string &a, ModelHparams *hp) {
    auto req = [&](const std::string &k) { return positive(f, a + k, f.require_int(a + k)); };
    hp->n_expert = req("expert_count");
    hp->n_expert_used = req("expert_used_count");
    if (hp->n_expert > kMaxExperts || hp->n_expert_used > hp->n_expert) {
        throw Error(ErrorCode::kCorrupt,
                    f.path() + ": " + std::to_string(hp->n_expert_used) + " of " +
                        std::to_string(hp->n_expert) + " experts used (at most " +
                        std::to_string(kMaxExperts) + " experts, and used <= count)");
    }
    hp->n_ff_exp = f.get_int(a + "expert_feed_forward_length") ? req("expert_feed_forward_length")
                                                               : hp->n_ff / hp->n_expert_used;
    if (hp->n_ff_exp == 0)
        throw Error(ErrorCode::kCorrupt, f.path() + ": the experts' feed-forward size is 0");
    if (hp->arch == Arch::kQwen2Moe) {
        hp->n_ff_shexp = f.get_int(a + "expert_shared_feed_forward_length")
                             ? req("expert_shared_feed_forward_length")
                             : hp->n_ff;
    }
}

// attention.sliding_window_pattern, else the architecture's default
// (llama_model_base::load_swa_pattern); a per-layer array is refused.
void read_swa_pattern(const GgufFile &f, const std::string &a, uint32_t dflt, ModelHparams *hp) {
    hp->swa_pattern = dflt;
    if (f.get_array_size(a + "attention.sliding_window_pattern"))
        throw Error(ErrorCode::kUnsupported,
                    f.path() + ": a per-layer sliding_window_pattern array is not supported");
    if (auto pat = f.get_int(a + "attention.sliding_window_pattern")) {
        if (*pat < 0 || *pat > (1 << 16))
            throw Error(ErrorCode::kCorrupt, f.path() + ": sliding_window_pattern out of range");
        hp->swa_pattern = static_cast<uint32_t>(*pat);
    }
}

// Gemma 3's sliding window and scales (llama_model_gemma3::load_arch_hparams):
// a window when attention.sliding_window > 0, in a pattern of 6 unless
// attention.sliding_window_pattern says otherwise (a per-layer array is not
// supported), RoPE base rope.freq_base_swa (default 10000) in windowed blocks.
void read_gemma3(const GgufFile &f, const std::string &a, ModelHparams *hp) {
    if (auto swa = f.get_int(a + "attention.sliding_window"); swa && *swa > 0) {
        hp->n_swa = positive(f, a + "attention.sliding_window", *swa);
        read_swa_pattern(f, a, 6, hp);
        if (auto base = f.get_float(a + "rope.freq_base_swa"))
            hp->rope_freq_base_swa = static_cast<float>(*base);
    }
    if (auto cap = f.get_float(a + "final_logit_softcapping"))
        hp->final_logit_softcap = static_cast<float>(*cap);
    // gemma_pytorch's query_pre_attn_scalar: n_embd / n_head for the 27B (62 blocks)
    hp->attn_scale = hp->n_layer == 62
                         ? 1.0f / std::sqrt(static_cast<float>(hp->n_embd / hp->n_head))
                         : 1.0f / std::sqrt(static_cast<float>(hp->head_dim_k));
    hp->has_qk_norm = true;
}

// gpt-oss's window (llama_model_openai_moe::load_arch_hparams): required,
// in a pattern of 2 unless sliding_window_pattern says otherwise; windowed
// blocks keep the model's RoPE scale and take rope.freq_base_swa when given,
// else the model's base.
void read_gpt_oss(const GgufFile &f, const std::string &a, ModelHparams *hp) {
    hp->n_swa =
        positive(f, a + "attention.sliding_window", f.require_int(a + "attention.sliding_window"));
    read_swa_pattern(f, a, 2, hp);
    hp->rope_freq_base_swa = hp->rope_freq_base;
    if (auto base = f.get_float(a + "rope.freq_base_swa"))
        hp->rope_freq_base_swa = static_cast<float>(*base);
    hp->rope_freq_scale_swa = hp->rope_freq_scale;
}

// rope.scaling.type and factor (llama_model_base::load_hparams): linear
// scales positions by 1/factor; YaRN does too and sets ext_factor 1
// (llama_context). llama.cpp's YaRN attention factor, get_mscale(factor) /
// (1 + 0.1 ln factor), is 1 without rope.scaling.yarn_log_multiplier (which
// only DeepSeek reads), so rope.scaling.attn_factor is used as it is.
void read_rope_scaling(const GgufFile &f, const std::string &a, ModelHparams *hp) {
    auto scaling = f.get_string(a + "rope.scaling.type");
    if (!scaling || *scaling == "none")
        return;
    if (*scaling != "linear" && *scaling != "yarn")
        throw Error(ErrorCode::kUnsupported,
                    f.path() + ": RoPE scaling '" + *scaling + "' is not supported");
    const double factor = f.get_float(a + "rope.scaling.factor").value_or(1.0);
    if (!(factor > 0 && factor < 1e6))
        throw Error(ErrorCode::kCorrupt, f.path() + ": rope.scaling.factor must be > 0");
    hp->rope_freq_scale = static_cast<float>(1.0 / factor);
    if (*scaling == "yarn")
        hp->rope_ext_factor = 1.0f;
}

}  // namespace

ModelHparams ModelHparams::from_gguf(const GgufFile &f) {
    ModelHparams hp;
    hp.arch_name = f.require_string("general.architecture");
    hp.arch = parse_arch(f.path(), hp.arch_name);
    const std::string a = hp.arch_name + ".";
    auto req = [&](const std::string &k) { return positive(f, a + k, f.require_int(a + k)); };

    hp.n_layer = req("block_count");
    // Per-layer state is allocated from it before any tensor is looked at
    // (found by fuzz_shard: a block_count of tens of millions took 11 s and
    // GBs). Published models have a few hundred blocks.
    if (hp.n_layer > kMaxLayers) {
        throw Error(ErrorCode::kCorrupt, f.path() + ": block_count " + std::to_string(hp.n_layer) +
                                             " exceeds " + std::to_string(kMaxLayers));
    }
    hp.n_embd = req("embedding_length");
    hp.n_ff = req("feed_forward_length");
    hp.n_head = req("attention.head_count");
    hp.n_head_kv =
        f.get_int(a + "attention.head_count_kv")
            ? positive(f, a + "attention.head_count_kv", *f.get_int(a + "attention.head_count_kv"))
            : hp.n_head;
    hp.n_ctx_train = f.get_int(a + "context_length") ? req("context_length") : 2048;
    if (hp.n_head % hp.n_head_kv != 0) {
        throw Error(ErrorCode::kCorrupt, f.path() + ": head_count " + std::to_string(hp.n_head) +
                                             " is not a multiple of head_count_kv " +
                                             std::to_string(hp.n_head_kv));
    }
    const uint32_t default_head = hp.n_embd / hp.n_head;
    hp.head_dim_k =
        f.get_int(a + "attention.key_length") ? req("attention.key_length") : default_head;
    hp.head_dim_v =
        f.get_int(a + "attention.value_length") ? req("attention.value_length") : default_head;
    hp.n_rot = f.get_int(a + "rope.dimension_count") ? req("rope.dimension_count") : hp.head_dim_k;
    if (hp.head_dim_k != hp.head_dim_v || hp.n_rot != hp.head_dim_k) {
        throw Error(
            ErrorCode::kUnsupported,
            f.path() + ": partial RoPE or key/value head sizes that differ are not supported");
    }
    if (auto eps = f.get_float(a + "attention.layer_norm_rms_epsilon"))
        hp.rms_eps = static_cast<float>(*eps);
    if (auto base = f.get_float(a + "rope.freq_base"))
        hp.rope_freq_base = static_cast<float>(*base);
    read_rope_scaling(f, a, &hp);
    hp.n_ctx_orig = f.get_int(a + "rope.scaling.original_context_length")
                        ? req("rope.scaling.original_context_length")
                        : hp.n_ctx_train;
    if (auto attn = f.get_float(a + "rope.scaling.attn_factor")) {
        if (!(*attn > 0 && *attn < 100))
            throw Error(ErrorCode::kCorrupt, f.path() + ": rope.scaling.attn_factor out of range");
        hp.rope_attn_factor = static_cast<float>(*attn);
    }
    hp.rope_type = hp.arch == Arch::kLlama ? RopeType::kNormal : RopeType::kNeox;
    hp.has_qk_norm = hp.arch == Arch::kQwen3 || hp.arch == Arch::kQwen3Moe;
    if (hp.arch == Arch::kQwen3Moe || hp.arch == Arch::kQwen2Moe || hp.arch == Arch::kGptOss)
        read_experts(f, a, &hp);
    if (hp.arch == Arch::kGemma3)
        read_gemma3(f, a, &hp);
    if (hp.arch == Arch::kGptOss)
        read_gpt_oss(f, a, &hp);

    if (auto n = f.get_int(a + "vocab_size")) {
        hp.n_vocab = positive(f, a + "vocab_size", *n);
    } else if (auto n2 = f.get_array_size("tokenizer.ggml.tokens")) {
        hp.n_vocab = positive(f, "tokenizer.ggml.tokens", static_cast<int64_t>(*n2));
    } else if (const GgufTensor *t = f.find("token_embd.weight")) {
        hp.n_vocab = positive(f, "token_embd.weight", t->meta->ne[1]);
    } else {
        throw Error(ErrorCode::kCorrupt, f.path() + ": cannot determine the vocabulary size");
    }
    return hp;
}

}  // namespace colony
