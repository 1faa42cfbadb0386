// The Sampler's grammar and logprobs (runtime/sampler.h) on stories260K's
// vocabulary: a grammar forbids every other token, the generation prompt's
// prefill and a replay's accepted tokens advance it, and logprobs are the
// log-softmax of the logits.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "common/test_env.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony {
namespace {

std::vector<float> random_logits(int32_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 2.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v)
        x = d(rng);
    return v;
}

std::string text_of(const Tokenizer &tok, const std::vector<int32_t> &ids) {
    std::string s;
    for (int32_t t : ids)
        s += tok.piece(t);
    return s;
}

TEST(SamplerGrammar, OnlyTheGrammarsLanguageIsSampledAndThenEndOfText) {
    const Tokenizer tok(test::model_path("stories260K-f32.gguf"));
    SequenceOptions o;
    o.constraint.grammar = R"(root ::= "cat" | "dog")";
    for (uint32_t seed = 1; seed <= 20; ++seed) {
        SamplingParams p;
        p.temperature = 1.0f;
        p.seed = seed;
        Sampler s(p, tok.n_vocab(), o, tok.vocab());
        std::vector<int32_t> out;
        for (int i = 0; i < 8; ++i) {
            const std::vector<float> logits = random_logits(tok.n_vocab(), seed * 100 + i);
            const int32_t t = s.sample(logits.data());
            if (tok.is_eog(t))
                break;
            out.push_back(t);
        }
        const std::string text = text_of(tok, out);
        EXPECT_TRUE(text == "cat" || text == "dog") << "seed " << seed << ": " << text;
    }
}

TEST(SamplerGrammar, PrefillAndReplayedTokensAdvanceTheGrammar) {
    const Tokenizer tok(test::model_path("stories260K-f32.gguf"));
    SequenceOptions o;
    o.constraint.grammar = R"(root ::= " The cat sat")";  // SentencePiece: " The" is one piece
    o.constraint.prefill_tokens = tok.tokenize("The", false, false);
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    // the prefill consumed "The": what is sampled continues after it
    Sampler a(greedy, tok.n_vocab(), o, tok.vocab());
    std::vector<int32_t> out;
    for (int i = 0; i < 10; ++i) {
        const std::vector<float> logits = random_logits(tok.n_vocab(), 5 + i);
        const int32_t t = a.sample(logits.data());
        if (tok.is_eog(t))
            break;
        out.push_back(t);
    }
    EXPECT_EQ(text_of(tok, out), " cat sat");
    // a sampler rebuilt mid-answer (recovery) accepts the delivered tokens first
    Sampler b(greedy, tok.n_vocab(), o, tok.vocab());
    b.accept_generated(out[0]);
    const std::vector<float> logits = random_logits(tok.n_vocab(), 6);
    EXPECT_EQ(b.sample(logits.data()), out[1]);
    // a token outside the grammar cannot be replayed into it
    Sampler c(greedy, tok.n_vocab(), o, tok.vocab());
    EXPECT_THROW(c.accept_generated(tok.tokenize("dog", false, false)[0]), Error);
    // nor an end of generation before the grammar is complete: libllama's
    // grammar aborts on that (llama_grammar_accept_impl; found by
    // fuzz_stage_frames, tests/fuzz/regressions/stage_frames/crash-ada59ce...)
    Sampler d(greedy, tok.n_vocab(), o, tok.vocab());
    d.accept_generated(out[0]);
    EXPECT_THROW(d.accept_generated(llama_vocab_eos(tok.vocab())), Error);
    EXPECT_THROW(d.sample(logits.data()), Error);  // and the sequence cannot go on
    // once the grammar is complete, the end of generation fits
    Sampler e(greedy, tok.n_vocab(), o, tok.vocab());
    for (int32_t t : out)
        e.accept_generated(t);
    EXPECT_NO_THROW(e.accept_generated(llama_vocab_eos(tok.vocab())));
}

TEST(SamplerGrammar, BadGrammarsAndMissingVocabularyAreInvalidArguments) {
    const Tokenizer tok(test::model_path("stories260K-f32.gguf"));
    SequenceOptions o;
    o.constraint.grammar = "root ::= nothing";
    try {
        Sampler s(SamplingParams{}, tok.n_vocab(), o, tok.vocab());
        FAIL() << "an undefined rule was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
    o.constraint.grammar = R"(root ::= "a")";
    EXPECT_THROW(Sampler(SamplingParams{}, tok.n_vocab(), o, nullptr), Error);
    o.constraint.lazy = true;
    o.constraint.trigger_patterns = {"(unclosed"};  // a regex std::regex refuses
    EXPECT_THROW(Sampler(SamplingParams{}, tok.n_vocab(), o, tok.vocab()), Error);
}

TEST(SamplerLogprobs, AreTheLogSoftmaxOfTheLogitsWithTheTopOnesInOrder) {
    const int32_t n = 512;
    const std::vector<float> logits = random_logits(n, 3);
    SampledToken out;
    compute_logprobs(logits.data(), n, 17, 5, out);
    double z = 0;
    for (float l : logits)
        z += std::exp(double(l));
    EXPECT_NEAR(out.logprob, logits[17] - std::log(z), 1e-4);
    ASSERT_EQ(out.top.size(), 5u);
    const int32_t best =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(out.top[0].token, best);
    for (size_t i = 1; i < out.top.size(); ++i)
        EXPECT_GE(out.top[i - 1].logprob, out.top[i].logprob);
    // greedy sampling with logprobs: the sampled token is the top one
    SequenceOptions o;
    o.n_probs = 3;
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    Sampler s(greedy, n, o);
    const SampledToken t = s.sample_full(logits.data());
    EXPECT_EQ(t.token, best);
    EXPECT_TRUE(t.has_logprob);
    EXPECT_FLOAT_EQ(t.logprob, t.top[0].logprob);
}

}  // namespace
}  // namespace colony
