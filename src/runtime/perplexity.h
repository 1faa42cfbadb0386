// Perplexity and KL-divergence over a text, by llama-perplexity's method
// (tools/perplexity/perplexity.cpp in the pinned tree): the text's tokens are
// cut into chunks of n_ctx, each chunk is evaluated from an empty KV cache
// with its first token replaced by BOS when the model adds one, and the
// negative log-likelihood of each next token is summed over the second half
// of each chunk (positions n_ctx/2 .. n_ctx-2 predict the tokens after them),
// so every scored token has at least n_ctx/2 tokens of context.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/kv_window.h"
#include "runtime/logprob_file.h"
#include "runtime/perplexity_stats.h"

namespace colony {

class Stage;

/// Evaluates one chunk: `tokens` [n_ctx] as one sequence from position 0 on
/// an empty KV cache; fills `logits` with the rows of positions
/// [first, n_ctx) as [n_vocab * (n_ctx - first)]. Errors as the engine's.
using ChunkEvaluator = std::function<void(std::span<const int32_t> tokens, uint32_t first,
                                          std::vector<float> &logits)>;

/// A ChunkEvaluator on a Stage that holds the whole model (one node), in
/// ubatches of the stage's n_ubatch. The stage's context must hold n_ctx
/// tokens of sequence 0; the evaluator clears sequence 0 before each chunk.
ChunkEvaluator stage_chunk_evaluator(Stage &stage);

/// What happens to hidden states [n_embd * n_tokens] between two stages of
/// a chain (e.g. the wire type's rounding, pipeline/chain_evaluator.h); in
/// place. Empty: nothing.
using HiddenHop = std::function<void(std::vector<float> &hidden, uint32_t n_embd)>;

/// The same over a chain of stages that together hold the model (the first
/// embeds, the last has the head, ranges contiguous), each clearing
/// sequence 0 before a chunk, in ubatches of the first stage's n_ubatch;
/// hidden states pass through `hop` between stages. Errors:
/// Error(kInvalidArgument) for a chain that is empty, does not start with
/// the embedding or end with the head, or is not contiguous.
ChunkEvaluator stage_chain_chunk_evaluator(std::vector<Stage *> stages, HiddenHop hop);

struct PerplexityOptions {
    uint32_t n_ctx = 512;   // tokens per chunk (llama-perplexity -c)
    int32_t n_chunks = -1;  // chunks to evaluate, -1 = all the text holds
    bool add_bos = true;    // the model adds BOS: each chunk starts with it
    int32_t bos = 1;        // the BOS token id
    int32_t n_vocab = 0;    // logits per row
};

/// Progress after each chunk: its 1-based index, the chunks in the run, the
/// perplexity so far, and the seconds the chunk took.
struct ChunkReport {
    int32_t chunk = 0;
    int32_t n_chunk = 0;
    double ppl = 0;
    double seconds = 0;
};

struct PerplexityResult {
    double ppl = 0;
    double ppl_error = 0;  // standard error, as llama-perplexity's "+/-"
    size_t n_scored = 0;   // tokens whose likelihood was summed
    int32_t n_chunk = 0;
};

/// Chunks a perplexity run evaluates for a text of n_tokens:
/// min(n_chunks, n_tokens / n_ctx), or all of them for n_chunks = -1.
/// Error(kInvalidArgument) when n_ctx < 4 or the text has fewer than
/// 2 x n_ctx tokens (llama-perplexity's bound).
int32_t perplexity_chunks(size_t n_tokens, const PerplexityOptions &opts);

/// A chunk's tokens as evaluated: `text` [n_ctx] with the first replaced by
/// BOS when the model adds one (llama-perplexity's substitution).
std::vector<int32_t> chunk_tokens(std::span<const int32_t> text, const PerplexityOptions &opts);

/// The header of the base file a perplexity run of `tokens` writes: n_ctx,
/// n_vocab, the chunks it evaluates and their tokens. Errors:
/// perplexity_chunks'.
LogprobHeader perplexity_base_header(const std::vector<int32_t> &tokens,
                                     const PerplexityOptions &opts);

/// Perplexity of `tokens` (the whole text, tokenized with BOS as the model
/// adds it). With `base` set, also writes each chunk's log-probabilities
/// (the base file of a later KL-divergence run). Errors: perplexity_chunks'.
PerplexityResult perplexity(const std::vector<int32_t> &tokens, const PerplexityOptions &opts,
                            const ChunkEvaluator &eval, LogprobWriter *base,
                            const std::function<void(const ChunkReport &)> &on_chunk);

struct KldResult {
    KldSums sums;
    std::vector<float> kld_values;     // per scored token, in text order
    std::vector<float> p_diff_values;  // per scored token: Q(token) - base(token)
};

/// KL-divergence of the evaluated model against `base` (a file of
/// llama-perplexity --kl-divergence-base or colony perplexity
/// --kl-divergence-base), over the base's own tokens and chunks (opts.n_ctx
/// and n_chunks are ignored; n_vocab must match the base's:
/// Error(kInvalidArgument) otherwise). on_chunk gets the running sums.
KldResult kl_divergence(LogprobReader &base, const PerplexityOptions &opts,
                        const ChunkEvaluator &eval,
                        const std::function<void(int32_t chunk, const KldSums &)> &on_chunk);

/// Streaming evaluation: one long text as one sequence, in ubatches of
/// n_batch tokens with every row's logits, through a bounded KV cache (what
/// windows change). Without a window the run stops where the stage's
/// context is full.
struct StreamOptions {
    size_t n_tokens = 4096;  // tokens of the text to stream (fewer if the text is shorter)
    uint32_t n_batch = 32;   // tokens per forward pass
    uint32_t block = 512;    // report the perplexity of each block of this many scored tokens
    KvWindow window;         // off: the cache grows until the context is full
};

struct StreamResult {
    std::vector<double> block_ppl;  // per complete block of scored tokens
    double ppl = 0;                 // over every scored token
    size_t n_scored = 0;
    int32_t n_shifts = 0;       // context shifts made by the window
    uint32_t kv_used_max = 0;   // most cells the sequence held
    bool context_full = false;  // stopped early: no window and no free position left
};

/// Streams `tokens` (starting with BOS when the model adds it) through
/// `stage` (the whole model, sequence 0, cleared first), scoring each token
/// after the first by the logits of the one before it. The window is
/// applied before each ubatch as generation applies it (kv_window.h).
/// on_block gets each block's 1-based index and perplexity. Errors: the
/// window's validate(); the engine's.
StreamResult streaming_perplexity(Stage &stage, const std::vector<int32_t> &tokens,
                                  const StreamOptions &opts,
                                  const std::function<void(size_t block, double ppl)> &on_block);

}  // namespace colony
