// Skipping blocks at run time (--skip-layers, model/layer_skip.h) and ranking
// them (colony perplexity --layer-importance, runtime/layer_importance.h).
//
// The reference for a skipped block needs no skipping code: a chain of
// stages whose ranges leave the block out ([0,j) then [j+1,L)) hands the
// hidden state over the gap, which is what skipping it means.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "common/test_env.h"
#include "model/layer_skip.h"
#include "runtime/layer_importance.h"
#include "runtime/perplexity.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

const std::string kPrompt = "Once upon a time, in a small town";

std::string stories(const char *type = "f32") {
    return model_path(std::string("stories260K-") + type + ".gguf");
}

/// Logits of the prompt's last token and 16 greedy tokens after it.
struct Greedy {
    std::vector<int32_t> tokens;
    std::vector<float> logits;
};
Greedy greedy(StageChain &chain, const std::string &path) {
    Tokenizer tok(path);
    Greedy r;
    r.tokens = chain.greedy(tok.tokenize(kPrompt, true, false), 16, &r.logits);
    return r;
}

void expect_same(const Greedy &got, const Greedy &want, const std::string &what) {
    ASSERT_EQ(got.logits.size(), want.logits.size()) << what;
    const Diff d = compare(got.logits.data(), want.logits.data(), want.logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-5f * d.max_abs_ref) << what;
    EXPECT_EQ(got.tokens, want.tokens) << what;
}

TEST(LayerSkip, ParsesListsAndRanges) {
    EXPECT_TRUE(parse_layer_skip("", 5).empty());
    EXPECT_EQ(parse_layer_skip("3", 5).blocks, (std::vector<uint32_t>{3}));
    EXPECT_EQ(parse_layer_skip("4,1-2,2", 5).blocks, (std::vector<uint32_t>{1, 2, 4}));
    EXPECT_EQ(parse_layer_skip("1,4-6", 32).str(), "1,4,5,6");
    const LayerSkip s = parse_layer_skip("1,4-6", 32);
    EXPECT_EQ(s.count_in({3, 6}), 2u);
    EXPECT_TRUE(s.covers({4, 7}));
    EXPECT_FALSE(s.covers({3, 7}));
    EXPECT_EQ(s.within({0, 5}).str(), "1,4");
    EXPECT_EQ(s.with(0).str(), "0,1,4,5,6");
    for (const char *bad : {"a", "1,,2", "-1", "3-1", "5", "0-4", "1-x", "99999999999"}) {
        try {
            parse_layer_skip(bad, 5);
            ADD_FAILURE() << "'" << bad << "' was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
        }
    }
}

TEST(LayerSkip, ASkippedBlockEqualsAChainThatLeavesItOut) {
    for (const char *type : {"f32", "q8_0"}) {
        const std::string path = stories(type);
        const uint32_t L = StageChain(path, {}).hparams().n_layer;
        ASSERT_EQ(L, 5u);
        for (uint32_t j = 1; j + 1 < L; ++j) {
            StageChain skipped(path, {{0, L}}, parse_layer_skip(std::to_string(j), L));
            StageChain gap(path, {{0, j}, {j + 1, L}}, LayerSkip{});
            expect_same(greedy(skipped, path), greedy(gap, path),
                        std::string(type) + " block " + std::to_string(j));
        }
        // two blocks, and the answer differs from the whole model's
        StageChain two(path, {{0, L}}, parse_layer_skip("1,3", L));
        StageChain gaps(path, {{0, 1}, {2, 3}, {4, 5}}, LayerSkip{});
        const Greedy r = greedy(two, path);
        expect_same(r, greedy(gaps, path), std::string(type) + " blocks 1,3");
        StageChain whole(path, std::vector<uint32_t>{});
        EXPECT_NE(r.logits, greedy(whole, path).logits) << "skipping changed nothing";
    }
}

TEST(LayerSkip, FirstAndLastBlocksAndStagesWithEveryBlockSkipped) {
    const std::string path = stories();
    const uint32_t L = 5;
    // block 0: the token embeddings go straight into block 1; the reference
    // is a first stage of only skipped blocks (its output: the embeddings)
    StageChain skip0(path, {{0, L}}, parse_layer_skip("0", L));
    StageChain embd_then_rest(path, {{0, 1}, {1, L}}, parse_layer_skip("0", L));
    expect_same(greedy(skip0, path), greedy(embd_then_rest, path), "block 0");
    // the last block: the output norm and head read block L-2's output
    StageChain skip_last(path, {{0, L}}, parse_layer_skip("4", L));
    StageChain head_only(path, {{0, 4}, {4, L}}, parse_layer_skip("4", L));
    expect_same(greedy(skip_last, path), greedy(head_only, path), "block 4");
    // a middle stage that computes nothing passes the hidden states through
    StageChain bypass(path, {{0, 2}, {2, 3}, {3, L}}, parse_layer_skip("2", L));
    StageChain gap(path, {{0, 2}, {3, L}}, LayerSkip{});
    expect_same(greedy(bypass, path), greedy(gap, path), "a middle stage of skipped blocks");
}

