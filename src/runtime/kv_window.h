// A sliding KV window with attention sinks (StreamingLLM, Xiao et al. 2023,
// "Efficient Streaming Language Models with Attention Sinks"): a sequence
// keeps its first `sinks` positions for good and slides over the rest, so
// generation goes on past the window without running out of cells.
//
// The rule is llama.cpp's context shift (tools/completion/completion.cpp,
// --context-shift): before a token would be stored at position n_past with
// n_past + 1 >= window, the n_discard = (n_past - sinks) / 2 positions after
// the sinks are dropped and the later ones move down by n_discard, their
// keys re-rotated (Stage::seq_add). Dropping half at a time costs one
// K-shift per (window - sinks) / 2 tokens instead of one per token, and a
// window of N with S sinks gives exactly llama-completion's text with
// -c N --keep S-1 (its n_keep counts BOS besides --keep) --context-shift.
// The rule depends on positions alone, so every stage of a pipeline that
// applies it at the same position keeps the same cells.
#pragma once

#include <cstdint>
#include <optional>

namespace colony {

/// One context shift: drop positions [sinks, sinks + n_discard), then move
/// [sinks + n_discard, n_past) down by n_discard.
struct KvShift {
    int32_t p0 = 0;         // first dropped position (= sinks)
    int32_t n_discard = 0;  // positions dropped; the later ones move by -n_discard
    int32_t n_past = 0;     // positions held before the shift
    int32_t n_past_after() const { return n_past - n_discard; }
};

struct KvWindow {
    uint32_t window = 0;  // 0: off
    uint32_t sinks = 0;

    bool enabled() const { return window > 0; }
    /// Error(kInvalidArgument) when the window is larger than the context
    /// of a sequence (n_ctx_seq), sinks leave fewer than 2 positions to
    /// slide over (sinks + 2 > window), or sinks are set without a window.
    void validate(uint32_t n_ctx_seq) const;
    /// The shift to make before storing n_new positions from n_past, if
    /// any: when n_past + n_new >= window (llama-completion's test with
    /// n_new = the batch it is about to decode).
    std::optional<KvShift> shift_before(int32_t n_past, int32_t n_new = 1) const;
};

}  // namespace colony
