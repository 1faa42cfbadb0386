// Golden parity: colony's stage against libllama on the same GGUF file.
//
// Tolerance: logits of the last prompt token agree within
// max|colony - llama| <= 1e-3 * max|llama| (both run the same ggml kernels, so
// differences come only from op scheduling); greedy tokens must be identical.
#include <gtest/gtest.h>

#include "common/test_env.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"

namespace colony::test {
namespace {

constexpr float kRelTol = 1e-3f;
constexpr int kGreedy = 64;

class Stories260KGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(Stories260KGolden, LogitsAndGreedyTokensMatchLibllama) {
    const std::string path = model_path("stories260K-" + GetParam() + ".gguf");
    Tokenizer tok(path);
    const std::vector<int32_t> prompt = tok.tokenize("Once upon a time", true, false);
    const ReferenceRun ref = llama_reference(path, prompt, kGreedy);

    StageChain chain(path, {});
    std::vector<float> logits;
    const std::vector<int32_t> ours = chain.greedy(prompt, kGreedy, &logits);
    ASSERT_EQ(logits.size(), ref.last_logits.size());
    const Diff d = compare(logits.data(), ref.last_logits.data(), logits.size());
    EXPECT_LE(d.max_abs_diff, kRelTol * d.max_abs_ref) << "max|diff| " << d.max_abs_diff << " max|ref| " << d.max_abs_ref;
    EXPECT_EQ(ours, ref.greedy);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Stories260KGolden, ::testing::Values("f32", "f16", "q8_0", "q4_0"));

TEST(Stories260KGolden, GreedyTextBeginsAsLlamaCpp) {
    const std::string path = model_path("stories260K-f32.gguf");
    Tokenizer tok(path);
    StageChain chain(path, {});
    const std::vector<int32_t> out = chain.greedy(tok.tokenize("Once upon a time", true, false), 20);
    std::string text;
    for (int32_t t : out) text += tok.piece(t);
    EXPECT_EQ(text.rfind(", there was a little girl named Lily. She loved to play", 0), 0u) << text;
}

}  // namespace
}  // namespace colony::test
