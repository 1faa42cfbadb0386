// Perplexity driver, statistics and log-probability file (runtime/perplexity.h,
// perplexity_stats.h, logprob_file.h) on hand-made logits whose answers are
// known in closed form. The comparison with llama-perplexity on real weights
// is tests/cli/perplexity_parity.py.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/logprob_file.h"
#include "runtime/perplexity.h"
#include "runtime/perplexity_stats.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony {
namespace {

constexpr int32_t kVocab = 10;

std::vector<int32_t> text_of(size_t n) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; ++i)
        t[i] = static_cast<int32_t>((i * 7 + 3) % kVocab);
    return t;
}

PerplexityOptions options(uint32_t n_ctx) {
    PerplexityOptions o;
    o.n_ctx = n_ctx;
    o.n_vocab = kVocab;
    o.bos = 0;
    return o;
}

/// Every row uniform: each token has probability 1/kVocab.
ChunkEvaluator uniform() {
    return [](std::span<const int32_t> tokens, uint32_t first, std::vector<float> &logits) {
        logits.assign((tokens.size() - first) * kVocab, 0.5f);
    };
}

/// Each row puts `logit` on the chunk's next token and 0 elsewhere.
ChunkEvaluator knows_next(float logit) {
    return [logit](std::span<const int32_t> tokens, uint32_t first, std::vector<float> &logits) {
        logits.assign((tokens.size() - first) * kVocab, 0.f);
        for (size_t p = first; p + 1 < tokens.size(); ++p)
            logits[(p - first) * kVocab + tokens[p + 1]] = logit;
    };
}

TEST(Perplexity, UniformLogitsGiveTheVocabularySize) {
    const PerplexityResult r = perplexity(text_of(100), options(16), uniform(), nullptr, nullptr);
    EXPECT_EQ(r.n_chunk, 6);        // 100 / 16
    EXPECT_EQ(r.n_scored, 6u * 7);  // 16 - 1 - 8 scored positions a chunk
    EXPECT_NEAR(r.ppl, kVocab, 1e-9);
    EXPECT_NEAR(r.ppl_error, 0, 1e-9);  // every token scores the same
}

TEST(Perplexity, MatchesTheClosedFormForAKnownNextToken) {
    // p(next) = e^4 / (e^4 + 9): perplexity is its inverse
    const double p = std::exp(4.0) / (std::exp(4.0) + 9);
    const PerplexityResult r =
        perplexity(text_of(64), options(16), knows_next(4), nullptr, nullptr);
    EXPECT_NEAR(r.ppl, 1 / p, 1e-5);
}

TEST(Perplexity, EachChunkStartsWithBosAndChunksAreCounted) {
    PerplexityOptions o = options(8);
    o.bos = 9;
    o.n_chunks = 3;
    std::vector<int32_t> firsts;
    std::vector<int32_t> reports;
    auto eval = [&](std::span<const int32_t> t, uint32_t first, std::vector<float> &logits) {
        firsts.push_back(t[0]);
        EXPECT_EQ(t.size(), 8u);
        EXPECT_EQ(first, 4u);
        logits.assign((t.size() - first) * kVocab, 0.f);
    };
    const PerplexityResult r = perplexity(
        text_of(80), o, eval, nullptr, [&](const ChunkReport &c) { reports.push_back(c.chunk); });
    EXPECT_EQ(r.n_chunk, 3);
    EXPECT_EQ(firsts, (std::vector<int32_t>{9, 9, 9}));
    EXPECT_EQ(reports, (std::vector<int32_t>{1, 2, 3}));
    o.add_bos = false;
    firsts.clear();
    perplexity(text_of(80), o, eval, nullptr, nullptr);
    EXPECT_EQ(firsts, (std::vector<int32_t>{text_of(80)[0], text_of(80)[8], text_of(80)[16]}));
}

