// Streaming GGUF writer of synthetic models: metadata via the gguf API, then each
// tensor generated, quantized with ggml_quantize_chunk and appended (see synth.h).
//
// File layout (GGUF v3, ggml/docs/gguf.md): header + KV + tensor infos, padded to
// general.alignment (gguf_get_meta_data includes the padding), then each tensor's
// data at its info offset, each padded with zeros to the alignment.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "ggml-cpp.h"
#include "gguf.h"
#include "model/synth.h"
#include "util/error.h"
#include "util/log.h"

#ifndef COLONY_LLAMA_DIR
#define COLONY_LLAMA_DIR ""
#endif

namespace colony {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr int64_t kChunkElems = int64_t{8} << 20;  // floats generated per chunk (32 MiB)

// ref: splitmix64 finalizer (Steele, Lea, Flood 2014; constants from Vigna's splitmix64.c).
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// FNV-1a, 64-bit (http://www.isthe.com/chongo/tech/comp/fnv/).
uint64_t fnv1a64(const std::string &s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : s) {
        h = (h ^ c) * 0x100000001B3ull;
    }
    return h;
}

// Approximately N(0, 1): Irwin-Hall sum of four 16-bit uniforms, centred, scaled by
// sqrt(12/4) to unit variance.
inline float unit_normal(uint64_t u) {
    const uint64_t s = (u & 0xFFFF) + ((u >> 16) & 0xFFFF) + ((u >> 32) & 0xFFFF) + (u >> 48);
    constexpr float kScale = 1.7320508f / 65536.0f;
    return (static_cast<float>(s) - 2.0f * 65535.0f) * kScale;
}

// Llama 3 RoPE scaling factors, one per rotated pair; ref: conversion/llama.py,
// LlamaModel.generate_extra_tensors (rope_type "llama3").
float rope_llama3_factor(const SynthHparams &hp, int64_t i) {
    const double dim = hp.head_dim;
    const double freq = 1.0 / std::pow(static_cast<double>(hp.rope_freq_base), 2.0 * i / dim);
    const double wavelen = 2.0 * kPi / freq;
    const double factor = hp.rope_llama3_factor;
    const double low = hp.rope_llama3_low_freq_factor;
    const double high = hp.rope_llama3_high_freq_factor;
    const double old_ctx = hp.rope_llama3_orig_ctx;
    if (wavelen < old_ctx / high) {
        return 1.0f;
    }
    if (wavelen > old_ctx / low) {
        return static_cast<float>(factor);
    }
    const double smooth = (old_ctx / wavelen - low) / (high - low);
    return static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth));
}

