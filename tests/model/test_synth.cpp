// Tests of synthetic GGUF models (model/synth.h) and `colony synth`: presets have
// the real shapes, the quant mixture follows llama-quantize, files are
// deterministic, and libllama loads them, decodes finite logits and tokenizes.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cmd_synth.h"
#include "ggml-cpp.h"
#include "gguf.h"
#include "llama-cpp.h"
#include "llama.h"
#include "model/synth.h"
#include "util/error.h"

namespace colony {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
  public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "colony-synth-XXXXXX").string();
        if (mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string &name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

std::string read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Tiny variant of a preset: 4 layers, n_embd 256, n_ff 768, 4/2 heads (qwen3 keeps
// head_dim 128 != n_embd/n_head, as the real Qwen3 does).
SynthHparams tiny(const std::string &preset) {
    SynthOverrides ov;
    ov.n_layer = 4;
    ov.n_embd = 256;
    ov.n_ff = 768;
    ov.n_head = 4;
    ov.n_head_kv = 2;
    if (preset == "qwen3-0.6b") {
        ov.head_dim = 128;
    }
    return synth_apply_overrides(synth_find_preset(preset), ov);
}

SynthResult write_tiny(const std::string &preset, const std::string &type, uint64_t seed,
                       const std::string &out, int n_threads = 2) {
    SynthOptions opts;
    opts.hparams = tiny(preset);
    opts.ftype = synth_find_ftype(type);
    opts.seed = seed;
    opts.out_path = out;
    opts.n_threads = n_threads;
    return synth_write_gguf(opts);
}

// Independent copy of llama-quantize's rule (src/llama-quant.cpp).
bool more_bits(int il, int n) {
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

bool ends_with(const std::string &s, const std::string &suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int layer_of(const std::string &name) {
    return name.rfind("blk.", 0) == 0 ? std::stoi(name.substr(4)) : -1;
}

void quiet_log(ggml_log_level level, const char *text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        std::fputs(text, stderr);
    }
}

class LlamaEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        llama_log_set(quiet_log, nullptr);
        llama_backend_init();
    }
    void TearDown() override { llama_backend_free(); }
};
const auto *const kLlamaEnv = ::testing::AddGlobalTestEnvironment(new LlamaEnvironment);

// ---------------------------------------------------------------- presets and plans

TEST(SynthPresets, HaveTheRealHyperParameters) {
    const SynthHparams q = synth_find_preset("qwen2.5-0.5b");
    EXPECT_EQ(q.arch, SynthArch::kQwen2);
    EXPECT_EQ(q.n_layer, 24u);
    EXPECT_EQ(q.n_embd, 896u);
    EXPECT_EQ(q.n_head, 14u);
    EXPECT_EQ(q.n_head_kv, 2u);
    EXPECT_EQ(q.n_ff, 4864u);
    EXPECT_EQ(q.head_dim, 64u);
    EXPECT_TRUE(q.qkv_bias && q.tied_embeddings);
    EXPECT_FLOAT_EQ(q.rope_freq_base, 1e6f);
    EXPECT_FLOAT_EQ(q.rms_eps, 1e-6f);

    const SynthHparams q3 = synth_find_preset("qwen3-0.6b");
    EXPECT_EQ(q3.arch, SynthArch::kQwen3);
    EXPECT_EQ(q3.n_layer, 28u);
    EXPECT_EQ(q3.n_embd, 1024u);
    EXPECT_EQ(q3.head_dim, 128u);  // != 1024 / 16
    EXPECT_TRUE(q3.qk_norm && q3.write_head_dim && !q3.qkv_bias);

    const SynthHparams l1 = synth_find_preset("llama-3.2-1b");
    EXPECT_EQ(l1.n_layer, 16u);
    EXPECT_EQ(l1.n_embd, 2048u);
    EXPECT_EQ(l1.n_head_kv, 8u);
    EXPECT_FLOAT_EQ(l1.rope_freq_base, 500000.0f);
    EXPECT_FLOAT_EQ(l1.rms_eps, 1e-5f);
    EXPECT_TRUE(l1.tied_embeddings);

    const SynthHparams l8 = synth_find_preset("llama-3-8b");
    EXPECT_EQ(l8.n_ff, 14336u);
    EXPECT_FALSE(l8.tied_embeddings);
}

TEST(SynthPresets, UnknownPresetIsInvalidArgument) {
    try {
        synth_find_preset("gpt-5");
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("qwen3-0.6b"), std::string::npos) << e.what();
    }
}

