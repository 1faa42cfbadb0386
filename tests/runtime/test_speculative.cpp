// Speculative decoding on one node (runtime/speculative.h,
// runtime/draft_source.h): the text is plain decoding's for every draft
// source, greedy and seeded; the KV cache keeps exactly the accepted
// positions; the draft length follows the measured acceptance.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "common/synth_tiny.h"
#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/draft_source.h"
#include "runtime/generate.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

TEST(VerifyDrafts, KeepsDraftsWhileTheyEqualTheDrawnTokens) {
    auto rows = [](std::vector<int32_t> drawn) {
        return [drawn](size_t r) { return drawn.at(r); };
    };
    EXPECT_EQ(verify_drafts({}, rows({7})), (std::vector<int32_t>{7}));
    EXPECT_EQ(verify_drafts({1, 2, 3}, rows({1, 2, 3, 4})), (std::vector<int32_t>{1, 2, 3, 4}));
    EXPECT_EQ(verify_drafts({1, 2, 3}, rows({1, 5, 3, 4})), (std::vector<int32_t>{1, 5}));
    EXPECT_EQ(verify_drafts({1, 2, 3}, rows({9, 2, 3, 4})), (std::vector<int32_t>{9}));
    // rows after the first difference are never sampled (their draws would
    // move the sampler's random stream)
    int sampled = 0;
    verify_drafts({1, 2, 3}, [&](size_t) {
        ++sampled;
        return 0;
    });
    EXPECT_EQ(sampled, 1);
}

TEST(DraftLength, MeasuresPlainDecodingFirstThenFollowsTheAcceptance) {
    SpecParams p;
    p.type = SpecType::kNgram;
    p.draft_max = 8;
    DraftLength good(p);
    EXPECT_EQ(good.next(8), 0);  // nothing measured yet
    good.record(0, 0, 10.0, 0);
    EXPECT_EQ(good.next(8), 8);  // the cost of a verification
    good.record(8, 8, 12.0, 0);  // cheap rows, everything accepted
    for (int i = 0; i < 10; ++i)
        good.record(8, 8, 12.0, 0);
    EXPECT_GT(good.acceptance(), 0.9);
    EXPECT_EQ(good.next(8), 8);
    EXPECT_EQ(good.next(3), 3);  // the cap (context, ubatch, tokens left) wins

    DraftLength bad(p);
    bad.record(0, 0, 10.0, 0);
    for (int i = 0; i < 20; ++i)
        bad.record(8, 0, 30.0, 0);  // nothing accepted, each row costs 2.5 ms
    EXPECT_LT(bad.acceptance(), 0.1);
    EXPECT_EQ(bad.next(8), 0);  // off
    for (int i = 0; i < DraftLength::kProbeEvery - 1; ++i) {
        bad.record(0, 0, 10.0, 0);
        EXPECT_EQ(bad.next(8), 0);
    }
    bad.record(0, 0, 10.0, 0);
    EXPECT_GT(bad.next(8), 0);  // a probe after kProbeEvery plain steps

    p.adaptive = false;
    DraftLength fixed(p);
    EXPECT_EQ(fixed.next(20), 8);
    p.draft_min = 4;
    DraftLength min4(p);
    EXPECT_EQ(min4.next(3), 0);  // too little room for --draft-min
}

TEST(SpecParams, RefusesValuesOutOfRange) {
    auto refused = [](SpecParams p, const std::string &what) {
        try {
            p.validate();
        } catch (const Error &e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
            return;
        }
        ADD_FAILURE() << "accepted: " << what;
    };
    SpecParams p;
    p.type = SpecType::kNgram;
    p.validate();
    refused(
        [&] {
            auto q = p;
            q.draft_max = 0;
            return q;
        }(),
        "--draft-max");
    refused(
        [&] {
            auto q = p;
            q.draft_min = 17;
            return q;
        }(),
        "--draft-min");
    refused(
        [&] {
            auto q = p;
            q.p_min = 1.5f;
            return q;
        }(),
        "--draft-p-min");
    refused(
        [&] {
            auto q = p;
            q.ngram_n = 1;
            return q;
        }(),
        "--spec-ngram-size-n");
    refused(
        [&] {
            auto q = p;
            q.type = SpecType::kDraftModel;
            return q;
        }(),
        "-md");
    refused(
        [&] {
            auto q = p;
            q.draft_model = "x.gguf";
            return q;
        }(),
        "exclude");
    refused(
        [&] {
            auto q = p;
            q.draft_layers = 2;  // ngram
            return q;
        }(),
        "--draft-layers");
    EXPECT_EQ(parse_spec_type("ngram-simple"), SpecType::kNgram);
    EXPECT_EQ(parse_spec_type("skip"), SpecType::kSkip);
    EXPECT_THROW(parse_spec_type("eagle"), Error);
}

