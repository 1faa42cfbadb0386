// One ubatch through a chain of stages as the pipeline runs it (wire
// packing, outputs, last-stage sampling), in process: the greedy tokens equal
// those of the whole model on one stage.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "net/wire.h"
#include "pipeline/seq_samplers.h"
#include "pipeline/stage_step.h"
#include "runtime/generate.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"

namespace colony {
namespace {

std::unique_ptr<Stage> make_stage(std::shared_ptr<const GgufFile> f, const ModelHparams &hp,
                                  LayerRange r) {
    StageConfig cfg;
    cfg.range = r;
    cfg.n_ctx = 256;
    cfg.n_seq_max = 2;
    cfg.n_ctx_seq = 128;
    cfg.n_ubatch = 16;
    cfg.n_threads = 1;
    return std::make_unique<Stage>(std::move(f), hp, cfg);
}

/// Greedy tokens of `prompt` through stages split at `cut`, with hidden
/// states packed as `dtype`, prefill in ubatches of 3 tokens.
std::vector<int32_t> pipeline_greedy(const std::string &model, uint32_t cut, WireDtype dtype,
                                     const std::vector<int32_t> &prompt, int n) {
    std::shared_ptr<const GgufFile> f = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*f);
    auto s0 = make_stage(f, hp, {0, cut});
    auto s1 = make_stage(f, hp, {cut, hp.n_layer});
    SequenceSamplers none(static_cast<int32_t>(hp.n_vocab)),
        samplers(static_cast<int32_t>(hp.n_vocab));
    WireSampling greedy;  // temperature 0
    std::vector<int32_t> out;
    std::vector<int32_t> input = prompt;
    int32_t pos = 0;
    while (static_cast<int>(out.size()) < n) {
        for (size_t i = 0; i < input.size(); i += 3) {
            WireActivations act;
            act.plan_epoch = 1;
            act.n_tokens = static_cast<uint32_t>(std::min<size_t>(3, input.size() - i));
            act.seqs = {wire_seq(1, act.n_tokens, greedy)};
            act.tokens.assign(input.begin() + i, input.begin() + i + act.n_tokens);
            for (uint32_t t = 0; t < act.n_tokens; ++t) {
                act.pos.push_back(pos++);
                act.seq_id.push_back(1);
            }
            if (i + act.n_tokens == input.size())
                act.outputs = {act.n_tokens - 1};
            const StageOutput mid = run_stage_step(*s0, act, dtype, none);
            const auto &hidden = std::get<WireActivations>(mid);
            EXPECT_EQ(hidden.n_embd, hp.n_embd);
            EXPECT_EQ(hidden.data.size(), hidden.n_tokens * wire_dtype_row_bytes(dtype, hp.n_embd));
            wire_check_activations(hidden, {1, hp.n_embd, 128, hp.n_vocab, 16, 2});
            const StageOutput last = run_stage_step(*s1, hidden, dtype, samplers);
            const auto &tokens = std::get<WireTokens>(last);
            if (act.outputs.empty()) {
                EXPECT_TRUE(tokens.sampled.empty());
            } else {
                EXPECT_EQ(tokens.sampled.size(), 1u);
                EXPECT_EQ(tokens.sampled[0].pos, pos - 1);
                out.push_back(tokens.sampled[0].token);
            }
        }
        input = {out.back()};
    }
    return out;
}

std::vector<int32_t> single_greedy(const std::string &model, const std::vector<int32_t> &prompt,
                                   int n) {
    std::shared_ptr<const GgufFile> f = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*f);
    auto stage = make_stage(f, hp, {0, hp.n_layer});
    Tokenizer tok(model);
    GenerateOptions go;
    go.n_predict = n;
    go.sampling.temperature = 0;
    go.stop_at_eog = false;
    std::vector<int32_t> out;
    generate(*stage, tok, prompt, go, [&](int32_t t, const std::string &) {
        if (t >= 0)
            out.push_back(t);
        return true;
    });
    return out;
}

TEST(StageStep, TwoStagesGiveTheGreedyTokensOfOne) {
    const std::string model = test::model_path("stories260K-f32.gguf");
    Tokenizer tok(model);
    const std::vector<int32_t> prompt =
        tok.tokenize("Once upon a time, in a big forest", true, false);
    const std::vector<int32_t> ref = single_greedy(model, prompt, 24);
    ASSERT_EQ(ref.size(), 24u);
    for (uint32_t cut : {1u, 3u, 4u}) {
        EXPECT_EQ(pipeline_greedy(model, cut, WIRE_DTYPE_F32, prompt, 24), ref) << "cut " << cut;
        EXPECT_EQ(pipeline_greedy(model, cut, WIRE_DTYPE_F16, prompt, 24), ref) << "cut " << cut;
    }
}

