// Golden parity on synthetic models (random weights, real architectures and
// tokenizers, written by colony_synth): qwen2 (Qwen2.5 shapes: QKV biases,
// NeoX RoPE), qwen3 (QK-norm, head_dim != n_embd/n_head), qwen3moe (routed
// experts: 2 of 8 per token, ggml_mul_mat_id), qwen2moe (the same without
// normalized weights, plus a sigmoid-gated shared expert and QKV biases), phi3 (fused QKV and
// gate-up, Q scaled before attention, LongRoPE's short factors and attention factor), gemma3
// (sliding-window and global blocks, post norms, GELU, scaled embeddings), gpt-oss
// (attention sinks, biased experts gated by a softmax over the chosen ones,
// OpenAI's clamped SwiGLU, YaRN RoPE, windowed blocks; F16 and as released,
// MXFP4 experts and Q8_0 elsewhere) and llama with
// the Llama-3 vocabulary (rope_freqs), each at F16 and Q4_K_M (K-quant mixture). Small "tiny" sizes
// keep the suite fast; the code paths are the full models'.
//
// Tolerance as in test_golden.cpp: max|colony - llama| <= 1e-3 * max|llama|
// for the last prompt token's logits; 64 greedy tokens identical.
#include <gtest/gtest.h>

#include <map>

#include "common/synth_tiny.h"
#include "common/test_env.h"
#include "model/synth.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"

namespace colony::test {
namespace {

struct Case {
    const char *preset;
    const char *ftype;
};

std::string synth_tiny(const TempDir &dir, const Case &c) {
    return colony::test::synth_tiny(dir, c.preset, c.ftype);
}

class SynthGolden : public ::testing::TestWithParam<Case> {
  protected:
    static TempDir *dir_;
    static void SetUpTestSuite() { dir_ = new TempDir(); }  // NOLINT: gtest suite-lifetime fixture
    static void TearDownTestSuite() {
        delete dir_;  // NOLINT
        dir_ = nullptr;
    }
};
TempDir *SynthGolden::dir_ = nullptr;

TEST_P(SynthGolden, LogitsAndGreedyTokensMatchLibllama) {
    const std::string path = synth_tiny(*dir_, GetParam());
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("The quick brown fox jumps over the lazy dog.", true, false);
    ASSERT_GT(prompt.size(), 5u);
    const ReferenceRun ref = llama_reference(path, prompt, 64);
    StageChain chain(path, {}, 512);
    std::vector<float> logits;
    const std::vector<int32_t> ours = chain.greedy(prompt, 64, &logits);
    const Diff d = compare(logits.data(), ref.last_logits.data(), logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-3f * d.max_abs_ref)
        << "max|diff| " << d.max_abs_diff << " max|ref| " << d.max_abs_ref;
    EXPECT_EQ(ours, ref.greedy);

    // and split in two stages at every layer boundary: same tokens
    for (uint32_t k = 1; k < chain.hparams().n_layer; ++k) {
        StageChain split(path, {k}, 512);
        EXPECT_EQ(split.greedy(prompt, 16),
                  std::vector<int32_t>(ref.greedy.begin(), ref.greedy.begin() + 16))
            << "split at " << k;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, SynthGolden,
    ::testing::Values(Case{"qwen2.5-0.5b", "F16"}, Case{"qwen2.5-0.5b", "Q4_K_M"},
                      Case{"qwen3-0.6b", "F16"}, Case{"qwen3-0.6b", "Q4_K_M"},
                      Case{"llama-3.2-1b", "F16"}, Case{"llama-3.2-1b", "Q4_K_M"},
                      Case{"qwen3-30b-a3b", "F16"}, Case{"qwen3-30b-a3b", "Q4_K_M"},
                      Case{"phi-3.5-mini", "F16"}, Case{"phi-3.5-mini", "Q4_K_M"},
                      Case{"qwen1.5-moe-a2.7b", "F16"}, Case{"qwen1.5-moe-a2.7b", "Q4_K_M"},
                      Case{"gemma-3-1b", "F16"}, Case{"gemma-3-1b", "Q4_K_M"},
                      Case{"gpt-oss-20b", "F16"}, Case{"gpt-oss-20b", "MXFP4_MOE"}),
    [](const ::testing::TestParamInfo<Case> &info) {
        std::string n = std::string(info.param.preset) + "_" + info.param.ftype;
        for (char &ch : n) {
            if (!isalnum(static_cast<unsigned char>(ch)))
                ch = '_';
        }
        return n;
    });

// Quantized KV cache (--cache-type-k/-v q8_0, q4_0) on 64-wide heads: logits
// stay close to the f16 cache's. Tolerances: q8_0 2%, q4_0 25% of max|logit| (measured: q4_0 16% on
// this random-weight model).
TEST(SynthKvCache, QuantizedCacheStaysCloseToF16) {
    TempDir dir;
    const std::string path = synth_tiny(dir, Case{"qwen3-0.6b", "F16"});
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("The quick brown fox jumps over the lazy dog.", true, false);
    const std::vector<float> ref = StageChain(path, {}, 256).run(prompt, 0);
    const std::pair<ggml_type, float> cases[] = {{GGML_TYPE_Q8_0, 0.02f}, {GGML_TYPE_Q4_0, 0.25f}};
    for (const auto &[type, tol] : cases) {
        const std::vector<float> got = StageChain(path, {}, 256, 512, type, type).run(prompt, 0);
        const Diff d = compare(got.data(), ref.data(), ref.size());
        EXPECT_LE(d.max_abs_diff, tol * d.max_abs_ref) << ggml_type_name(type);
    }
}

// Every quantized KV type llama.cpp allows, with its Hadamard rotation of
// Q, K and V (graph.h, k_rotation_size): colony's logits equal libllama's
// with the same cache types within the golden tolerance, and the greedy
// tokens are the same, alone and split in two stages. Without the rotation
// every type misses the tolerance (measured: q8_0 by 19x, q4_0 by 250x).
class QuantizedKv : public ::testing::TestWithParam<ggml_type> {};

TEST_P(QuantizedKv, LogitsAndGreedyTokensMatchLibllama) {
    TempDir dir;
    const std::string path = synth_tiny(dir, Case{"qwen3-0.6b", "F16"});
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("The quick brown fox jumps over the lazy dog.", true, false);
    const ggml_type type = GetParam();
    const ReferenceRun ref = llama_reference(path, prompt, 32, 2, type, type);
    StageChain chain(path, {}, 512, 512, type, type);
    std::vector<float> logits;
    EXPECT_EQ(chain.greedy(prompt, 32, &logits), ref.greedy) << ggml_type_name(type);
    const Diff d = compare(logits.data(), ref.last_logits.data(), logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-3f * d.max_abs_ref)
        << ggml_type_name(type) << ": max|diff| " << d.max_abs_diff << " max|ref| "
        << d.max_abs_ref;
    StageChain split(path, {1}, 512, 512, type, type);
    EXPECT_EQ(split.greedy(prompt, 16),
              std::vector<int32_t>(ref.greedy.begin(), ref.greedy.begin() + 16))
        << ggml_type_name(type);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizedKv,
                         ::testing::Values(GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                           GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL),
                         [](const auto &info) { return std::string(ggml_type_name(info.param)); });

}  // namespace
}  // namespace colony::test
