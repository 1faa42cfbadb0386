// Context shift (KvCache::seq_add, Stage::seq_add, the K-shift graph) and the
// sliding window with attention sinks (runtime/kv_window.h). The window's
// greedy text against llama-completion's context shift is a CLI test
// (tests/cli: generate_kv_window_matches_llama_context_shift).
#include <gtest/gtest.h>

#include <numeric>

#include "common/synth_tiny.h"
#include "common/test_env.h"
#include "model/kv_cache.h"
#include "runtime/generate.h"
#include "runtime/kv_window.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

TEST(KvWindow, ShiftsByLlamaCppsRuleAtTheWindowsEnd) {
    const KvWindow w{256, 4};
    EXPECT_FALSE(w.shift_before(254));
    const auto s = w.shift_before(255);  // position 255 would make 256 cells
    ASSERT_TRUE(s);
    EXPECT_EQ(s->p0, 4);
    EXPECT_EQ(s->n_discard, (255 - 4) / 2);
    EXPECT_EQ(s->n_past_after(), 255 - 125);
    EXPECT_FALSE(KvWindow{}.shift_before(100000));
}

TEST(KvWindow, RefusesWindowsTheContextOrTheSinksCannotHold) {
    EXPECT_NO_THROW((KvWindow{256, 4}.validate(512)));
    EXPECT_THROW((KvWindow{1024, 4}.validate(512)), Error);  // larger than the context
    EXPECT_THROW((KvWindow{16, 15}.validate(512)), Error);   // nothing left to slide
    EXPECT_THROW((KvWindow{0, 4}.validate(512)), Error);     // sinks without a window
}

TEST(KvCacheShift, MovesPositionsRecordsShiftsAndRefusesCollisions) {
    const std::string path = model_path("stories260K-f32.gguf");
    auto file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    KvCache kv(hp, {0, hp.n_layer}, 64, 2, 64, GGML_TYPE_F16, GGML_TYPE_F16,
               ggml_backend_cpu_buffer_type());
    std::vector<int32_t> pos(20), seq(20, 0);
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<int64_t> cells;
    kv.store(seq.data(), pos.data(), 20, cells);
    EXPECT_THROW(kv.seq_add(0, 10, -1, -5), Error);  // would land on 5..9, still held
    EXPECT_FALSE(kv.has_shift());
    kv.seq_rm(0, 4, 9);
    kv.seq_add(0, 9, -1, -5);
    EXPECT_EQ(kv.seq_pos_max(0), 14);
    EXPECT_EQ(kv.used(), 15u);
    ASSERT_TRUE(kv.has_shift());
    EXPECT_EQ(kv.shifts()[3], 0);   // a sink
    EXPECT_EQ(kv.shifts()[9], -5);  // moved from 9 to 4
    kv.clear_shifts();
    kv.seq_add(0, 0, 3, -2);  // positions 0, 1 fall below 0: freed
    EXPECT_EQ(kv.used(), 13u);
}

struct ShiftCase {
    const char *name;
    const char *preset;  // "" = stories260K-f32 (real weights)
    ggml_type type_k;
    float tolerance;  // max|shifted - fresh| <= tolerance * max|fresh|
};

class KShift : public ::testing::TestWithParam<ShiftCase> {};

