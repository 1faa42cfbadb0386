// Token sampling with libllama's sampler chain (src/llama-sampler.cpp), applied
// to logits that colony computed: penalties -> top-k -> top-p -> min-p ->
// temperature -> seeded draw, or greedy (arg max) when temperature <= 0.
//
// The draw is a function of (seed, position): each sample gets libllama's
// dist sampler seeded with draw_seed(seed, pos), not one random stream per
// sequence. So a sampler rebuilt from the token history (a replaced last
// stage, DESIGN.md decision 10) draws the same tokens as the one it
// replaces; penalties are rebuilt by accept()ing the history.
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

/// The seed of the draw at position `pos` of a sequence sampled with `seed`:
/// splitmix64 (Steele et al., "Fast splittable pseudorandom number
/// generators", 2014) of (seed, pos), never LLAMA_DEFAULT_SEED.
uint32_t draw_seed(uint32_t seed, int32_t pos);

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

    /// Picks a token from logits F32 [n_vocab], the output of position `pos`
    /// (the token drawn goes to pos + 1), and records it for penalties.
    int32_t sample(const float *logits, int32_t pos);
    /// Records a token that was not sampled (the prompt), for penalties.
    void accept(int32_t token);

  private:
    llama_sampler *chain_ = nullptr;
    bool greedy_ = true;
    uint32_t seed_ = 0;  // resolved (never random once made)
    int32_t n_vocab_;
    std::vector<::llama_token_data> candidates_;
};

}  // namespace colony
