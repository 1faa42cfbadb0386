// Token sampling with libllama's sampler chain (src/llama-sampler.cpp), applied
// to logits that colony computed: penalties -> top-k -> top-p -> min-p ->
// temperature -> seeded draw, or greedy (arg max) when temperature <= 0.
//
// The draws of a seed are llama.cpp's (one mt19937 stream per sequence, one
// uniform per token: llama_sampler_dist), so a seed gives llama.cpp's text.
// A sampler rebuilt for a sequence that already drew n tokens (a replaced
// last stage, DESIGN.md decision 10) skips n draws (skip_draws) and rebuilds
// its penalties by accept()ing the history: it then draws what the lost one
// would have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace colony {

struct SamplingParams {
    float temperature = 0.8f;        // <= 0: greedy
    int32_t top_k = 40;              // <= 0: off
    float top_p = 0.95f;             // >= 1: off
    float min_p = 0.05f;             // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off
    float frequency_penalty = 0.0f;  // 0: off
    float presence_penalty = 0.0f;   // 0: off
    int32_t penalty_last_n = 64;     // tokens the penalties look back over
    uint32_t seed = 0xFFFFFFFF;      // LLAMA_DEFAULT_SEED: random
};

/// A grammar that constrains sampling (libllama's llama_sampler_init_grammar
/// and _grammar_lazy_patterns; the rules of the pinned tree's
/// common/sampling.cpp, common_sampler_init). The API layer builds it from a
/// JSON schema, a GBNF text or a chat template's tool-call format.
struct GrammarConstraint {
    std::string grammar;                        // GBNF with a rule "root"; empty: none
    bool lazy = false;                          // inactive until a trigger matches
    std::vector<std::string> trigger_patterns;  // regexes over the generated text (lazy)
    std::vector<int32_t> trigger_tokens;        // tokens that activate it (lazy)
    std::vector<int32_t> prefill_tokens;        // accepted at creation: the part of the
                                                // generation prompt the grammar expects
    bool empty() const { return grammar.empty(); }
};

/// How an embedding pools its tokens' final hidden states (llama.cpp's
/// llama_pooling_type values; the result is L2-normalized).
enum class Pooling : uint8_t { kNone = 0, kMean = 1, kCls = 2, kLast = 3 };

/// What a sequence asks of the sampling stage beyond SamplingParams.
struct SequenceOptions {
    GrammarConstraint constraint;
    Pooling pooling = Pooling::kNone;  // not kNone: an embedding, nothing is sampled
    int32_t n_probs = 0;   // > 0: report the sampled token's logprob and the n_probs most
                           // likely tokens (OpenAI's top_logprobs, at most kMaxTopLogprobs)
    int32_t n_prompt = 0;  // positions [0, n_prompt) are the prompt: not fed to the grammar
    bool empty() const { return constraint.empty() && n_probs == 0 && pooling == Pooling::kNone; }
};

/// OpenAI's limit on top_logprobs.
constexpr int32_t kMaxTopLogprobs = 20;

/// A token with its log-probability (natural log) under the model's
/// distribution: log_softmax of the raw logits, before penalties, temperature
/// and truncation (llama-server's default, post_sampling_probs = false).
struct TokenLogprob {
    int32_t token = 0;
    float logprob = 0.0f;
    friend bool operator==(const TokenLogprob &, const TokenLogprob &) = default;
};

/// One sampled token; logprob and top only when SequenceOptions::n_probs > 0.
struct SampledToken {
    int32_t token = 0;
    bool has_logprob = false;
    float logprob = 0.0f;
    std::vector<TokenLogprob> top;  // most likely first, n_probs entries
};

/// Fills `out` with the log-probability of `token` and the n_top most likely
/// tokens of logits F32 [n_vocab] (ties: lower id first).
void compute_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top,
                      SampledToken &out);

/// A concrete seed for `seed`: itself, or a random one for
/// LLAMA_DEFAULT_SEED (0xFFFFFFFF), so that a request can be replayed.
uint32_t resolve_seed(uint32_t seed);

/// Throws Error(kInvalidArgument) naming the field when a parameter is out of
/// range (top_p or min_p outside [0, 1], repeat_penalty <= 0).
void validate_sampling(const SamplingParams &params);

class Sampler {
  public:
    /// Errors: kInvalidArgument for out-of-range parameters (negative
    /// temperature is allowed and means greedy; top_p/min_p outside [0,1]),
    /// for a grammar libllama cannot parse, or a grammar without `vocab`.
    Sampler(const SamplingParams &params, int32_t n_vocab, const SequenceOptions &options = {},
            const llama_vocab *vocab = nullptr);
    ~Sampler();
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;

    /// Picks a token from logits F32 [n_vocab] and records it for penalties
    /// and the grammar. With a grammar, tokens it forbids are never picked;
    /// Error(kInvalidArgument) when it allows none.
    int32_t sample(const float *logits);
    /// sample() with the logprobs SequenceOptions::n_probs asks for.
    SampledToken sample_full(const float *logits);
    /// Records a token that was not sampled (the prompt), for penalties.
    void accept(int32_t token);
    /// Records a generated token that another sampler drew (a replay): for
    /// penalties and the grammar.
    void accept_generated(int32_t token);
    bool has_grammar() const { return grammar_ != nullptr; }
    /// Advances the random stream by n draws, as if n tokens had been
    /// sampled (llama_sampler_dist draws exactly one uniform per apply, also
    /// for a single candidate). No effect when greedy.
    void skip_draws(uint32_t n);

  private:
    /// The token sample() picks, before it is recorded anywhere.
    int32_t pick(const float *logits);
    void accept_grammar(int32_t token);
    /// Whether the grammar allows `token` now (it would not set its logit to
    /// -inf): libllama's grammar aborts when it accepts an end-of-generation
    /// token before it is complete (llama_grammar_accept_impl).
    bool grammar_allows(int32_t token);

    llama_sampler *chain_ = nullptr;    // penalties .. temperature (greedy: .. greedy)
    llama_sampler *dist_ = nullptr;     // the seeded draw (null: greedy)
    llama_sampler *grammar_ = nullptr;  // applied first (null: none)
    // A token the grammar refused was accepted: libllama's grammar is left
    // with no stack and asserts when applied again, so pick() refuses instead.
    bool grammar_failed_ = false;
    const llama_vocab *vocab_ = nullptr;  // for end-of-generation tokens (grammar only)
    int32_t n_vocab_;
    int32_t n_probs_ = 0;
    std::vector<::llama_token_data> candidates_;
};

}  // namespace colony