TEST(LayerSkip, SkippedBlocksHoldNoWeightsAndNoKvCache) {
    const std::string path = stories("q8_0");
    StageChain whole(path, {{0, 5}}, LayerSkip{});
    StageChain skipped(path, {{0, 5}}, parse_layer_skip("1-2", 5));
    Stage &w = whole.stage(0), &s = skipped.stage(0);
    // every block of stories260K has the same tensors: two of five blocks
    // are 2/5 of the block weights and of the KV cache
    const uint64_t per_block_kv = w.kv_bytes() / 5;
    EXPECT_EQ(s.kv_bytes(), 3 * per_block_kv);
    const std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    StageConfig one;
    one.range = {1, 2};
    one.n_ctx = 512;
    const uint64_t block_bytes = Stage(file, w.hparams(), one).weight_bytes();
    EXPECT_EQ(s.weight_bytes(), w.weight_bytes() - 2 * block_bytes);
}

TEST(LayerSkip, TheWindowsContextShiftSkipsTheSkippedBlocks) {
    // a K-shift over a stage with skipped blocks re-rotates only the kept
    // blocks' keys: tokens prefilled at [37, 62) and shifted down by 37 give
    // the logits of the same tokens prefilled at [0, 25) (test_kv_shift.cpp)
    const std::string path = stories();
    Tokenizer tok(path);
    std::vector<int32_t> text =
        tok.tokenize(kPrompt + " there lived a cat named Tom.", true, false);
    ASSERT_GE(text.size(), 10u);
    const int32_t next = text.back();
    text.pop_back();
    const auto n = static_cast<int32_t>(text.size());
    const LayerSkip skip = parse_layer_skip("0,3", 5);
    StageChain shifted(path, {{0, 5}}, skip);
    shifted.run(text, 37);
    shifted.stage(0).seq_add(0, 0, -1, -37);
    const std::vector<float> got = shifted.run({next}, n);
    StageChain fresh(path, {{0, 5}}, skip);
    fresh.run(text, 0);
    const std::vector<float> want = fresh.run({next}, n);
    const Diff d = compare(got.data(), want.data(), want.size());
    EXPECT_LE(d.max_abs_diff, 5e-3f * d.max_abs_ref);
    // and the shift mattered: unshifted keys 37 positions away are far off
    StageChain far(path, {{0, 5}}, skip);
    far.run(text, 0);
    const std::vector<float> off = far.run({next}, n + 37);
    EXPECT_GT(compare(off.data(), want.data(), want.size()).max_abs_diff, 5 * d.max_abs_diff);
}