// Tensor counts of the released GGUFs (qwen2.5-0.5b 290, qwen3-0.6b 310,
// llama-3.2-1b 147 with rope_freqs, llama-3-8b 291 with output.weight,
// Qwen3-30B-A3B 579: 12 per block with the router and 3 expert tensors,
// Phi-3.5-mini 197: 6 per block, and the LongRoPE factors).
TEST(SynthPlan, TensorCountsMatchReleasedModels) {
    const SynthFtype f16 = synth_find_ftype("F16");
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("qwen2.5-0.5b"), 151936, f16).size(), 290u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("qwen3-0.6b"), 151936, f16).size(), 310u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("llama-3.2-1b"), 128256, f16).size(), 147u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("llama-3-8b"), 128256, f16).size(), 291u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("qwen3-30b-a3b"), 151936, f16).size(), 579u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("phi-3.5-mini"), 32064, f16).size(), 197u);
    EXPECT_EQ(synth_plan_tensors(synth_find_preset("gpt-oss-20b"), 201088, f16).size(), 459u);
}

// gpt-oss-20b as released (ggml-org/gpt-oss-20b-GGUF, gpt-oss-20b-mxfp4.gguf:
// 459 tensors, 12.1 GB): MXFP4 experts, Q8_0 attention, embedding and
// output, F32 biases and sinks. With its o200k vocabulary's 201088 rows the
// plan weighs the same within 1 %.
TEST(SynthPlan, GptOssAsReleasedIsMxfp4ExpertsAndQ8_0) {
    const auto plan =
        synth_plan_tensors(synth_find_preset("gpt-oss-20b"), 201088, synth_find_ftype("MXFP4_MOE"));
    uint64_t total = 0;
    for (const SynthTensor &t : plan) {
        total += t.nbytes();
        if (t.name == "blk.0.ffn_down_exps.weight") {
            EXPECT_EQ(t.type, GGML_TYPE_MXFP4);
            EXPECT_EQ(t.ne[2], 32);
        }
        if (t.name == "blk.0.ffn_down_exps.bias") {
            EXPECT_EQ(t.type, GGML_TYPE_F32);
            EXPECT_EQ(t.ne[0], 2880);
            EXPECT_EQ(t.ne[1], 32);
        }
        if (t.name == "blk.0.attn_q.weight" || t.name == "output.weight" ||
            t.name == "token_embd.weight")
            EXPECT_EQ(t.type, GGML_TYPE_Q8_0) << t.name;
        if (t.name == "blk.0.attn_sinks.weight") {
            EXPECT_EQ(t.type, GGML_TYPE_F32);
            EXPECT_EQ(t.ne[0], 64);
        }
    }
    EXPECT_NEAR(static_cast<double>(total), 12.1e9, 0.121e9);
}

// Qwen3-30B-A3B's experts: [2048, 768, 128] gate/up, [768, 2048, 128] down,
// the router [2048, 128] in F32; Q4_K_M weighs about the released file's
// 17.3 GiB (18.6 GB), the experts nearly all of it.
TEST(SynthPlan, Qwen3MoeExpertsAreThreeDimensional) {
    const auto plan =
        synth_plan_tensors(synth_find_preset("qwen3-30b-a3b"), 151936, synth_find_ftype("Q4_K_M"));
    uint64_t total = 0, experts = 0;
    for (const SynthTensor &t : plan) {
        total += t.nbytes();
        if (t.name.find("_exps.") != std::string::npos)
            experts += t.nbytes();
        if (t.name == "blk.3.ffn_up_exps.weight") {
            EXPECT_EQ(t.n_dims, 3);
            EXPECT_EQ(t.ne[0], 2048);
            EXPECT_EQ(t.ne[1], 768);
            EXPECT_EQ(t.ne[2], 128);
            EXPECT_EQ(t.n_rows(), 768 * 128);
        }
        if (t.name == "blk.3.ffn_down_exps.weight") {
            EXPECT_EQ(t.ne[0], 768);
            EXPECT_EQ(t.ne[1], 2048);
        }
        if (t.name == "blk.3.ffn_gate_inp.weight") {
            EXPECT_EQ(t.type, GGML_TYPE_F32);
            EXPECT_EQ(t.ne[1], 128);
        }
    }
    const double gib = static_cast<double>(total) / (1ull << 30);
    EXPECT_GT(gib, 16.0);
    EXPECT_LT(gib, 19.0);
    EXPECT_GT(experts, total * 9 / 10);
}

