#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <random>
#include <string>

#include "llama.h"
#include "util/error.h"

namespace colony {

void validate_sampling(const SamplingParams &p) {
    if (p.top_p < 0.0f || p.top_p > 1.0f)
        throw Error(ErrorCode::kInvalidArgument, "top_p must be in [0, 1]");
    if (p.min_p < 0.0f || p.min_p > 1.0f)
        throw Error(ErrorCode::kInvalidArgument, "min_p must be in [0, 1]");
    if (p.repeat_penalty <= 0.0f)
        throw Error(ErrorCode::kInvalidArgument, "repeat_penalty must be > 0");
}

uint32_t resolve_seed(uint32_t seed) {
    if (seed != LLAMA_DEFAULT_SEED)
        return seed;
    std::random_device rd;
    const uint32_t s = rd();
    return s == LLAMA_DEFAULT_SEED ? s - 1 : s;
}

void compute_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top,
                      SampledToken &out) {
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; ++i)
        max = std::max(max, logits[i]);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i)
        sum += std::exp(static_cast<double>(logits[i] - max));
    const float log_z = max + static_cast<float>(std::log(sum));
    out.has_logprob = true;
    out.logprob = logits[token] - log_z;
    out.top.clear();
    n_top = std::clamp(n_top, 0, n_vocab);
    if (n_top == 0)
        return;
    // the n_top best in one pass (n_top <= kMaxTopLogprobs: a short sorted list)
    auto better = [logits](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    std::vector<int32_t> best;
    best.reserve(static_cast<size_t>(n_top) + 1);
    for (int32_t i = 0; i < n_vocab; ++i) {
        if (static_cast<int32_t>(best.size()) == n_top && !better(i, best.back()))
            continue;
        best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
        if (static_cast<int32_t>(best.size()) > n_top)
            best.pop_back();
    }
    for (int32_t id : best)
        out.top.push_back({id, logits[id] - log_z});
}

namespace {

/// libllama's grammar sampler for `c` (common/sampling.cpp's rules: lazy
/// grammars wait for a trigger; the prefill tokens are accepted at once).
llama_sampler *make_grammar(const GrammarConstraint &c, const llama_vocab *vocab) {
    if (!vocab)
        throw Error(ErrorCode::kInvalidArgument, "a grammar needs the model's vocabulary");
    llama_sampler *g = nullptr;
    try {
        if (c.lazy) {
            std::vector<const char *> patterns;
            for (const std::string &p : c.trigger_patterns)
                patterns.push_back(p.c_str());
            std::vector<llama_token> tokens(c.trigger_tokens.begin(), c.trigger_tokens.end());
            g = llama_sampler_init_grammar_lazy_patterns(vocab, c.grammar.c_str(), "root",
                                                         patterns.data(), patterns.size(),
                                                         tokens.data(), tokens.size());
        } else {
            g = llama_sampler_init_grammar(vocab, c.grammar.c_str(), "root");
        }
        if (!g)
            throw Error(ErrorCode::kInvalidArgument, "the grammar could not be parsed");
        if (!c.lazy) {
            for (int32_t t : c.prefill_tokens)
                llama_sampler_accept(g, t);
        }
    } catch (const Error &) {
        throw;
    } catch (const std::exception &e) {
        if (g)
            llama_sampler_free(g);
        throw Error(ErrorCode::kInvalidArgument, std::string("grammar: ") + e.what());
    }
    return g;
}

}  // namespace

Sampler::Sampler(const SamplingParams &p, int32_t n_vocab, const SequenceOptions &options,
                 const llama_vocab *vocab)
    : vocab_(vocab), n_vocab_(n_vocab), n_probs_(std::clamp(options.n_probs, 0, kMaxTopLogprobs)) {
    validate_sampling(p);
    if (n_vocab <= 0)
        throw Error(ErrorCode::kInvalidArgument, "empty vocabulary");
    if (!options.constraint.empty())
        grammar_ = make_grammar(options.constraint, vocab);
    chain_ = llama_sampler_chain_init(llama_sampler_chain_default_params());
    const bool penalties =
        p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    if (penalties) {
        llama_sampler_chain_add(
            chain_, llama_sampler_init_penalties(n_vocab, p.penalty_last_n, p.repeat_penalty,
                                                 p.frequency_penalty, p.presence_penalty));
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain_, llama_sampler_init_greedy());
    } else {
        if (p.top_k > 0)
            llama_sampler_chain_add(chain_, llama_sampler_init_top_k(p.top_k));
        if (p.top_p < 1.0f)
            llama_sampler_chain_add(chain_, llama_sampler_init_top_p(p.top_p, 1));
        if (p.min_p > 0.0f)
            llama_sampler_chain_add(chain_, llama_sampler_init_min_p(p.min_p, 1));
        llama_sampler_chain_add(chain_, llama_sampler_init_temp(p.temperature));
        dist_ = llama_sampler_init_dist(p.seed);  // applied after the chain, as its last link
    }
    candidates_.resize(static_cast<size_t>(n_vocab));
}

