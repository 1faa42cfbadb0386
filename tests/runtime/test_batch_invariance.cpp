// Batch invariance (StageConfig::Invariance::kFull): recovery re-computes a lost
// stage's KV cache in one prefill from the token history (DESIGN.md, decision
// 10), and greedy text stays the same only when every position gets exactly
// the floats it got when it was decoded one token at a time, next to whatever
// else was in the ubatch. Each case decodes a sequence token by token, then
// computes the same positions in two ubatches next to other sequences (their
// KV cells interleaved, as continuous batching does), and compares the logits
// bit for bit. The negative control shows the default
// kernels do differ (so the check can fail).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "common/test_env.h"
#include "common/synth_tiny.h"
#include "runtime/stage_runner.h"

namespace colony::test {
namespace {

constexpr uint32_t kPrefix = 5;   // prompt tokens before the positions compared
constexpr uint32_t kTokens = 23;  // positions in all

struct Model {
    const char *name;
    bool expect_default_differs;  // the negative control
};

std::string path_of(const TempDir &dir, const std::string &name) {
    if (name != "llama-3.2-1b-tiny-Q4_K_M")
        return model_path(name);
    // a K-quant model whose weights the CPU backend repacks (gemm/gemv in 4-row groups)
    return synth_tiny(dir, "llama-3.2-1b", "Q4_K_M", 2, 7);
}

/// Logits F32 [n_vocab] of positions kPrefix-1 .. kTokens-1 of `tokens`:
/// decoded one by one (alone), or prefilled in two ubatches next to other
/// sequences' rows.
std::vector<std::vector<float>> logits_of(const std::shared_ptr<const GgufFile> &file,
                                          const ModelHparams &hp, bool invariant, bool decode,
                                          const std::vector<int32_t> &tokens) {
    StageConfig cfg;
    cfg.range = {0, hp.n_layer};
    cfg.n_ctx = 768;
    cfg.n_seq_max = 3;
    cfg.n_ctx_seq = 256;
    cfg.n_threads = 2;
    cfg.invariance = invariant ? StageConfig::Invariance::kFull : StageConfig::Invariance::kNone;
    Stage stage(file, hp, cfg);
    std::vector<std::vector<float>> out;
    auto keep = [&](const float *l, uint32_t n_rows) {
        for (uint32_t r = 0; r < n_rows; ++r)
            out.emplace_back(l + size_t(r) * hp.n_vocab, l + size_t(r + 1) * hp.n_vocab);
    };
    std::vector<int32_t> pos(kTokens);
    std::iota(pos.begin(), pos.end(), 0);
    if (decode) {
        std::vector<int32_t> seq(kTokens, 0);
        const int32_t last = kPrefix - 1;
        keep(stage.forward({kPrefix, tokens.data(), nullptr, pos.data(), seq.data(), &last, 1}), 1);
        for (uint32_t p = kPrefix; p < kTokens; ++p) {
            const int32_t row = 0;
            keep(
                stage.forward({1, tokens.data() + p, nullptr, pos.data() + p, seq.data(), &row, 1}),
                1);
        }
        return out;
    }
    // Two ubatches that interleave this sequence's cells with others', and a
    // request that ends in between: with first-free placement the later
    // positions land in its freed cells, before the prefix's.
    uint32_t other = 0;
    auto ubatch = [&](uint32_t p0, uint32_t p1, bool ending) {
        std::vector<int32_t> toks, ps, seqs, rows;
        for (uint32_t i = 0; ending && i < 2; ++i) {
            toks.push_back(7 + static_cast<int32_t>(i));
            ps.push_back(static_cast<int32_t>(i));
            seqs.push_back(2);
        }
        auto others = [&] {
            for (uint32_t i = 0; i < 3; ++i, ++other) {
                toks.push_back(static_cast<int32_t>(11 * (other + 1)));
                ps.push_back(static_cast<int32_t>(other));
                seqs.push_back(1);
            }
        };
        if (ending)
            others();
        for (uint32_t p = p0; p < p1; ++p) {
            toks.push_back(tokens[p]);
            ps.push_back(static_cast<int32_t>(p));
            seqs.push_back(0);
            if (p + 1 >= kPrefix)
                rows.push_back(static_cast<int32_t>(toks.size() - 1));
        }
        if (!ending)  // after: this sequence's rows take the freed cells
            others();
        keep(stage.forward({static_cast<uint32_t>(toks.size()), toks.data(), nullptr, ps.data(),
                            seqs.data(), rows.data(), static_cast<uint32_t>(rows.size())}),
             static_cast<uint32_t>(rows.size()));
        if (ending)
            stage.seq_rm(2);
    };
    ubatch(0, kPrefix, true);
    ubatch(kPrefix, kTokens, false);
    return out;
}

size_t differing_positions(const std::vector<std::vector<float>> &a,
                           const std::vector<std::vector<float>> &b) {
    size_t n = 0;
    for (size_t i = 0; i < a.size(); ++i)
        n += std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0;
    return n;
}

class BatchInvariance : public ::testing::TestWithParam<Model> {};

TEST_P(BatchInvariance, DecodedAndPrefilledPositionsGetTheSameLogitsBitForBit) {
    TempDir dir;
    const std::shared_ptr<const GgufFile> file = GgufFile::open(path_of(dir, GetParam().name));
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    std::vector<int32_t> tokens(kTokens);
    for (uint32_t i = 0; i < kTokens; ++i)
        tokens[i] = static_cast<int32_t>((i * 37 + 5) % hp.n_vocab);
    const auto decoded = logits_of(file, hp, true, true, tokens);
    const auto prefilled = logits_of(file, hp, true, false, tokens);
    ASSERT_EQ(decoded.size(), kTokens - kPrefix + 1);
    ASSERT_EQ(prefilled.size(), decoded.size());
    EXPECT_EQ(differing_positions(decoded, prefilled), 0u)
        << "batch-invariant stage: a prefilled position differs from its decode";
    if (GetParam().expect_default_differs) {
        const size_t n = differing_positions(logits_of(file, hp, false, true, tokens),
                                             logits_of(file, hp, false, false, tokens));
        EXPECT_GT(n, 0u) << "the default kernels gave identical floats: the check above "
                            "cannot tell invariance from luck on this model";
        std::printf("%s: %zu of %zu positions differ with the default kernels\n", GetParam().name,
                    n, decoded.size());
    }
}

INSTANTIATE_TEST_SUITE_P(Models, BatchInvariance,
                         ::testing::Values(Model{"stories260K-f32.gguf", true},
                                           Model{"stories260K-q8_0.gguf", false},
                                           Model{"stories260K-q4_0.gguf", false},
                                           Model{"llama-3.2-1b-tiny-Q4_K_M", true}),
                         [](const auto &info) {
                             std::string s = info.param.name;
                             for (char &c : s)
                                 if (!std::isalnum(static_cast<unsigned char>(c)))
                                     c = '_';
                             return s;
                         });

}  // namespace
}  // namespace colony::test