TEST(NgramDraft, ProposesWhatFollowedTheLastNgramBefore) {
    NgramDraft d(4);
    // ... 1 2 3 4 [5 6 7 8] ... 1 2 3 4 -> 5 6 7 8
    const std::vector<int32_t> h = {9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 1, 2, 3, 4};
    EXPECT_EQ(d.draft(0, h, 4), (std::vector<int32_t>{5, 6, 7, 8}));
    // llama.cpp's rule: an n-gram drafts at least n tokens, or none; for two,
    // the 2-gram "3 4" does
    EXPECT_EQ(d.draft(0, h, 2), (std::vector<int32_t>{5, 6}));
    // only the last 2 tokens recur: the shorter n-gram finds them
    const std::vector<int32_t> h2 = {9, 7, 3, 4, 5, 6, 8, 8, 8, 8, 1, 3, 4};
    EXPECT_EQ(d.draft(0, h2, 2), (std::vector<int32_t>{5, 6}));
    EXPECT_TRUE(d.draft(0, {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12}, 4).empty());
}

/// One node with the whole model; kFull invariance, so that every row of a
/// verification gets the floats of a one-token decode (without it, a near
/// tie can go the other way, as in llama.cpp).
struct Node {
    explicit Node(const std::string &path_, bool invariant = true) : path(path_), tok(path) {
        file = GgufFile::open(path);
        const ModelHparams hp = ModelHparams::from_gguf(*file);
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = 512;
        cfg.n_threads = 2;
        if (invariant)
            cfg.invariance = StageConfig::Invariance::kFull;
        stage = std::make_unique<Stage>(file, hp, cfg);
    }
    std::string run(const std::string &prompt, GenerateOptions go, GenerateStats *st = nullptr) {
        stage->seq_rm(0);
        std::string out;
        const GenerateStats s = generate(*stage, tok, tok.tokenize(prompt, true, false), go,
                                         [&](int32_t, const std::string &piece) {
                                             out += piece;
                                             return true;
                                         });
        if (st)
            *st = s;
        return out;
    }
    std::shared_ptr<const GgufFile> file;
    std::string path;
    StageConfig cfg;
    Tokenizer tok;
    std::unique_ptr<Stage> stage;
};

/// Generates `prompt` plainly and with `draft` (params `sp`); expects the
/// same text, and the KV cache to hold exactly the accepted positions: the
/// prompt and every generated token but the last (sampled, never fed).
/// Returns the speculative run's statistics.
GenerateStats expect_plain_text(Node &node, const std::string &prompt, GenerateOptions go,
                                DraftSource *draft, const SpecParams &sp) {
    const std::string plain = node.run(prompt, go);
    go.draft = draft;
    go.spec = sp;
    GenerateStats st;
    EXPECT_EQ(node.run(prompt, go, &st), plain) << "temperature " << go.sampling.temperature;
    EXPECT_EQ(node.stage->kv_used(), static_cast<uint32_t>(st.n_prompt + st.n_generated - 1));
    return st;
}

struct SourceCase {
    const char *name;
    SpecType type;
    const char *draft_model;  // under ../shared/models
    float p_min;
    bool adaptive;
};

class SpeculativeGenerate : public ::testing::TestWithParam<SourceCase> {};

TEST_P(SpeculativeGenerate, GreedyAndSeededTextIsPlainDecodings) {
    const SourceCase &c = GetParam();
    Node node(model_path("stories260K-f32.gguf"));
    SpecParams sp;
    sp.type = c.type;
    sp.p_min = c.p_min;
    sp.adaptive = c.adaptive;
    sp.draft_max = 8;
    if (c.draft_model[0])
        sp.draft_model = model_path(c.draft_model);
    const std::unique_ptr<DraftSource> draft = make_draft_source(sp, node.path, node.tok, node.cfg);
    // a prompt that repeats, so that the n-gram source has something to copy
    const std::string prompt =
        "Lily went to the park. She saw a big dog. Lily went to the park. She saw";
    for (const float temp : {0.0f, 0.8f}) {
        GenerateOptions go;
        go.n_predict = 160;
        go.ignore_eos = true;
        go.sampling.temperature = temp;
        go.sampling.seed = 1234;
        SCOPED_TRACE(c.name);
        const GenerateStats st = expect_plain_text(node, prompt, go, draft.get(), sp);
        EXPECT_EQ(st.n_generated, 160);
        EXPECT_GT(st.spec.n_drafted, 0);
        if (!c.adaptive) {  // (adaptive: what the measured costs allow, which load changes)
            EXPECT_GT(st.spec.n_accepted, 0) << "temp " << temp;
        }
        std::printf("%s temp %.1f: %lld drafted, %lld accepted in %lld verifications\n", c.name,
                    temp, static_cast<long long>(st.spec.n_drafted),
                    static_cast<long long>(st.spec.n_accepted),
                    static_cast<long long>(st.spec.n_verifications));
    }
}