Sampler::~Sampler() {
    if (chain_)
        llama_sampler_free(chain_);
    if (dist_)
        llama_sampler_free(dist_);
    if (grammar_)
        llama_sampler_free(grammar_);
}

SampledToken Sampler::sample_full(const float *logits) {
    SampledToken out;
    out.token = sample(logits);
    if (n_probs_ > 0)
        compute_logprobs(logits, n_vocab_, out.token, n_probs_, out);
    return out;
}

int32_t Sampler::sample(const float *logits) {
    const int32_t token = pick(logits);
    llama_sampler_accept(chain_, token);
    accept_grammar(token);
    return token;
}

int32_t Sampler::pick(const float *logits) {
    if (grammar_failed_)
        throw Error(ErrorCode::kInvalidArgument,
                    "the grammar cannot go on: a token it does not allow was accepted");
    for (int32_t i = 0; i < n_vocab_; ++i)
        candidates_[i] = llama_token_data{i, logits[i], 0.0f};
    llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
    if (grammar_ && !dist_) {
        // greedy: the arg max, if the grammar allows it, is the arg max of
        // what the grammar allows; checking one token spares running the
        // grammar over the whole vocabulary (the common case under a JSON
        // schema or a tool call's name)
        llama_sampler_apply(chain_, &arr);
        if (arr.selected >= 0 && static_cast<size_t>(arr.selected) < arr.size) {
            llama_token_data one = arr.data[arr.selected];
            llama_token_data_array single{&one, 1, -1, false};
            llama_sampler_apply(grammar_, &single);
            if (one.logit != -INFINITY)
                return one.id;
        }
        for (int32_t i = 0; i < n_vocab_; ++i)
            candidates_[i] = llama_token_data{i, logits[i], 0.0f};
        arr = llama_token_data_array{candidates_.data(), candidates_.size(), -1, false};
    }
    if (grammar_) {
        // the grammar first, on every candidate: one draw per token whatever
        // it forbids, so a replay's skip_draws stays exact (llama-server
        // samples first and re-samples on a rejection, which costs a 2nd draw)
        llama_sampler_apply(grammar_, &arr);
        const bool any = std::any_of(arr.data, arr.data + arr.size, [](const llama_token_data &d) {
            return d.logit != -INFINITY;
        });
        if (!any)
            throw Error(ErrorCode::kInvalidArgument, "the grammar allows no token here");
    }
    llama_sampler_apply(chain_, &arr);
    if (dist_)
        llama_sampler_apply(dist_, &arr);
    if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size) {
        throw Error(ErrorCode::kInternal, "sampler selected no token");
    }
    return arr.data[arr.selected].id;
}

void Sampler::accept(int32_t token) {
    llama_sampler_accept(chain_, token);
}

void Sampler::accept_generated(int32_t token) {
    llama_sampler_accept(chain_, token);
    accept_grammar(token);
}

bool Sampler::grammar_allows(int32_t token) {
    llama_token_data one{token, 0.0f, 0.0f};
    llama_token_data_array arr{&one, 1, -1, false};
    llama_sampler_apply(grammar_, &arr);
    return one.logit != -INFINITY;
}

void Sampler::accept_grammar(int32_t token) {
    if (!grammar_)
        return;
    if (grammar_failed_)
        throw Error(ErrorCode::kInvalidArgument,
                    "the grammar cannot go on: a token it does not allow was accepted");
    if (vocab_ && token >= 0 && token < n_vocab_ && llama_vocab_is_eog(vocab_, token) &&
        !grammar_allows(token)) {
        grammar_failed_ = true;  // the sequence holds a token its grammar refused
        throw Error(ErrorCode::kInvalidArgument,
                    "token " + std::to_string(token) +
                        " ends the generation before the grammar is complete");
    }
    try {
        llama_sampler_accept(grammar_, token);
    } catch (const std::exception &e) {
        grammar_failed_ = true;  // libllama's grammar has no stack left (see pick)
        throw Error(ErrorCode::kInvalidArgument,
                    "token " + std::to_string(token) + " does not fit the grammar: " + e.what());
    }
}

void Sampler::skip_draws(uint32_t n) {
    if (!dist_)
        return;
    llama_token_data one{0, 0.0f, 0.0f};
    for (uint32_t i = 0; i < n; ++i) {
        llama_token_data_array arr{&one, 1, -1, false};
        llama_sampler_apply(dist_, &arr);
    }
}

}  // namespace colony