TEST(Perplexity, RefusesATextShorterThanTwoContextsAndTinyContexts) {
    EXPECT_THROW(perplexity(text_of(31), options(16), uniform(), nullptr, nullptr), Error);
    EXPECT_EQ(perplexity_chunks(32, options(16)), 2);
    EXPECT_THROW(perplexity_chunks(100, options(3)), Error);
}

TEST(PerplexityStats, QuantizedLogProbsRoundTripWithinHalfAStep) {
    std::vector<float> logits(kVocab);
    for (int i = 0; i < kVocab; ++i)
        logits[i] = 0.37f * i - 1.0f;
    std::vector<uint16_t> row(logprob_row_size(kVocab));
    const double nll = quantize_log_probs(logits, 3, row);
    EXPECT_NEAR(nll, -token_log_prob(logits, 3).log_prob, 1e-5);
    float scale, min_log_prob;
    std::memcpy(&scale, row.data(), 4);
    std::memcpy(&min_log_prob, row.data() + 2, 4);
    for (int i = 0; i < kVocab; ++i) {
        const double exact = token_log_prob(logits, i).log_prob;
        EXPECT_NEAR(scale * row[4 + i] + min_log_prob, exact, scale / 2 + 1e-5) << i;
    }
}

TEST(PerplexityStats, KlDivergenceOfAModelWithItselfIsZeroAndOfAnotherIsPositive) {
    std::vector<float> logits(kVocab), other(kVocab);
    for (int i = 0; i < kVocab; ++i) {
        logits[i] = std::sin(float(i));
        other[i] = std::cos(float(i));
    }
    std::vector<uint16_t> row(logprob_row_size(kVocab));
    quantize_log_probs(logits, 2, row);
    KldSums same;
    EXPECT_NEAR(same.add(logits, row, 2).first, 0, 1e-4);
    EXPECT_EQ(same.n_same_top, 1u);
    KldSums diff;
    // KL(base || Q) in closed form
    double kl = 0;
    for (int i = 0; i < kVocab; ++i) {
        const double pb = std::exp(token_log_prob(logits, i).log_prob);
        kl += pb * (token_log_prob(logits, i).log_prob - token_log_prob(other, i).log_prob);
    }
    EXPECT_NEAR(diff.add(other, row, 2).first, kl, 1e-3);
    EXPECT_EQ(diff.n_same_top, 0u);  // argmax sin at 8, cos at 0
}

class LogprobFile : public ::testing::Test {
  protected:
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("colony-logprob-" + std::to_string(::getpid()) + ".kld");
    void TearDown() override { std::filesystem::remove(path); }

    /// A base file of 2 chunks of 8 tokens written by a perplexity run.
    void write_base() {
        const std::vector<int32_t> text = text_of(16);
        LogprobHeader h;
        h.n_ctx = 8;
        h.n_vocab = kVocab;
        h.n_chunk = 2;
        h.tokens = text;
        LogprobWriter w(path.string(), h);
        perplexity(text, options(8), knows_next(2), &w, nullptr);
        w.close();
    }
    void patch(std::streamoff at, const void *bytes, size_t n) {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(at);
        f.write(static_cast<const char *>(bytes), static_cast<std::streamsize>(n));
    }
};

TEST_F(LogprobFile, AKlDivergenceRunReadsWhatAPerplexityRunWrote) {
    write_base();
    LogprobReader r(path.string());
    EXPECT_EQ(r.header().n_ctx, 8u);
    EXPECT_EQ(r.header().tokens, text_of(16));
    const KldResult same = kl_divergence(r, options(8), knows_next(2), nullptr);
    EXPECT_EQ(same.sums.count, 2u * 3);
    EXPECT_EQ(same.kld_values.size(), 6u);
    EXPECT_NEAR(summarize(same.sums).kld.mean, 0, 1e-4);
    EXPECT_NEAR(summarize(same.sums).same_top, 1, 1e-12);
    LogprobReader again(path.string());
    const KldResult worse = kl_divergence(again, options(8), uniform(), nullptr);
    EXPECT_GT(summarize(worse.sums).kld.mean, 0.1);
    EXPECT_GT(summarize(worse.sums).ppl_ratio, 1.5);
}

