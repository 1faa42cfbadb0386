// Split composition: running [0,k) then [k,L) with the hidden states handed
// over gives the same logits (within 1e-5 relative) and the same greedy tokens
// as [0,L), for every k; and three-way splits too.
#include <gtest/gtest.h>

#include <cstdio>

#include "common/test_env.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"

namespace colony::test {
namespace {

void expect_split_equal(const std::string &path, const std::vector<uint32_t> &cuts) {
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("Once upon a time, in a small town", true, false);
    StageChain whole(path, {});
    StageChain split(path, cuts);
    std::vector<float> lw, ls;
    const auto tw = whole.greedy(prompt, 24, &lw);
    const auto ts = split.greedy(prompt, 24, &ls);
    const Diff d = compare(ls.data(), lw.data(), lw.size());
    EXPECT_LE(d.max_abs_diff, 1e-5f * d.max_abs_ref)
        << "cuts at " << ::testing::PrintToString(cuts);
    EXPECT_EQ(ts, tw) << "cuts at " << ::testing::PrintToString(cuts);
}

TEST(SplitComposition, EveryTwoWaySplitMatchesWholeModel) {
    for (const char *type : {"f32", "q8_0"}) {
        const std::string path = model_path(std::string("stories260K-") + type + ".gguf");
        const uint32_t L = StageChain(path, {}).hparams().n_layer;
        for (uint32_t k = 1; k < L; ++k)
            expect_split_equal(path, {k});
    }
}

TEST(SplitComposition, ThreeWaySplitsMatchWholeModel) {
    const std::string path = model_path("stories260K-f32.gguf");
    expect_split_equal(path, {1, 3});
    expect_split_equal(path, {2, 4});
    expect_split_equal(path, {1, 2});
}

TEST(SplitComposition, PrefillInSmallUbatchesMatchesOneUbatch) {
    const std::string path = model_path("stories260K-f32.gguf");
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("Once upon a time there was a dog named Max who liked to run.", true, false);
    StageChain big(path, {}, 512, 512);
    StageChain small(path, {2}, 512, 4);
    // feed the small-ubatch chain 4 tokens at a time
    std::vector<float> ls;
    for (size_t i = 0; i < prompt.size(); i += 4) {
        std::vector<int32_t> part(prompt.begin() + i,
                                  prompt.begin() + std::min(prompt.size(), i + 4));
        ls = small.run(part, static_cast<int32_t>(i));
    }
    const std::vector<float> lb = big.run(prompt, 0);
    const Diff d = compare(ls.data(), lb.data(), lb.size());
    // Measured: bit-exact on x86-64 (AVX2); 1.3e-4 of the largest logit on
    // aarch64 (armv8.2-a+dotprod+fp16 under qemu, scripts/test-aarch64.sh),
    // where ggml-cpu's kernels for 4 rows and for the whole prompt sum in
    // another order. Which kernel differs is not pinned down; golden tests
    // against libllama on aarch64 pass.
    EXPECT_LE(d.max_abs_diff, 5e-4f * d.max_abs_ref);
    std::printf("  max |logit diff| %.3g of max |logit| %.3g (%.2g)\n", d.max_abs_diff,
                d.max_abs_ref, d.max_abs_diff / d.max_abs_ref);
}

}  // namespace
}  // namespace colony::test
