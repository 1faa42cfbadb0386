// Continuous batching: which tokens of which sequences go into the next
// ubatch. Every running sequence that has a sampled token to feed contributes
// that one decode token; the rest of the budget goes to prompt (prefill)
// chunks, sequences in admission order. A sequence's logits are wanted only
// for its decode token and for the last token of its prompt.
//
// Layout follows llama.cpp's server (tools/server/server-context.cpp,
// update_slots: decode tokens of generating slots first, then prompt tokens
// of slots in prompt processing, up to n_batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace colony {

/// What the builder needs to know about one running sequence.
struct BatchSeqView {
    int32_t seq = 0;                               // sequence id (KV cache seq, < n_seq_max)
    const std::vector<int32_t> *prompt = nullptr;  // its prompt token ids
    uint32_t n_prompt_done = 0;                    // prompt tokens already in the KV cache
    int32_t next_pos = 0;                          // position of the next token fed
    int32_t pending_token = -1;                    // sampled token to feed (decode), or -1
    /// Speculative decoding: tokens drafted to follow pending_token, fed in
    /// the same ubatch behind it, each an output (null or empty: none).
    const std::vector<int32_t> *drafts = nullptr;
    bool all_outputs = false;  // an embedding: every prompt row is an output (pooled)
};

/// One planned ubatch. tokens/pos/seq_id have one entry per row; out_ids
/// lists the rows whose logits (or, for an embedding, hidden states) are
/// wanted (increasing); out_seq_index the index (into the views passed to
/// build_ubatch) of each sequence that awaits an answer to this ubatch: one
/// per decode row and per finished prompt. n_prompt_taken[i] is how many
/// prompt tokens of view i are in this ubatch, n_draft_taken[i] how many of
/// its drafts.
struct UbatchPlan {
    std::vector<int32_t> tokens;
    std::vector<int32_t> pos;
    std::vector<int32_t> seq_id;
    std::vector<int32_t> out_ids;
    std::vector<size_t> out_seq_index;
    std::vector<uint32_t> n_prompt_taken;
    std::vector<uint32_t> n_draft_taken;
    bool empty() const { return tokens.empty(); }
};

/// Plans the next ubatch of at most n_ubatch rows (n_ubatch >= 1). A view
/// with a pending token contributes one decode row (its prompt must be done);
/// a view with prompt tokens left contributes a chunk of them; a view with
/// neither contributes nothing. Decode rows come first so that generating
/// sequences advance every step even while a long prompt is prefilled, then
/// the drafts behind them (as many as fit), then prompt chunks.
UbatchPlan build_ubatch(const std::vector<BatchSeqView> &views, uint32_t n_ubatch);

}  // namespace colony
