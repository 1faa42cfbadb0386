// Stage behaviour: several sequences share one KV cache independently; bad
// ubatches are rejected without changing the cache; context overflow is a
// clear error.
#include <gtest/gtest.h>

#include "common/test_env.h"
#include "runtime/stage_probe.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"

namespace colony::test {
namespace {

std::shared_ptr<const GgufFile> open_model(const std::string &name) { return GgufFile::open(model_path(name)); }

StageConfig whole(const ModelHparams &hp, uint32_t n_ctx = 256, uint32_t n_seq = 1) {
    StageConfig cfg;
    cfg.range = {0, hp.n_layer};
    cfg.n_ctx = n_ctx;
    cfg.n_seq_max = n_seq;
    cfg.n_threads = 2;
    return cfg;
}

TEST(Stage, TwoSequencesInOneUbatchMatchEachAlone) {
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Tokenizer tok(file->path());
    const auto a = tok.tokenize("Once upon a time", true, false);
    const auto b = tok.tokenize("The cat sat on the mat and", true, false);

    Stage solo(file, hp, whole(hp));
    auto run_alone = [&](const std::vector<int32_t> &t) {
        solo.seq_rm(0);
        std::vector<int32_t> pos(t.size()), seq(t.size(), 0);
        for (size_t i = 0; i < t.size(); ++i) pos[i] = static_cast<int32_t>(i);
        const int32_t row = static_cast<int32_t>(t.size() - 1);
        Ubatch ub{static_cast<uint32_t>(t.size()), t.data(), nullptr, pos.data(), seq.data(), &row, 1};
        const float *l = solo.forward(ub);
        return std::vector<float>(l, l + hp.n_vocab);
    };
    const auto la = run_alone(a), lb = run_alone(b);

    Stage both(file, hp, whole(hp, 256, 2));
    std::vector<int32_t> toks, pos, seq, rows;
    for (size_t i = 0; i < a.size(); ++i) toks.push_back(a[i]), pos.push_back(i), seq.push_back(0);
    for (size_t i = 0; i < b.size(); ++i) toks.push_back(b[i]), pos.push_back(i), seq.push_back(1);
    rows = {static_cast<int32_t>(a.size() - 1), static_cast<int32_t>(toks.size() - 1)};
    Ubatch ub{static_cast<uint32_t>(toks.size()), toks.data(), nullptr, pos.data(), seq.data(), rows.data(), 2};
    const float *l = both.forward(ub);
    const Diff da = compare(l, la.data(), hp.n_vocab);
    const Diff db = compare(l + hp.n_vocab, lb.data(), hp.n_vocab);
    EXPECT_LE(da.max_abs_diff, 1e-4f * da.max_abs_ref);
    EXPECT_LE(db.max_abs_diff, 1e-4f * db.max_abs_ref);

    // freeing sequence 0 leaves sequence 1 intact
    const uint32_t used = both.kv_used();
    both.seq_rm(0);
    EXPECT_EQ(both.kv_used(), used - a.size());
    EXPECT_EQ(both.seq_pos_max(1), static_cast<int32_t>(b.size() - 1));
    EXPECT_EQ(both.seq_pos_max(0), -1);
}

TEST(Stage, ContextOverflowIsAClearErrorAndLeavesTheCacheUnchanged) {
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    StageConfig cfg = whole(hp, 8);
    Stage s(file, hp, cfg);
    std::vector<int32_t> toks(8, 100), pos(8), seq(8, 0);
    for (int i = 0; i < 8; ++i) pos[i] = i;
    const int32_t row = 7;
    Ubatch ub{8, toks.data(), nullptr, pos.data(), seq.data(), &row, 1};
    s.forward(ub);
    const int32_t t = 100, p = 8, sq = 0, r = 0;
    Ubatch one{1, &t, nullptr, &p, &sq, &r, 1};
    try {
        s.forward(one);
        FAIL() << "expected a context overflow";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
        EXPECT_NE(std::string(e.what()).find("context overflow"), std::string::npos);
    }
    EXPECT_EQ(s.kv_used(), 8u);
}

TEST(Stage, RejectsBadUbatches) {
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Stage s(file, hp, whole(hp));
    const int32_t bad_token = static_cast<int32_t>(hp.n_vocab), p = 0, sq = 0, r = 0, bad_seq = 5;
    Ubatch ub{1, &bad_token, nullptr, &p, &sq, &r, 1};
    EXPECT_THROW(s.forward(ub), Error);
    const int32_t tok = 5;
    Ubatch ub2{1, &tok, nullptr, &p, &bad_seq, &r, 1};
    EXPECT_THROW(s.forward(ub2), Error);
    Ubatch ub3{1, &tok, nullptr, &p, &sq, &r, 0};
    EXPECT_THROW(s.forward(ub3), Error);
    EXPECT_EQ(s.kv_used(), 0u);
    // a repeated position of the same sequence is refused
    Ubatch ok{1, &tok, nullptr, &p, &sq, &r, 1};
    s.forward(ok);
    EXPECT_THROW(s.forward(ok), Error);
    EXPECT_EQ(s.kv_used(), 1u);
}

TEST(Stage, QuantizedKvCacheNeedsWholeBlocksPerHead) {
    // stories260K has 8-wide heads; a q8_0 block is 32 wide
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    StageConfig cfg = whole(hp);
    cfg.type_k = GGML_TYPE_Q8_0;
    try {
        Stage s(file, hp, cfg);
        FAIL() << "expected an error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("head size"), std::string::npos) << e.what();
    }
}

TEST(StageProbe, MeasuresPositiveSpeedsAndLeavesTheCacheEmpty) {
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    for (LayerRange r : {LayerRange{0, 2}, LayerRange{2, hp.n_layer}}) {
        StageConfig cfg = whole(hp);
        cfg.range = r;
        Stage s(file, hp, cfg);
        const StageSpeed speed = measure_stage_speed(s, 4, 32);
        EXPECT_GT(speed.decode_ms_per_layer, 0.0);
        EXPECT_GT(speed.prefill_ms_per_layer_per_token, 0.0);
        EXPECT_EQ(s.kv_used(), 0u);
    }
}

TEST(StageProbe, SlowdownFactorSlowsTheStageDown) {
    // The slow-down sleeps (factor - 1) x the measured compute time after
    // each forward. sleep_for never returns early, so every forward's wall
    // time is at least factor x its compute time: a bound that holds on any
    // machine, loaded or not (comparing two timed runs does not).
    auto file = open_model("stories260K-f32.gguf");
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Stage s(file, hp, whole(hp));
    s.set_slowdown(4.0);
    EXPECT_EQ(s.slowdown(), 4.0);
    const int32_t tok = 1, row = 0, seq = 0;
    for (int32_t p = 0; p < 4; ++p) {
        Ubatch ub{1, &tok, nullptr, &p, &seq, &row, 1};
        const int64_t t0 = now_us();
        s.forward(ub);
        const int64_t wall_us = now_us() - t0;
        const int64_t compute_us = s.last_timings().compute_us;
        EXPECT_GT(compute_us, 0);
        EXPECT_GE(wall_us, 4 * compute_us)
            << "compute " << compute_us << " us, wall " << wall_us << " us";
    }
    EXPECT_THROW(s.set_slowdown(0.5), Error);
    EXPECT_EQ(s.slowdown(), 4.0);
}

}  // namespace
}  // namespace colony::test