TEST(SynthPlan, ExpertCountsAreValidated) {
    SynthOverrides ov;
    ov.n_expert_used = 9;
    ov.n_expert = 8;
    EXPECT_THROW(synth_apply_overrides(synth_find_preset("qwen3-30b-a3b"), ov), Error);
    SynthOverrides dense;
    dense.n_expert = 8;
    dense.n_expert_used = 2;
    EXPECT_THROW(synth_apply_overrides(synth_find_preset("qwen3-0.6b"), dense), Error);
}

TEST(SynthPlan, Qwen3ShapesUseHeadDim) {
    const auto plan =
        synth_plan_tensors(synth_find_preset("qwen3-0.6b"), 151936, synth_find_ftype("F16"));
    auto find = [&](const std::string &n) -> const SynthTensor & {
        for (const auto &t : plan) {
            if (t.name == n)
                return t;
        }
        throw std::runtime_error("missing " + n);
    };
    EXPECT_EQ(find("blk.0.attn_q.weight").ne[0], 1024);
    EXPECT_EQ(find("blk.0.attn_q.weight").ne[1], 16 * 128);
    EXPECT_EQ(find("blk.0.attn_k.weight").ne[1], 8 * 128);
    EXPECT_EQ(find("blk.0.attn_output.weight").ne[0], 16 * 128);
    EXPECT_EQ(find("blk.0.attn_q_norm.weight").ne[0], 128);
    EXPECT_EQ(find("blk.27.attn_k_norm.weight").type, GGML_TYPE_F32);
    EXPECT_EQ(find("token_embd.weight").ne[1], 151936);
}

// Qwen2.5-0.5B's n_embd 896 is not a multiple of 256: like llama-quantize, Q4_K
// falls back to Q5_0, Q6_K to Q8_0, and the tied token_embd is Q8_0.
TEST(SynthPlan, Q4KMFallsBackOnRowsNotMultipleOf256) {
    const auto plan =
        synth_plan_tensors(synth_find_preset("qwen2.5-0.5b"), 151936, synth_find_ftype("Q4_K_M"));
    for (const auto &t : plan) {
        const int il = layer_of(t.name);
        ggml_type want;
        if (t.n_dims == 1) {
            want = GGML_TYPE_F32;
        } else if (t.name == "token_embd.weight") {
            want = GGML_TYPE_Q8_0;
        } else if (ends_with(t.name, "attn_v.weight")) {
            want = more_bits(il, 24) ? GGML_TYPE_Q8_0 : GGML_TYPE_Q5_0;
        } else if (ends_with(t.name, "ffn_down.weight")) {  // n_ff 4864 = 19 * 256
            want = more_bits(il, 24) ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K;
        } else {
            want = GGML_TYPE_Q5_0;
        }
        EXPECT_EQ(t.type, want) << t.name << ": " << ggml_type_name(t.type);
    }
}

uint64_t plan_bytes(const std::string &preset, uint32_t n_vocab, const std::string &type) {
    uint64_t n = 0;
    for (const auto &t :
         synth_plan_tensors(synth_find_preset(preset), n_vocab, synth_find_ftype(type))) {
        n += t.nbytes();
    }
    return n;
}

// Tensor data of the published Q4_K_M files: their sizes (Llama-3.2-1B 807.7 MB,
// Meta-Llama-3-8B 4.92 GB) less ~7.8 MB of tokenizer metadata.
TEST(SynthPlan, Q4KMSizesMatchPublishedFiles) {
    EXPECT_NEAR(plan_bytes("llama-3.2-1b", 128256, "Q4_K_M") / 1e6, 800.0, 5.0);
    EXPECT_NEAR(plan_bytes("llama-3-8b", 128256, "Q4_K_M") / 1e9, 4.912, 0.02);
}