struct FileCloser {
    void operator()(FILE *f) const {
        if (f != nullptr) {
            std::fclose(f);
        }
    }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

// Number of tokens of a vocab GGUF (tokenizer.ggml.tokens). Errors: kCorrupt.
uint32_t vocab_size(const gguf_context *src, const std::string &path) {
    const int64_t id = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (id < 0 || gguf_get_kv_type(src, id) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(src, id) != GGUF_TYPE_STRING || gguf_get_arr_n(src, id) == 0) {
        throw Error(ErrorCode::kCorrupt, "vocab '" + path + "' has no tokenizer.ggml.tokens");
    }
    if (gguf_get_arr_n(src, id) > INT32_MAX) {
        throw Error(ErrorCode::kCorrupt, "vocab '" + path + "' has too many tokens");
    }
    return static_cast<uint32_t>(gguf_get_arr_n(src, id));
}

// Copies every "tokenizer.*" key of `src` into `dst`. Errors: kCorrupt (nested arrays).
void copy_tokenizer(const gguf_context *src, gguf_context *dst) {
    for (int64_t i = 0; i < gguf_get_n_kv(src); ++i) {
        const char *key = gguf_get_key(src, i);
        if (std::strncmp(key, "tokenizer.", 10) != 0) {
            continue;
        }
        const gguf_type type = gguf_get_kv_type(src, i);
        if (type == GGUF_TYPE_ARRAY) {
            const gguf_type arr_type = gguf_get_arr_type(src, i);
            const size_t n = gguf_get_arr_n(src, i);
            if (arr_type == GGUF_TYPE_STRING) {
                std::vector<const char *> strs(n);
                for (size_t j = 0; j < n; ++j) {
                    strs[j] = gguf_get_arr_str(src, i, j);
                }
                gguf_set_arr_str(dst, key, strs.data(), n);
            } else if (arr_type == GGUF_TYPE_ARRAY) {
                throw Error(ErrorCode::kCorrupt, std::string("nested array in vocab key ") + key);
            } else {
                gguf_set_arr_data(dst, key, arr_type, gguf_get_arr_data(src, i), n);
            }
        } else if (type == GGUF_TYPE_STRING) {
            gguf_set_val_str(dst, key, gguf_get_val_str(src, i));
        } else {
            switch (type) {
                case GGUF_TYPE_UINT8:
                    gguf_set_val_u8(dst, key, gguf_get_val_u8(src, i));
                    break;
                case GGUF_TYPE_INT8:
                    gguf_set_val_i8(dst, key, gguf_get_val_i8(src, i));
                    break;
                case GGUF_TYPE_UINT16:
                    gguf_set_val_u16(dst, key, gguf_get_val_u16(src, i));
                    break;
                case GGUF_TYPE_INT16:
                    gguf_set_val_i16(dst, key, gguf_get_val_i16(src, i));
                    break;
                case GGUF_TYPE_UINT32:
                    gguf_set_val_u32(dst, key, gguf_get_val_u32(src, i));
                    break;
                case GGUF_TYPE_INT32:
                    gguf_set_val_i32(dst, key, gguf_get_val_i32(src, i));
                    break;
                case GGUF_TYPE_FLOAT32:
                    gguf_set_val_f32(dst, key, gguf_get_val_f32(src, i));
                    break;
                case GGUF_TYPE_BOOL:
                    gguf_set_val_bool(dst, key, gguf_get_val_bool(src, i));
                    break;
                case GGUF_TYPE_UINT64:
                    gguf_set_val_u64(dst, key, gguf_get_val_u64(src, i));
                    break;
                case GGUF_TYPE_INT64:
                    gguf_set_val_i64(dst, key, gguf_get_val_i64(src, i));
                    break;
                case GGUF_TYPE_FLOAT64:
                    gguf_set_val_f64(dst, key, gguf_get_val_f64(src, i));
                    break;
                default:
                    throw Error(ErrorCode::kCorrupt, std::string("bad type of vocab key ") + key);
            }
        }
    }
}

gguf_context_ptr open_vocab(const std::string &path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        throw Error(ErrorCode::kNotFound,
                    "vocab file not found: '" + path + "' (give one with --vocab PATH)");
    }
    gguf_init_params params = {/*no_alloc =*/true, /*ctx =*/nullptr};
    gguf_context_ptr ctx(gguf_init_from_file(path.c_str(), params));
    if (!ctx) {
        throw Error(ErrorCode::kCorrupt, "vocab '" + path + "' is not a valid GGUF file");
    }
    return ctx;
}