/// One ubatch of sequence 1 through s0 then s1 (the last stage).
WireTokens through(Stage &s0, Stage &s1, SequenceSamplers &samplers,
                   const std::vector<int32_t> &tokens, int32_t pos0, uint32_t n_draft,
                   bool all_outputs) {
    WireActivations act;
    act.plan_epoch = 1;
    act.n_tokens = static_cast<uint32_t>(tokens.size());
    act.seqs = {wire_seq(1, act.n_tokens, WireSampling{})};
    act.seqs[0].n_draft = n_draft;
    act.tokens = tokens;
    for (uint32_t t = 0; t < act.n_tokens; ++t) {
        act.pos.push_back(pos0 + static_cast<int32_t>(t));
        act.seq_id.push_back(1);
        if (all_outputs || t + 1 == act.n_tokens)
            act.outputs.push_back(t);
    }
    wire_check_activations(act, {1, 0, 128, s0.hparams().n_vocab, 16, 2});
    SequenceSamplers none(static_cast<int32_t>(s0.hparams().n_vocab));
    const auto hidden = std::get<WireActivations>(run_stage_step(s0, act, WIRE_DTYPE_F32, none));
    return std::get<WireTokens>(run_stage_step(s1, hidden, WIRE_DTYPE_F32, samplers));
}

// Speculative decoding through two stages: the last stage samples the rows in
// order and stops at the first draft that differs; the next ubatch of the
// sequence makes every stage forget the rejected drafts' positions.
TEST(StageStep, DraftsAreVerifiedAtTheLastStageAndRejectedOnesForgotten) {
    const std::string model = test::model_path("stories260K-f32.gguf");
    Tokenizer tok(model);
    const std::vector<int32_t> prompt = tok.tokenize("Once upon a time", true, false);
    const std::vector<int32_t> ref = single_greedy(model, prompt, 6);
    ASSERT_EQ(ref.size(), 6u);
    std::shared_ptr<const GgufFile> f = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*f);
    auto s0 = make_stage(f, hp, {0, 2});
    auto s1 = make_stage(f, hp, {2, hp.n_layer});
    SequenceSamplers samplers(static_cast<int32_t>(hp.n_vocab));
    const auto p = static_cast<int32_t>(prompt.size());
    WireTokens t = through(*s0, *s1, samplers, prompt, 0, 0, false);
    ASSERT_EQ(t.sampled.size(), 1u);
    EXPECT_EQ(t.sampled[0].token, ref[0]);
    // ref[0], then drafts ref[1], ref[2], a wrong one, ref[4]
    const int32_t wrong = (ref[3] + 1) % static_cast<int32_t>(hp.n_vocab);
    t = through(*s0, *s1, samplers, {ref[0], ref[1], ref[2], wrong, ref[4]}, p, 4, true);
    ASSERT_EQ(t.sampled.size(), 3u);  // two drafts accepted, then the correction
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(t.sampled[i].token, ref[i + 1]) << i;
        EXPECT_EQ(t.sampled[i].pos, p + static_cast<int32_t>(i)) << i;
    }
    EXPECT_EQ(s1->seq_pos_max(1), p + 4);  // every row is in the cache until ...
    // ... the next ubatch starts after the accepted ones
    t = through(*s0, *s1, samplers, {ref[3]}, p + 3, 0, false);
    ASSERT_EQ(t.sampled.size(), 1u);
    EXPECT_EQ(t.sampled[0].token, ref[4]);
    for (const Stage *s : {s0.get(), s1.get()}) {
        EXPECT_EQ(s->seq_pos_max(1), p + 3);
        EXPECT_EQ(s->kv_used(), static_cast<uint32_t>(p + 4));
    }
    // every draft accepted: the last row's token is the bonus
    t = through(*s0, *s1, samplers, {ref[4], ref[5]}, p + 4, 1, true);
    ASSERT_EQ(t.sampled.size(), 2u);
    EXPECT_EQ(t.sampled[0].token, ref[5]);
}

TEST(SequenceSamplers, PromptTokensAreCountedOnceForPenalties) {
    // With a strong repetition penalty over the whole history, the sampled
    // token must never repeat a prompt token or an earlier sample.
    const int32_t n_vocab = 8;
    SequenceSamplers s(n_vocab);
    WireActivations act;
    act.n_tokens = 2;
    WireSampling p;
    p.penalty_last_n = 64;
    p.penalty_repeat = 1000.0f;
    act.seqs = {wire_seq(0, 2, p)};
    act.tokens = {0, 1};
    act.pos = {0, 1};
    act.seq_id = {0, 0};
    s.observe(act);
    std::vector<float> logits(n_vocab, 0.0f);
    for (int i = 0; i < n_vocab; ++i)
        logits[i] = 10.0f - i;  // prefers low ids
    const int32_t t2 = s.sample(0, 1, logits.data()).token;
    EXPECT_EQ(t2, 2);
    // The sampled token comes back as the next input: not accepted twice.
    act.n_tokens = 1;
    act.seqs = {wire_seq(0, 1, p)};
    act.tokens = {t2};
    act.pos = {2};
    act.seq_id = {0};
    s.observe(act);
    EXPECT_EQ(s.sample(0, 2, logits.data()).token, 3);
    EXPECT_EQ(s.size(), 1u);
    s.release(0);
    EXPECT_EQ(s.size(), 0u);
    EXPECT_THROW(s.sample(0, 3, logits.data()), Error);
}

}  // namespace
}  // namespace colony
