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

uint32_t draw_seed(uint32_t seed, int32_t pos) {
    uint64_t z = (static_cast<uint64_t>(seed) << 32 | static_cast<uint32_t>(pos)) +
                 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const auto out = static_cast<uint32_t>(z);
    return out == LLAMA_DEFAULT_SEED ? out - 1 : out;
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
        greedy_ = false;  // the draw: sample()
    }
    seed_ = resolve_seed(p.seed);
    candidates_.resize(static_cast<size_t>(n_vocab));
}

Sampler::~Sampler() {
    if (chain_)
        llama_sampler_free(chain_);
}

int32_t Sampler::sample(const float *logits, int32_t pos) {
    for (int32_t i = 0; i < n_vocab_; ++i)
        candidates_[i] = llama_token_data{i, logits[i], 0.0f};
    llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
    llama_sampler_apply(chain_, &arr);
    if (!greedy_) {
        llama_sampler *dist = llama_sampler_init_dist(draw_seed(seed_, pos));
        llama_sampler_apply(dist, &arr);
        llama_sampler_free(dist);
    }
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

}  // namespace colony