INSTANTIATE_TEST_SUITE_P(Sources, SpeculativeGenerate,
                         ::testing::Values(SourceCase{"ngram", SpecType::kNgram, "", 0.0f, false},
                                           SourceCase{"ngram_adaptive", SpecType::kNgram, "", 0.0f,
                                                      true},
                                           SourceCase{"draft_q4_0", SpecType::kDraftModel,
                                                      "stories260K-q4_0.gguf", 0.0f, true},
                                           SourceCase{"draft_q8_0_p_min", SpecType::kDraftModel,
                                                      "stories260K-q8_0.gguf", 0.5f, false},
                                           SourceCase{"skip", SpecType::kSkip, "", 0.0f, false}),
                         [](const auto &info) { return std::string(info.param.name); });

// The distribution is the target's: exact-match verification draws every
// token from the target's own sampler, so for each of 60 seeds the first 12
// sampled tokens are those of plain decoding (stronger than a statistical
// test of the first token's frequencies).
TEST(SpeculativeGenerate, SeededSamplingIsPlainDecodingsForEverySeed) {
    Node node(model_path("stories260K-f32.gguf"));
    SpecParams sp;
    sp.type = SpecType::kDraftModel;
    sp.draft_model = model_path("stories260K-q8_0.gguf");
    sp.adaptive = false;
    sp.draft_max = 4;
    const std::unique_ptr<DraftSource> draft = make_draft_source(sp, node.path, node.tok, node.cfg);
    int64_t accepted = 0;
    for (uint32_t seed = 1; seed <= 60; ++seed) {
        GenerateOptions go;
        go.n_predict = 12;
        go.ignore_eos = true;
        go.sampling.temperature = 1.0f;
        go.sampling.top_k = 0;
        go.sampling.top_p = 1.0f;
        go.sampling.min_p = 0.0f;
        go.sampling.seed = seed;
        SCOPED_TRACE("seed " + std::to_string(seed));
        accepted +=
            expect_plain_text(node, "Once upon a time", go, draft.get(), sp).spec.n_accepted;
    }
    EXPECT_GT(accepted, 60);  // the drafts were verified, not skipped
}

TEST(SpeculativeGenerate, RejectedDraftsLeaveNoKvBehind) {
    // a draft that is always wrong: every verification rejects all of it
    class Wrong final : public DraftSource {
      public:
        std::vector<int32_t> draft(int32_t, const std::vector<int32_t> &h, int32_t n) override {
            return std::vector<int32_t>(static_cast<size_t>(n), h.back() == 3 ? 4 : 3);
        }
    } wrong;
    Node node(model_path("stories260K-f32.gguf"));
    GenerateOptions go;
    go.n_predict = 40;
    go.ignore_eos = true;
    go.sampling.temperature = 0;
    SpecParams sp;
    sp.type = SpecType::kNgram;
    sp.adaptive = false;
    sp.draft_max = 5;
    const GenerateStats st = expect_plain_text(node, "Once upon a time", go, &wrong, sp);
    EXPECT_GT(st.spec.n_drafted, 100);
    EXPECT_EQ(st.spec.n_accepted, 0);
}

TEST(SpeculativeGenerate, SynthLlamaTargetWithASmallerSameVocabularyDraft) {
    TempDir dir;
    const std::string target = synth_tiny(dir, "llama-3.2-1b", "Q4_K_M", 4);
    const std::string small = synth_tiny(dir, "llama-3.2-1b", "Q8_0", 1);
    Node node(target);
    SpecParams sp;
    sp.type = SpecType::kDraftModel;
    sp.draft_model = small;
    sp.adaptive = false;
    sp.draft_max = 4;
    const std::unique_ptr<DraftSource> draft = make_draft_source(sp, node.path, node.tok, node.cfg);
    GenerateOptions go;
    go.n_predict = 48;
    go.ignore_eos = true;
    go.sampling.temperature = 0;
    EXPECT_GT(
        expect_plain_text(node, "The capital of France is", go, draft.get(), sp).spec.n_drafted, 0);
}