TEST(SynthOverrides, TinyVariantDerivesHeadDim) {
    const SynthHparams hp = tiny("llama-3.2-1b");
    EXPECT_EQ(hp.n_layer, 4u);
    EXPECT_EQ(hp.n_embd, 256u);
    EXPECT_EQ(hp.head_dim, 64u);
    EXPECT_EQ(tiny("qwen3-0.6b").head_dim, 128u);
    EXPECT_TRUE(tiny("qwen3-0.6b").write_head_dim);
}

TEST(SynthOverrides, RejectsShapesLibllamaCannotLoad) {
    auto code_of = [](const SynthOverrides &ov, const char *preset) {
        try {
            synth_apply_overrides(synth_find_preset(preset), ov);
        } catch (const Error &e) {
            return e.code();
        }
        return ErrorCode::kInternal;  // no error
    };
    SynthOverrides kv;
    kv.n_head_kv = 3;  // 14 heads not a multiple of 3
    EXPECT_EQ(code_of(kv, "qwen2.5-0.5b"), ErrorCode::kInvalidArgument);
    SynthOverrides qwen2_hd;
    qwen2_hd.head_dim = 128;  // qwen2 tensors are n_embd wide
    EXPECT_EQ(code_of(qwen2_hd, "qwen2.5-0.5b"), ErrorCode::kInvalidArgument);
    SynthOverrides odd;
    odd.head_dim = 63;
    EXPECT_EQ(code_of(odd, "llama-3.2-1b"), ErrorCode::kInvalidArgument);
    SynthOverrides indivisible;
    indivisible.n_embd = 250;  // 250 / 32 heads
    EXPECT_EQ(code_of(indivisible, "llama-3.2-1b"), ErrorCode::kInvalidArgument);
}

TEST(SynthFtypes, LookupIsCaseInsensitiveAndRejectsUnknown) {
    EXPECT_EQ(synth_find_ftype("q4_k_m").llama_ftype, LLAMA_FTYPE_MOSTLY_Q4_K_M);
    EXPECT_EQ(synth_find_ftype("F16").base_type, GGML_TYPE_F16);
    EXPECT_THROW(synth_find_ftype("Q3_K_XL"), Error);
}

// ---------------------------------------------------------------- weights

TEST(SynthFill, RowsDoNotDependOnChunking) {
    const SynthHparams hp = tiny("qwen2.5-0.5b");
    const auto plan = synth_plan_tensors(hp, 1000, synth_find_ftype("F16"));
    const SynthTensor &t = plan[2];  // blk.0.attn_q.weight
    std::vector<float> whole(10 * t.ne[0]), parts(10 * t.ne[0]);
    synth_fill_rows(t, hp, 7, 3, 10, whole.data());
    synth_fill_rows(t, hp, 7, 3, 4, parts.data());
    synth_fill_rows(t, hp, 7, 7, 6, parts.data() + 4 * t.ne[0]);
    EXPECT_EQ(whole, parts);
    std::vector<float> other(10 * t.ne[0]);
    synth_fill_rows(t, hp, 8, 3, 10, other.data());
    EXPECT_NE(whole, other);
}

TEST(SynthFill, MatrixAndNormStatistics) {
    const SynthHparams hp = tiny("llama-3.2-1b");
    const auto plan = synth_plan_tensors(hp, 1000, synth_find_ftype("F32"));
    for (const auto &t : plan) {
        if (t.init != SynthInit::kMatrix && t.init != SynthInit::kNorm)
            continue;
        std::vector<float> v(t.ne[0] * t.ne[1]);
        synth_fill_rows(t, hp, 1, 0, t.ne[1], v.data());
        double sum = 0, sq = 0;
        for (float x : v) {
            ASSERT_TRUE(std::isfinite(x));
            sum += x;
            sq += x * x;
        }
        const double mean = sum / v.size();
        const double sd = std::sqrt(sq / v.size() - mean * mean);
        if (t.init == SynthInit::kMatrix) {
            const double want = 1.0 / std::sqrt(double(t.ne[0]));
            EXPECT_NEAR(mean, 0.0, 0.05 * want) << t.name;
            EXPECT_NEAR(sd, want, 0.05 * want) << t.name;
        } else {
            EXPECT_NEAR(mean, 1.0, 0.01) << t.name;
            EXPECT_NEAR(sd, 0.02, 0.005) << t.name;
        }
    }
}

