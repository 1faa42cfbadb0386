// Text generation on a single stage that holds the whole model (a cluster of
// one): prefill the prompt in ubatches, then decode token by token.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/kv_window.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"

namespace colony {

class DraftSource;
class Stage;
class Tokenizer;

struct GenerateOptions {
    int32_t n_predict =
        128;  // tokens to generate at most (< 0: until end of generation or context)
    SamplingParams sampling;
    bool stop_at_eog = true;
    /// llama.cpp's --ignore-eos: end-of-generation tokens are never sampled
    /// (their logits are -inf), so generation runs to n_predict.
    bool ignore_eos = false;
    int32_t seq_id = 0;
    /// Sliding window with attention sinks (kv_window.h); off by default.
    /// The prompt must fit in window - 1 positions.
    KvWindow kv_window;
    /// Speculative decoding (speculative.h): drafts from `draft` (owned by
    /// the caller; null: plain decoding), verified in one forward each, as
    /// many as spec.draft_max and the measured acceptance allow. The text is
    /// that of plain decoding.
    DraftSource *draft = nullptr;
    SpecParams spec;
};

/// Timings of one generation, microseconds.
struct GenerateStats {
    int32_t n_prompt = 0;
    int32_t n_generated = 0;
    int64_t prefill_us = 0;    // prompt processing until its logits are ready
    int64_t ttft_us = 0;       // start until the first generated token is sampled
    int64_t decode_us = 0;     // from the first sampled token to the last
    std::string stop_reason;   // "eog", "length" or "cancelled"
    int32_t n_kv_shifts = 0;   // context shifts made by the KV window
    uint32_t kv_used_max = 0;  // most KV cells the sequence held at once
    SpecStats spec;            // drafts verified and accepted

    double prefill_tps() const { return prefill_us > 0 ? n_prompt * 1e6 / prefill_us : 0.0; }
    /// Decode speed over the tokens after the first (each needs one forward).
    double decode_tps() const {
        return decode_us > 0 && n_generated > 1 ? (n_generated - 1) * 1e6 / decode_us : 0.0;
    }
};

/// Generates from `prompt` (token ids) on `stage`, which must be first and
/// last. Calls on_token(token id, text that became complete) for each
/// generated token; returning false stops generation ("cancelled"). Errors
/// from the stage propagate (context overflow is kOutOfRange).
GenerateStats generate(Stage &stage, const Tokenizer &tok, const std::vector<int32_t> &prompt,
                       const GenerateOptions &opts,
                       const std::function<bool(int32_t, const std::string &)> &on_token);

}  // namespace colony