// general.* and "<arch>.*" keys, as the HF converter writes them (conversion/base.py,
// conversion/llama.py; key names from src/llama-arch.cpp).
void set_model_keys(gguf_context *ctx, const SynthOptions &opts, uint32_t n_vocab) {
    const SynthHparams &hp = opts.hparams;
    const std::string arch = synth_arch_name(hp.arch);
    auto key = [&](const char *suffix) { return arch + "." + suffix; };
    gguf_set_val_str(ctx, "general.architecture", arch.c_str());
    gguf_set_val_str(ctx, "general.type", "model");
    gguf_set_val_str(ctx, "general.name", ("synthetic " + hp.preset).c_str());
    gguf_set_val_u32(ctx, "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(ctx, "general.file_type", static_cast<uint32_t>(opts.ftype.llama_ftype));
    gguf_set_val_u32(ctx, key("block_count").c_str(), hp.n_layer);
    gguf_set_val_u32(ctx, key("context_length").c_str(), hp.n_ctx_train);
    gguf_set_val_u32(ctx, key("embedding_length").c_str(), hp.n_embd);
    gguf_set_val_u32(ctx, key("feed_forward_length").c_str(), hp.n_ff);
    gguf_set_val_u32(ctx, key("attention.head_count").c_str(), hp.n_head);
    gguf_set_val_u32(ctx, key("attention.head_count_kv").c_str(), hp.n_head_kv);
    gguf_set_val_f32(ctx, key("rope.freq_base").c_str(), hp.rope_freq_base);
    gguf_set_val_f32(ctx, key("attention.layer_norm_rms_epsilon").c_str(), hp.rms_eps);
    if (hp.write_head_dim || uint64_t{hp.head_dim} * hp.n_head != hp.n_embd) {
        gguf_set_val_u32(ctx, key("attention.key_length").c_str(), hp.head_dim);
        gguf_set_val_u32(ctx, key("attention.value_length").c_str(), hp.head_dim);
    }
    if (hp.n_expert > 0) {
        gguf_set_val_u32(ctx, key("expert_count").c_str(), hp.n_expert);
        gguf_set_val_u32(ctx, key("expert_used_count").c_str(), hp.n_expert_used);
        gguf_set_val_u32(ctx, key("expert_feed_forward_length").c_str(), hp.n_ff_exp);
        if (hp.n_ff_shexp > 0) {
            gguf_set_val_u32(ctx, key("expert_shared_feed_forward_length").c_str(), hp.n_ff_shexp);
        }
    }
    if (hp.arch == SynthArch::kPhi3) {
        // conversion/phi.py: rope dims, the sliding window it writes (libllama
        // ignores it for phi3), LongRoPE's original context and attention factor
        gguf_set_val_u32(ctx, key("rope.dimension_count").c_str(), hp.head_dim);
        gguf_set_val_u32(ctx, key("attention.sliding_window").c_str(), 262144);
        if (hp.rope_orig_ctx > 0) {
            gguf_set_val_u32(ctx, key("rope.scaling.original_context_length").c_str(),
                             hp.rope_orig_ctx);
            const double scale = static_cast<double>(hp.n_ctx_train) / hp.rope_orig_ctx;
            const double attn =
                scale > 1.0 ? std::sqrt(1.0 + std::log(scale) / std::log(hp.rope_orig_ctx)) : 1.0;
            gguf_set_val_f32(ctx, key("rope.scaling.attn_factor").c_str(),
                             static_cast<float>(attn));
        }
    }
    if ((hp.arch == SynthArch::kGemma3 || hp.arch == SynthArch::kGptOss) && hp.n_swa > 0) {
        gguf_set_val_u32(ctx, key("attention.sliding_window").c_str(), hp.n_swa);
        if (hp.swa_pattern != (hp.arch == SynthArch::kGemma3 ? 6u : 2u))
            gguf_set_val_u32(ctx, key("attention.sliding_window_pattern").c_str(), hp.swa_pattern);
    }
    if (hp.rope_yarn_factor > 0.0f) {  // conversion/gpt_oss.py's rope_scaling
        gguf_set_val_str(ctx, key("rope.scaling.type").c_str(), "yarn");
        gguf_set_val_f32(ctx, key("rope.scaling.factor").c_str(), hp.rope_yarn_factor);
        gguf_set_val_u32(ctx, key("rope.scaling.original_context_length").c_str(),
                         hp.rope_orig_ctx);
    }
    if (hp.arch == SynthArch::kLlama) {
        gguf_set_val_u32(ctx, key("vocab_size").c_str(), n_vocab);
        gguf_set_val_u32(ctx, key("rope.dimension_count").c_str(), hp.head_dim);
    }
    gguf_set_val_str(ctx, "colony.synth.preset", hp.preset.c_str());
    gguf_set_val_u64(ctx, "colony.synth.seed", opts.seed);
}

// Writes `n` bytes or throws kResource.
void write_bytes(FILE *f, const void *data, size_t n, const std::string &path) {
    if (n > 0 && std::fwrite(data, 1, n, f) != n) {
        throw Error(ErrorCode::kResource,
                    "write to '" + path + "' failed: " + std::strerror(errno));
    }
}

// Generates and converts rows [row0, row0 + n_rows) of `t` with `n_threads` threads,
// each on a contiguous slice of rows (f32 scratch -> ggml_quantize_chunk -> dst).
void make_rows(const SynthTensor &t, const SynthHparams &hp, uint64_t seed, int64_t row0,
               int64_t n_rows, int n_threads, float *f32, uint8_t *dst) {
    const int64_t ncols = t.ne[0];
    const size_t row_size = ggml_row_size(t.type, ncols);
    auto work = [&](int64_t r0, int64_t nr) {
        if (nr <= 0) {
            return;
        }
        float *src = f32 + r0 * ncols;
        synth_fill_rows(t, hp, seed, row0 + r0, nr, src);
        ggml_quantize_chunk(t.type, src, dst + r0 * row_size, 0, nr, ncols, nullptr);
    };
    const int64_t n_workers = std::min<int64_t>(std::max(n_threads, 1), n_rows);
    if (n_workers <= 1 || int64_t{n_rows} * ncols < (int64_t{1} << 16)) {
        work(0, n_rows);
        return;
    }
    const int64_t per = (n_rows + n_workers - 1) / n_workers;
    std::vector<std::jthread> threads;  // joined on scope exit, also if a spawn throws
    for (int64_t w = 1; w < n_workers; ++w) {
        threads.emplace_back(work, w * per, std::min(per, n_rows - w * per));
    }
    work(0, std::min(per, n_rows));
}

}  // namespace