// Llama 3.2's rope_freqs: 1 for high frequencies, 32 for the lowest (conversion/llama.py).
TEST(SynthFill, Llama3RopeFreqs) {
    const SynthHparams hp = synth_find_preset("llama-3.2-1b");
    const auto plan = synth_plan_tensors(hp, 128256, synth_find_ftype("F16"));
    ASSERT_EQ(plan[1].name, "rope_freqs.weight");
    ASSERT_EQ(plan[1].ne[0], 32);
    std::vector<float> f(32);
    synth_fill_rows(plan[1], hp, 1, 0, 1, f.data());
    EXPECT_FLOAT_EQ(f[0], 1.0f);
    EXPECT_FLOAT_EQ(f[31], 32.0f);
    for (int i = 1; i < 32; ++i)
        EXPECT_GE(f[i], f[i - 1]);
}

// ---------------------------------------------------------------- files

TEST(SynthFile, SameSeedSameBytesOtherSeedOtherBytes) {
    TempDir dir;
    write_tiny("qwen3-0.6b", "Q4_K_M", 42, dir.file("a.gguf"), 1);
    write_tiny("qwen3-0.6b", "Q4_K_M", 42, dir.file("b.gguf"), 2);  // thread count must not matter
    write_tiny("qwen3-0.6b", "Q4_K_M", 43, dir.file("c.gguf"), 2);
    const std::string a = read_bytes(dir.file("a.gguf"));
    ASSERT_GT(a.size(), 1000000u);
    EXPECT_TRUE(a == read_bytes(dir.file("b.gguf")));
    const std::string c = read_bytes(dir.file("c.gguf"));
    ASSERT_EQ(a.size(), c.size());
    EXPECT_FALSE(a == c);
}

TEST(SynthFile, MissingVocabLeavesNoFile) {
    TempDir dir;
    SynthOptions opts;
    opts.hparams = tiny("qwen2.5-0.5b");
    opts.vocab_path = dir.file("nope.gguf");
    opts.out_path = dir.file("out.gguf");
    try {
        synth_write_gguf(opts);
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    }
    EXPECT_FALSE(fs::exists(opts.out_path));
    EXPECT_FALSE(fs::exists(opts.out_path + ".partial"));
}

struct Case {
    const char *preset;
    const char *type;
};

void PrintTo(const Case &c, std::ostream *os) {
    *os << c.preset << " " << c.type;
}

std::string case_name(const ::testing::TestParamInfo<Case> &info) {
    std::string s = std::string(info.param.preset) + "_" + info.param.type;
    for (char &c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)))
            c = '_';
    }
    return s;
}

class SynthModel : public ::testing::TestWithParam<Case> {
  protected:
    void SetUp() override {
        path_ = dir_.file("model.gguf");
        result_ = write_tiny(GetParam().preset, GetParam().type, 1, path_);
    }
    TempDir dir_;
    std::string path_;
    SynthResult result_;
};

// (3) every tensor has the shape and the type llama-quantize would give it.
TEST_P(SynthModel, TensorTypesAreAsRequested) {
    const SynthHparams hp = tiny(GetParam().preset);
    const bool q4km = std::string(GetParam().type) == "Q4_K_M";
    gguf_init_params params = {true, nullptr};
    gguf_context_ptr ctx(gguf_init_from_file(path_.c_str(), params));
    ASSERT_TRUE(ctx);
    EXPECT_EQ(fs::file_size(path_), result_.n_bytes);
    const int64_t ft = gguf_find_key(ctx.get(), "general.file_type");
    ASSERT_GE(ft, 0);
    EXPECT_EQ(gguf_get_val_u32(ctx.get(), ft),
              uint32_t(q4km ? LLAMA_FTYPE_MOSTLY_Q4_K_M : LLAMA_FTYPE_MOSTLY_F16));
    EXPECT_EQ(gguf_get_n_tensors(ctx.get()), int64_t(result_.n_tensors));
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx.get()); ++i) {
        const std::string name = gguf_get_tensor_name(ctx.get(), i);
        const int64_t *ne = gguf_get_tensor_ne(ctx.get(), i);
        const bool is_1d = ne[1] == 1;
        ggml_type want = GGML_TYPE_F16;
        if (is_1d) {
            want = GGML_TYPE_F32;
        } else if (!q4km) {
            want = GGML_TYPE_F16;
        } else if (name == "output.weight" || (name == "token_embd.weight" && hp.tied_embeddings)) {
            want = GGML_TYPE_Q6_K;
        } else if (ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) {
            want = more_bits(layer_of(name), int(hp.n_layer)) ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K;
        } else {
            want = GGML_TYPE_Q4_K;
        }
        EXPECT_EQ(gguf_get_tensor_type(ctx.get(), i), want)
            << name << ": " << ggml_type_name(gguf_get_tensor_type(ctx.get(), i));
        if (name == "token_embd.weight") {
            EXPECT_EQ(ne[0], 256);
            EXPECT_EQ(ne[1], int64_t(result_.n_vocab));
        }
    }
}