TEST(ModelDraft, ADraftModelWithAnotherVocabularyIsRefused) {
    TempDir dir;
    const std::string qwen = synth_tiny(dir, "qwen2.5-0.5b", "Q8_0", 1);
    Node node(model_path("stories260K-f32.gguf"));
    SpecParams sp;
    sp.type = SpecType::kDraftModel;
    sp.draft_model = qwen;
    try {
        make_draft_source(sp, node.path, node.tok, node.cfg);
        ADD_FAILURE() << "a draft model with another vocabulary was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("cannot draft for this model"), std::string::npos)
            << e.what();
    }
}

std::vector<float> read_f32(const std::string &path, const GgufTensor &t) {
    EXPECT_EQ(t.meta->type, GGML_TYPE_F32) << t.name;
    std::vector<float> v(t.nbytes / sizeof(float));
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(t.offset));
    in.read(reinterpret_cast<char *>(v.data()), static_cast<std::streamsize>(t.nbytes));
    EXPECT_TRUE(in.good());
    return v;
}

// The early exit of --spec-type skip: a stage of blocks [0, 2) with the LM
// head gives the output norm and LM head applied to block 1's hidden state,
// computed here from the file's f32 weights (RMSNorm, then the head's rows).
TEST(EarlyExit, LogitsAreTheHeadAppliedToTheLastBlocksHiddenState) {
    const std::string path = model_path("stories260K-f32.gguf");
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    StageConfig cfg;
    cfg.range = {0, 2};
    cfg.n_ctx = 64;
    cfg.n_threads = 1;
    Stage body(file, hp, cfg);
    cfg.load.early_exit_head = true;
    Stage exit(file, hp, cfg);
    ASSERT_FALSE(body.is_last());
    ASSERT_TRUE(exit.is_last());

    const std::vector<int32_t> tokens = {1, 400, 30, 50, 7};
    const auto n = static_cast<uint32_t>(tokens.size());
    std::vector<int32_t> pos(n), seq(n, 0);
    std::iota(pos.begin(), pos.end(), 0);
    const int32_t last_row = static_cast<int32_t>(n - 1);
    Ubatch ub;
    ub.n_tokens = n;
    ub.tokens = tokens.data();
    ub.pos = pos.data();
    ub.seq_id = seq.data();
    const float *hidden_all = body.forward(ub);
    const std::vector<float> h(hidden_all + static_cast<size_t>(last_row) * hp.n_embd,
                               hidden_all + static_cast<size_t>(n) * hp.n_embd);
    ub.out_ids = &last_row;
    ub.n_outputs = 1;
    const float *logits = exit.forward(ub);

    const std::vector<float> norm = read_f32(path, *file->find("output_norm.weight"));
    const GgufTensor *head = file->find("output.weight");
    const std::vector<float> w = read_f32(path, head ? *head : *file->find("token_embd.weight"));
    double ss = 0;
    for (float x : h)
        ss += static_cast<double>(x) * x;
    const double scale = 1.0 / std::sqrt(ss / hp.n_embd + hp.rms_eps);
    double max_diff = 0, max_abs = 0;
    for (uint32_t v = 0; v < hp.n_vocab; ++v) {
        double dot = 0;
        for (uint32_t e = 0; e < hp.n_embd; ++e)
            dot += h[e] * scale * norm[e] * w[static_cast<size_t>(v) * hp.n_embd + e];
        max_diff = std::max(max_diff, std::abs(dot - logits[v]));
        max_abs = std::max(max_abs, std::abs(dot));
    }
    EXPECT_GT(max_abs, 0.1);  // not a head of zeros
    EXPECT_LT(max_diff, 1e-3 * max_abs) << "largest |logit| " << max_abs;
}

TEST(ModelDraft, ASkipDraftOfTheWholeModelIsRefused) {
    Node node(model_path("stories260K-f32.gguf"));
    SpecParams sp;
    sp.type = SpecType::kSkip;
    sp.draft_layers = 5;  // all of stories260K's blocks
    try {
        make_draft_source(sp, node.path, node.tok, node.cfg);
        ADD_FAILURE() << "a skip draft of every block was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("--draft-layers 5"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace colony::test