std::string synth_default_vocab_path(const SynthHparams &hp) {
    return std::string(COLONY_LLAMA_DIR) + "/models/" + hp.vocab_file;
}

const char *synth_fallback_chat_template(SynthArch arch) {
    if (arch == SynthArch::kLlama) {
        // Meta-Llama-3-8B-Instruct's tokenizer_config.json chat_template.
        return "{% set loop_messages = messages %}{% for message in loop_messages %}"
               "{% set content = '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
               "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    }
    if (arch == SynthArch::kPhi3) {
        // Phi-3's: <|role|>\n content <|end|>\n (llama.cpp's LLM_CHAT_TEMPLATE_PHI_3)
        return "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
               "message['content'] + '<|end|>' + '\n'}}{% endfor %}{% if add_generation_prompt "
               "%}{{ '<|assistant|>' + '\n' }}{% endif %}";
    }
    // ChatML, as used by Qwen2.5/Qwen3 (without tool calls).
    return "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
           "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
}

void synth_fill_rows(const SynthTensor &t, const SynthHparams &hp, uint64_t seed, int64_t row0,
                     int64_t n_rows, float *dst) {
    const int64_t ncols = t.ne[0];
    const int64_t n = n_rows * ncols;
    if (t.init == SynthInit::kRopeShort || t.init == SynthInit::kRopeLong) {
        const double last = std::max<double>(1.0, static_cast<double>(ncols - 1));
        for (int64_t i = 0; i < n; ++i) {
            const double x = static_cast<double>((row0 * ncols + i) % ncols) / last;
            dst[i] = static_cast<float>(t.init == SynthInit::kRopeShort ? 1.0 + 0.1 * x
                                                                        : 1.0 + 40.0 * x * x);
        }
        return;
    }
    if (t.init == SynthInit::kRopeFreqs) {
        for (int64_t i = 0; i < n; ++i) {
            dst[i] = rope_llama3_factor(hp, (row0 * ncols + i) % ncols);
        }
        return;
    }
    float mean = 0.0f;
    float stddev = 0.02f;
    if (t.init == SynthInit::kMatrix) {
        stddev = 1.0f / std::sqrt(static_cast<float>(ncols));
    } else if (t.init == SynthInit::kNorm) {
        mean = 1.0f;
    } else if (t.init == SynthInit::kSink) {
        stddev = 1.0f;
    }
    const uint64_t key = mix64(seed ^ fnv1a64(t.name));
    uint64_t ctr = key + static_cast<uint64_t>(row0 * ncols + 1) * kGolden;
    for (int64_t i = 0; i < n; ++i, ctr += kGolden) {
        dst[i] = mean + stddev * unit_normal(mix64(ctr));
    }
}

namespace {

// Everything known before the first data byte: the GGUF metadata (KV + tensor
// infos), the tensor plan in file order, and the header bytes with their padding.
struct SynthLayout {
    gguf_context_ptr meta;
    ggml_context_ptr tensors;  // no_alloc shapes handed to gguf_add_tensor
    std::vector<SynthTensor> plan;
    std::vector<uint8_t> header;
    uint32_t n_vocab = 0;
    uint64_t bytes_total = 0;  // header + padded tensor data = the file size
};

SynthLayout build_layout(const SynthOptions &opts) {
    const SynthHparams &hp = opts.hparams;
    const std::string vocab_path =
        opts.vocab_path.empty() ? synth_default_vocab_path(hp) : opts.vocab_path;
    SynthLayout lay;
    {
        gguf_context_ptr vocab = open_vocab(vocab_path);
        lay.n_vocab = vocab_size(vocab.get(), vocab_path);
        lay.meta.reset(gguf_init_empty());
        set_model_keys(lay.meta.get(), opts, lay.n_vocab);
        copy_tokenizer(vocab.get(), lay.meta.get());
    }
    if (!opts.chat_template.empty()) {
        gguf_set_val_str(lay.meta.get(), "tokenizer.chat_template", opts.chat_template.c_str());
    } else if (gguf_find_key(lay.meta.get(), "tokenizer.chat_template") < 0) {
        gguf_set_val_str(lay.meta.get(), "tokenizer.chat_template",
                         synth_fallback_chat_template(hp.arch));
    }
    lay.plan = synth_plan_tensors(hp, lay.n_vocab, opts.ftype);
    ggml_init_params ip = {lay.plan.size() * ggml_tensor_overhead(), nullptr, /*no_alloc =*/true};
    lay.tensors.reset(ggml_init(ip));
    for (const SynthTensor &t : lay.plan) {
        ggml_tensor *tensor = ggml_new_tensor(lay.tensors.get(), t.type, t.n_dims, t.ne);
        ggml_set_name(tensor, t.name.c_str());
        gguf_add_tensor(lay.meta.get(), tensor);
    }
    lay.header.resize(gguf_get_meta_size(lay.meta.get()));
    gguf_get_meta_data(lay.meta.get(), lay.header.data());
    const size_t align = gguf_get_alignment(lay.meta.get());
    lay.bytes_total = lay.header.size();
    for (const SynthTensor &t : lay.plan) {
        lay.bytes_total += GGML_PAD(t.nbytes(), align);
    }
    return lay;
}

// Writes header and tensor data to `file` (named `path` in errors), chunk by chunk.
void write_layout(FILE *file, const std::string &path, const SynthLayout &lay,
                  const SynthOptions &opts) {
    const size_t align = gguf_get_alignment(lay.meta.get());
    write_bytes(file, lay.header.data(), lay.header.size(), path);
    uint64_t written = lay.header.size();
    SynthProgress progress;
    progress.n_tensors = lay.plan.size();
    progress.bytes_total = lay.bytes_total;

    const std::vector<uint8_t> zeros(align, 0);
    std::vector<float> f32;
    std::vector<uint8_t> out;
    for (size_t it = 0; it < lay.plan.size(); ++it) {
        const SynthTensor &t = lay.plan[it];
        if (written != lay.header.size() + gguf_get_tensor_offset(lay.meta.get(), it)) {
            throw Error(ErrorCode::kInternal, "offset mismatch at " + t.name);
        }
        const size_t row_size = ggml_row_size(t.type, t.ne[0]);
        const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElems / t.ne[0]);
        for (int64_t r0 = 0; r0 < t.n_rows(); r0 += rows_per_chunk) {
            const int64_t nr = std::min(rows_per_chunk, t.n_rows() - r0);
            f32.resize(static_cast<size_t>(nr * t.ne[0]));
            out.resize(static_cast<size_t>(nr) * row_size);
            make_rows(t, opts.hparams, opts.seed, r0, nr, opts.n_threads, f32.data(), out.data());
            write_bytes(file, out.data(), out.size(), path);
            written += out.size();
            if (opts.on_progress) {
                progress.i_tensor = it;
                progress.tensor_name = t.name.c_str();
                progress.bytes_written = written;
                opts.on_progress(progress);
            }
        }
        const size_t pad = GGML_PAD(t.nbytes(), align) - t.nbytes();
        write_bytes(file, zeros.data(), pad, path);
        written += pad;
    }
    if (written != lay.bytes_total) {
        throw Error(ErrorCode::kInternal, "wrote " + std::to_string(written) + " bytes, expected " +
                                              std::to_string(lay.bytes_total));
    }
}

}  // namespace