// (1) libllama loads the file, and decoding a prompt gives finite logits with a unique argmax.
TEST_P(SynthModel, LibllamaDecodesFiniteLogits) {
    llama_model_params mp = llama_model_default_params();
    llama_model_ptr model(llama_model_load_from_file(path_.c_str(), mp));
    ASSERT_TRUE(model) << "libllama could not load " << path_;
    const llama_vocab *vocab = llama_model_get_vocab(model.get());
    EXPECT_EQ(llama_vocab_n_tokens(vocab), int32_t(result_.n_vocab));
    EXPECT_EQ(llama_model_n_layer(model.get()), 4);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 64;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    llama_context_ptr ctx(llama_init_from_model(model.get(), cp));
    ASSERT_TRUE(ctx);

    const std::string prompt = "The quick brown fox jumps over the lazy dog";
    std::vector<llama_token> tokens(64);
    const int n = llama_tokenize(vocab, prompt.c_str(), int32_t(prompt.size()), tokens.data(),
                                 int32_t(tokens.size()), true, false);
    ASSERT_GT(n, 3);
    tokens.resize(n);
    ASSERT_EQ(llama_decode(ctx.get(), llama_batch_get_one(tokens.data(), n)), 0);
    const float *logits = llama_get_logits_ith(ctx.get(), -1);
    ASSERT_NE(logits, nullptr);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    float best = -INFINITY, second = -INFINITY, lo = INFINITY;
    for (int i = 0; i < n_vocab; ++i) {
        ASSERT_TRUE(std::isfinite(logits[i])) << "logit " << i;
        lo = std::min(lo, logits[i]);
        if (logits[i] > best) {
            second = best;
            best = logits[i];
        } else if (logits[i] > second) {
            second = logits[i];
        }
    }
    EXPECT_GT(best - lo, 1.0f);    // not flat
    EXPECT_GT(best, second);       // greedy decoding has a unique choice
    EXPECT_LT(best - lo, 100.0f);  // not blown up

    // One decode step after the prompt works too.
    llama_token next = 0;
    for (int i = 1; i < n_vocab; ++i) {
        if (logits[i] > logits[next])
            next = i;
    }
    ASSERT_EQ(llama_decode(ctx.get(), llama_batch_get_one(&next, 1)), 0);
    const float *logits2 = llama_get_logits_ith(ctx.get(), -1);
    for (int i = 0; i < n_vocab; ++i) {
        ASSERT_TRUE(std::isfinite(logits2[i])) << "logit " << i;
    }
}

