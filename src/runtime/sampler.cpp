#include "runtime/sampler.h"

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

Sampler::Sampler(const SamplingParams &p, int32_t n_vocab) : n_vocab_(n_vocab) {
    validate_sampling(p);
    if (n_vocab <= 0)
        throw Error(ErrorCode::kInvalidArgument, "empty vocabulary");
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
}

int32_t Sampler::sample(const float *logits) {
    for (int32_t i = 0; i < n_vocab_; ++i)
        candidates_[i] = llama_token_data{i, logits[i], 0.0f};
    llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
    llama_sampler_apply(chain_, &arr);
    if (dist_)
        llama_sampler_apply(dist_, &arr);
    if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size) {
        throw Error(ErrorCode::kInternal, "sampler selected no token");
    }
    const int32_t token = arr.data[arr.selected].id;
    llama_sampler_accept(chain_, token);
    return token;
}

void Sampler::accept(int32_t token) {
    llama_sampler_accept(chain_, token);
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