/// The first 40k characters of wiki.test.raw, tokenized.
std::vector<int32_t> wiki_tokens(const Tokenizer &tok) {
    std::ifstream in(models_dir() + "/wiki.test.raw");
    std::string text(40000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    return tok.tokenize(text, true, false);
}

TEST(LayerImportance, RanksEveryBlockByTheKlDivergenceOfSkippingIt) {
    const std::string path = stories();
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Tokenizer tok(path);
    const std::vector<int32_t> tokens = wiki_tokens(tok);
    PerplexityOptions opts;
    opts.n_ctx = 128;
    opts.n_chunks = 4;
    opts.bos = tok.bos();
    opts.n_vocab = tok.n_vocab();
    std::unique_ptr<Stage> stage;
    auto make_eval = [&](const LayerSkip &skip) {
        stage.reset();
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = opts.n_ctx;
        cfg.n_threads = 2;
        cfg.load.skip = skip;
        stage = std::make_unique<Stage>(file, hp, cfg);
        return stage_chunk_evaluator(*stage);
    };
    const std::string base = (std::filesystem::temp_directory_path() /
                              ("colony-test-importance-" + std::to_string(getpid()) + ".kld"))
                                 .string();
    std::vector<uint32_t> measured;
    const LayerImportanceResult r =
        layer_importance(tokens, opts, hp.n_layer, {}, base, make_eval,
                         [&](const BlockImportance &b) { measured.push_back(b.block); });
    EXPECT_EQ(measured, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
    ASSERT_EQ(r.blocks.size(), 5u);
    // the base is the whole model's perplexity on the same chunks
    const PerplexityResult whole = perplexity(tokens, opts, make_eval({}), nullptr, nullptr);
    EXPECT_NEAR(r.base.ppl, whole.ppl, 1e-6 * whole.ppl);  // the base file's sums round differently
    for (size_t i = 0; i < r.blocks.size(); ++i) {
        const BlockImportance &b = r.blocks[i];
        EXPECT_GT(b.kld, 1e-3) << "block " << b.block << " changed nothing";
        EXPECT_LT(b.same_top, 1.0) << "block " << b.block;
        if (i > 0)
            EXPECT_LE(r.blocks[i - 1].kld, b.kld);
    }
    // one block's row is what a KL-divergence run with that block skipped gives
    const BlockImportance &first = r.blocks.front();
    LogprobReader reader(base);
    const KldResult k = kl_divergence(reader, opts, make_eval(LayerSkip{{first.block}}), nullptr);
    EXPECT_DOUBLE_EQ(summarize(k.sums).kld.mean, first.kld);
    EXPECT_EQ(least_important(r, {}, 2).blocks.size(), 2u);
    EXPECT_TRUE(least_important(r, {}, 2).contains(first.block));
    std::printf("  least important: block %u (KLD %.4f), most: block %u (KLD %.4f)\n", first.block,
                first.kld, r.blocks.back().block, r.blocks.back().kld);
    std::filesystem::remove(base);
}

TEST(LayerImportance, BlockInfluenceIsOneMinusTheCosineOfEachBlocksInputAndOutput) {
    const std::string path = stories();
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Tokenizer tok(path);
    std::vector<int32_t> tokens = wiki_tokens(tok);
    PerplexityOptions opts;
    opts.n_ctx = 64;
    opts.n_chunks = 1;
    opts.bos = tok.bos();
    opts.n_vocab = tok.n_vocab();
    auto stage = [&](LayerRange range, const LayerSkip &skip, bool no_head) {
        StageConfig cfg;
        cfg.range = range;
        cfg.n_ctx = opts.n_ctx;
        cfg.n_threads = 2;
        cfg.load.skip = skip;
        cfg.load.no_head = no_head;
        return std::make_unique<Stage>(file, hp, cfg);
    };
    const std::vector<double> bi = block_influence(tokens, opts, hp.n_layer, stage);
    ASSERT_EQ(bi.size(), 5u);
    // the reference: the hidden state after `n` blocks from one stage of the
    // blocks [0, n) (n = 0: the embeddings of a stage whose block is skipped)
    std::vector<int32_t> chunk(tokens.begin(), tokens.begin() + opts.n_ctx);
    chunk[0] = tok.bos();
    std::vector<int32_t> pos(opts.n_ctx), seq(opts.n_ctx, 0);
    std::iota(pos.begin(), pos.end(), 0);
    auto after = [&](uint32_t n) {
        auto s = n == 0 ? stage({0, 1}, LayerSkip{{0}}, true) : stage({0, n}, {}, true);
        Ubatch ub;
        ub.n_tokens = opts.n_ctx;
        ub.tokens = chunk.data();
        ub.pos = pos.data();
        ub.seq_id = seq.data();
        const float *out = s->forward(ub);
        return std::vector<float>(out, out + size_t{hp.n_embd} * opts.n_ctx);
    };
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const std::vector<float> x = after(il), y = after(il + 1);
        double sum = 0;
        for (uint32_t t = 0; t < opts.n_ctx; ++t) {
            double xy = 0, xx = 0, yy = 0;
            for (uint32_t e = 0; e < hp.n_embd; ++e) {
                const double a = x[size_t{t} * hp.n_embd + e], b = y[size_t{t} * hp.n_embd + e];
                xy += a * b;
                xx += a * a;
                yy += b * b;
            }
            sum += xy / std::sqrt(xx * yy);
        }
        EXPECT_NEAR(bi[il], 1.0 - sum / opts.n_ctx, 1e-4) << "block " << il;
        EXPECT_GT(bi[il], 0.0) << "block " << il;
    }
    EXPECT_DOUBLE_EQ(rank_correlation({1, 2, 3}, {10, 20, 30}), 1.0);
    EXPECT_DOUBLE_EQ(rank_correlation({1, 2, 3}, {30, 20, 10}), -1.0);
}

}  // namespace
}  // namespace colony::test