// (4) the copied tokenizer round-trips text and the chat template is usable.
TEST_P(SynthModel, TokenizerAndChatTemplateWork) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model_ptr model(llama_model_load_from_file(path_.c_str(), mp));
    ASSERT_TRUE(model);
    const llama_vocab *vocab = llama_model_get_vocab(model.get());
    const std::string text = "Hello world";
    std::vector<llama_token> tokens(32);
    const int n =
        llama_tokenize(vocab, text.c_str(), int32_t(text.size()), tokens.data(), 32, false, false);
    ASSERT_GT(n, 0);
    EXPECT_LE(n, 3);  // a real BPE vocab: "Hello", " world"
    std::vector<char> buf(256);
    const int len =
        llama_detokenize(vocab, tokens.data(), n, buf.data(), int32_t(buf.size()), true, false);
    ASSERT_GT(len, 0);
    EXPECT_EQ(std::string(buf.data(), len), text);

    const char *tmpl = llama_model_chat_template(model.get(), nullptr);
    ASSERT_NE(tmpl, nullptr);
    const llama_chat_message msg = {"user", "Hi"};
    std::vector<char> out(1024);
    const int m = llama_chat_apply_template(tmpl, &msg, 1, true, out.data(), int32_t(out.size()));
    ASSERT_GT(m, 0);
    const std::string chat(out.data(), m);
    const bool qwen = std::string(GetParam().preset).rfind("qwen", 0) == 0;
    EXPECT_NE(chat.find(qwen ? "<|im_start|>assistant" : "<|start_header_id|>assistant"),
              std::string::npos)
        << chat;
}

INSTANTIATE_TEST_SUITE_P(Tiny, SynthModel,
                         ::testing::Values(Case{"qwen2.5-0.5b", "F16"},
                                           Case{"qwen2.5-0.5b", "Q4_K_M"},
                                           Case{"qwen3-0.6b", "F16"}, Case{"qwen3-0.6b", "Q4_K_M"},
                                           Case{"llama-3.2-1b", "F16"},
                                           Case{"llama-3.2-1b", "Q4_K_M"},
                                           Case{"llama-3-8b", "Q4_K_M"}),
                         case_name);

// ---------------------------------------------------------------- the command

int run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), "synth");
    std::vector<char *> argv;
    for (auto &a : args)
        argv.push_back(a.data());
    return cmd_synth(int(argv.size()), argv.data());
}

TEST(SynthCli, WritesATinyModel) {
    TempDir dir;
    const std::string out = dir.file("tiny.gguf");
    EXPECT_EQ(run_cli({"--preset",   "llama-3.2-1b",
                       "-o",         out,
                       "--type",     "q8_0",
                       "--seed",     "5",
                       "--layers",   "2",
                       "--embd",     "256",
                       "--ff",       "512",
                       "--heads",    "4",
                       "--kv-heads", "2",
                       "--ctx",      "2048",
                       "-t",         "2",
                       "-q"}),
              0);
    gguf_init_params params = {true, nullptr};
    gguf_context_ptr ctx(gguf_init_from_file(out.c_str(), params));
    ASSERT_TRUE(ctx);
    EXPECT_EQ(gguf_get_val_u32(ctx.get(), gguf_find_key(ctx.get(), "llama.block_count")), 2u);
    EXPECT_EQ(gguf_get_val_u32(ctx.get(), gguf_find_key(ctx.get(), "llama.context_length")), 2048u);
    EXPECT_EQ(gguf_get_val_u64(ctx.get(), gguf_find_key(ctx.get(), "colony.synth.seed")), 5u);
    EXPECT_EQ(gguf_get_tensor_type(ctx.get(), gguf_find_tensor(ctx.get(), "blk.0.ffn_up.weight")),
              GGML_TYPE_Q8_0);
}

TEST(SynthCli, HelpSucceeds) {
    EXPECT_EQ(run_cli({"--help"}), 0);
}

TEST(SynthCli, BadInputFailsWithoutWritingAFile) {
    TempDir dir;
    const std::string out = dir.file("x.gguf");
    const std::vector<std::vector<std::string>> bad = {
        {"--preset", "nope", "-o", out},
        {"--preset", "qwen3-0.6b", "-o", out, "--type", "Q9_K"},
        {"--preset", "qwen3-0.6b", "-o", dir.file("no/such/dir/x.gguf"), "--layers", "1"},
        {"--preset", "qwen3-0.6b", "-o", out, "--vocab", dir.file("missing.gguf")},
        {"--preset", "qwen3-0.6b", "-o", out, "--seed", "-3"},
        {"--preset", "qwen3-0.6b", "-o", out, "--threads", "0"},
        {"--preset", "qwen3-0.6b"},
        {"--preset", "qwen3-0.6b", "-o", out, "--bogus"},
    };
    for (const auto &args : bad) {
        EXPECT_EQ(run_cli(args), 1) << args[1] << " " << args.back();
        EXPECT_FALSE(fs::exists(out));
    }
}

}  // namespace
}  // namespace colony