TEST_F(LogprobFile, RefusesForgedOrCutFiles) {
    write_base();
    const auto size = std::filesystem::file_size(path);
    auto refused = [&](const char *what) {
        try {
            LogprobReader r(path.string());
            ADD_FAILURE() << what << ": accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << what << ": " << e.what();
        }
    };
    std::filesystem::resize_file(path, size - 1);
    refused("one byte short");
    write_base();
    std::filesystem::resize_file(path, size + 2);
    refused("two bytes more");
    write_base();
    patch(0, "_LOGITS_", 8);
    refused("bad magic");
    write_base();
    const uint32_t n_ctx = 2;
    patch(8, &n_ctx, 4);
    refused("n_ctx 2");
    write_base();
    const int32_t big = 1 << 30;
    patch(16, &big, 4);
    refused("n_chunk 2^30 (sizes in 64 bits)");
    write_base();
    const int32_t bad_token = kVocab;
    patch(20 + 4 * 5, &bad_token, 4);
    refused("a token outside the vocabulary");
    write_base();
    LogprobReader r(path.string());
    PerplexityOptions o = options(8);
    o.n_vocab = kVocab + 1;
    EXPECT_THROW(kl_divergence(r, o, uniform(), nullptr), Error);  // another model's vocabulary
}

}  // namespace
}  // namespace colony

namespace colony::test {
namespace {

/// StreamingLLM's observation on real weights (stories260K, trained on 512
/// positions): past the training context a full cache's perplexity blows up,
/// a sliding window keeps it near the start's.
TEST(StreamingPerplexity, TheWindowStaysFlatWhereTheFullCacheFails) {
    const std::string path = model_path("stories260K-f32.gguf");
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Tokenizer tok(path);
    std::ifstream in(models_dir() + "/wiki.test.raw");
    std::string text(200000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    const std::vector<int32_t> tokens = tok.tokenize(text, true, false);
    auto stage_of = [&](uint32_t n_ctx) {
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = n_ctx;
        cfg.n_ubatch = 32;
        cfg.n_threads = 2;
        return std::make_unique<Stage>(file, hp, cfg);
    };
    StreamOptions so;
    so.n_tokens = 2048;
    so.block = 512;
    auto full_stage = stage_of(2048);
    const StreamResult full = streaming_perplexity(*full_stage, tokens, so, nullptr);
    ASSERT_EQ(full.block_ppl.size(), 3u);  // 2047 scored tokens
    so.window = {256, 4};
    auto window_stage = stage_of(512);
    const StreamResult win = streaming_perplexity(*window_stage, tokens, so, nullptr);
    ASSERT_EQ(win.block_ppl.size(), 3u);
    EXPECT_FALSE(win.context_full);
    EXPECT_LT(win.kv_used_max, 256u);
    EXPECT_GT(win.n_shifts, 10);
    std::printf("full cache blocks %.1f %.1f %.1f; window 256 + 4 sinks %.1f %.1f %.1f\n",
                full.block_ppl[0], full.block_ppl[1], full.block_ppl[2], win.block_ppl[0],
                win.block_ppl[1], win.block_ppl[2]);
    EXPECT_LT(win.ppl, full.ppl);
    // each window block is well below the full cache's at the same place past 512
    EXPECT_LT(win.block_ppl[2], 0.85 * full.block_ppl[2]);  // 200.9 against 265.7 when written
    // and without a window a 512-cell cache stops where it is full
    so.window = {};
    auto small = stage_of(512);
    const StreamResult stopped = streaming_perplexity(*small, tokens, so, nullptr);
    EXPECT_TRUE(stopped.context_full);
    EXPECT_EQ(stopped.n_scored, 512u);
}

}  // namespace
}  // namespace colony::test
