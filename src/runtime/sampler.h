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

/// A concrete seed for `seed`: itself, or a random one for
/// LLAMA_DEFAULT_SEED (0xFFFFFFFF), so that a request can be replayed.
uint32_t resolve_seed(uint32_t seed);

/// Throws Error(kInvalidArgument) naming the field when a parameter is out of
/// range (top_p or min_p outside [0, 1], repeat_penalty <= 0).
void validate_sampling(const SamplingParams &params);

class Sampler {
  public:
    /// Errors: kInvalidArgument for out-of-range parameters (negative
    /// temperature is allowed and means greedy; top_p/min_p outside [0,1]).
    Sampler(const SamplingParams &params, int32_t n_vocab);
    ~Sampler();
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;

    /// Picks a token from logits F32 [n_vocab] and records it for penalties.
    int32_t sample(const float *logits);
    /// Records a token that was not sampled (the prompt), for penalties.
    void accept(int32_t token);
    /// Advances the random stream by n draws, as if n tokens had been
    /// sampled (llama_sampler_dist draws exactly one uniform per apply, also
    /// for a single candidate). No effect when greedy.
    void skip_draws(uint32_t n);

  private:
    llama_sampler *chain_ = nullptr;  // penalties .. temperature (greedy: .. greedy)
    llama_sampler *dist_ = nullptr;   // the seeded draw (null: greedy)
    int32_t n_vocab_;
    std::vector<::llama_token_data> candidates_;
};

}  // namespace colony