/// RoPE attention depends on relative positions only, so a sequence
/// prefilled at positions [kOffset, kOffset + n) and shifted down by kOffset
/// (every key re-rotated) must give the logits of the same tokens prefilled
/// at [0, n), up to the rounding of storing each key twice. (Dropping
/// positions as the window does is not comparable to a fresh prefill: the
/// kept tokens' states saw the dropped ones. The window's text is checked
/// against llama.cpp's own context shift in tests/cli.)
TEST_P(KShift, ShiftedKeysGiveTheLogitsOfAPrefillAtTheNewPositions) {
    const ShiftCase &c = GetParam();
    TempDir dir;
    const std::string path =
        *c.preset ? synth_tiny(dir, c.preset, "F16", 2) : model_path("stories260K-f32.gguf");
    Tokenizer tok(path);
    std::vector<int32_t> text = tok.tokenize(
        "Once upon a time there was a little girl named Lily. She loved to play outside in the "
        "park with her friends and her dog.",
        true, false);
    ASSERT_GE(text.size(), 26u);
    text.resize(26);
    const int32_t next = text.back();
    text.pop_back();  // 25 tokens, then `next` is decoded
    const auto n = static_cast<int32_t>(text.size());
    constexpr int32_t kOffset = 37;

    StageChain shifted(path, {1}, 128, 512, c.type_k);
    shifted.run(text, kOffset);
    for (size_t s = 0; s < 2; ++s)
        shifted.stage(s).seq_add(0, 0, -1, -kOffset);
    EXPECT_EQ(shifted.stage(0).seq_pos_max(0), n - 1);
    const std::vector<float> got = shifted.run({next}, n);

    StageChain fresh(path, {1}, 128, 512, c.type_k);
    fresh.run(text, 0);
    const std::vector<float> want = fresh.run({next}, n);
    const Diff d = compare(got.data(), want.data(), want.size());
    EXPECT_LE(d.max_abs_diff, c.tolerance * d.max_abs_ref)
        << c.name << ": max|diff| " << d.max_abs_diff << " max|ref| " << d.max_abs_ref;

    // The logits are sensitive to the keys' positions: the same tokens with
    // their keys kOffset further away are far from both.
    StageChain offset(path, {1}, 128, 512, c.type_k);
    offset.run(text, 0);
    const std::vector<float> far = offset.run({next}, n + kOffset);
    const Diff w = compare(far.data(), want.data(), want.size());
    EXPECT_GT(w.max_abs_diff, 5 * d.max_abs_diff) << c.name;
    std::printf("%s: shifted vs fresh %.3g, keys %d positions off %.3g (max|ref| %.3g)\n", c.name,
                d.max_abs_diff, kOffset, w.max_abs_diff, d.max_abs_ref);
}

INSTANTIATE_TEST_SUITE_P(
    Models, KShift,
    ::testing::Values(ShiftCase{"stories260K_f32_normal_rope", "", GGML_TYPE_F16, 5e-3f},
                      ShiftCase{"qwen2_neox_rope", "qwen2.5-0.5b", GGML_TYPE_F16, 5e-3f},
                      ShiftCase{"llama3_rope_freqs", "llama-3.2-1b", GGML_TYPE_F16, 5e-3f},
                      ShiftCase{"llama3_q8_0_keys", "llama-3.2-1b", GGML_TYPE_Q8_0, 3e-2f},
                      // a windowed block (RoPE base 10000, window 4) and a global one (1e6)
                      ShiftCase{"gemma3_rope_per_block", "gemma-3-1b", GGML_TYPE_F16, 5e-3f},
                      // YaRN (ext_factor 1) in windowed and global blocks, and
                      // phi3's rope.scaling.attn_factor (1.17): a shift must not
                      // scale the cached keys again (graph.h, k_shift_attn_factor)
                      ShiftCase{"gpt_oss_yarn", "gpt-oss-20b", GGML_TYPE_F16, 5e-3f},
                      ShiftCase{"phi3_attn_factor", "phi-3.5-mini", GGML_TYPE_F16, 5e-3f}),
    [](const auto &info) { return std::string(info.param.name); });

TEST(KvWindowGenerate, CellsInUseNeverExceedTheWindow) {
    const std::string path = model_path("stories260K-f32.gguf");
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    StageConfig cfg;
    cfg.range = {0, hp.n_layer};
    cfg.n_ctx = 128;
    cfg.n_threads = 2;
    Stage stage(file, hp, cfg);
    Tokenizer tok(path);
    GenerateOptions go;
    go.n_predict = 600;  // far past the 128-cell context
    go.sampling.temperature = 0;
    go.ignore_eos = true;
    go.kv_window = {64, 4};
    uint32_t most = 0;
    const GenerateStats st = generate(stage, tok, tok.tokenize("Once upon a time", true, false), go,
                                      [&](int32_t, const std::string &) {
                                          most = std::max(most, stage.kv_used());
                                          return true;
                                      });
    EXPECT_EQ(st.n_generated, 600);
    EXPECT_EQ(st.stop_reason, "length");
    EXPECT_GT(st.n_kv_shifts, 10);
    EXPECT_LT(most, 64u);
    EXPECT_LT(st.kv_used_max, 64u);
    // without the window the same request stops at the context's end
    go.kv_window = {};
    stage.seq_rm(0);
    const GenerateStats full = generate(stage, tok, tok.tokenize("Once upon a time", true, false),
                                        go, [](int32_t, const std::string &) { return true; });
    EXPECT_LT(full.n_generated, 128);
}

}  // namespace
}  // namespace colony::test