SynthResult synth_write_gguf(const SynthOptions &opts) {
    synth_validate_hparams(opts.hparams);
    if (opts.out_path.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "no output path given");
    }
    const SynthLayout lay = build_layout(opts);

    const std::string partial = opts.out_path + ".partial";
    FilePtr file(std::fopen(partial.c_str(), "wb"));
    if (!file) {
        throw Error(ErrorCode::kInvalidArgument,
                    "cannot write '" + opts.out_path + "': " + std::strerror(errno));
    }
    try {
        write_layout(file.get(), partial, lay, opts);
        if (std::fflush(file.get()) != 0 || std::fclose(file.release()) != 0) {
            throw Error(ErrorCode::kResource,
                        "write to '" + partial + "' failed: " + std::strerror(errno));
        }
        std::error_code ec;
        std::filesystem::rename(partial, opts.out_path, ec);
        if (ec) {
            throw Error(ErrorCode::kInvalidArgument, "cannot rename '" + partial + "' to '" +
                                                         opts.out_path + "': " + ec.message());
        }
    } catch (...) {
        file.reset();
        std::error_code ec;
        std::filesystem::remove(partial, ec);
        throw;
    }
    COLONY_LOG_DEBUG("wrote %s (%zu tensors, %llu bytes)", opts.out_path.c_str(), lay.plan.size(),
                     static_cast<unsigned long long>(lay.bytes_total));
    SynthResult result;
    result.n_tensors = lay.plan.size();
    result.n_bytes = lay.bytes_total;
    result.n_vocab = lay.n_vocab;
    return result;
}

}  // namespace colony
