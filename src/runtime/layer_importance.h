// Which transformer blocks a model can lose: each block is skipped in turn
// (model/layer_skip.h) and the KL-divergence of the model without it from the
// whole model is measured over a text by llama-perplexity's chunked method
// (runtime/perplexity.h). This is the "layer removal" measurement of ShortGPT
// (Men et al. 2024) with KL-divergence and perplexity as the metric instead
// of its Block Influence proxy: a block whose removal changes the output
// distribution least is the first to skip.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/layer_skip.h"
#include "runtime/perplexity.h"

namespace colony {

class Stage;

/// The effect of skipping one block (besides the run's own skip list).
struct BlockImportance {
    uint32_t block = 0;
    double ppl = 0, ppl_error = 0;  // PPL(Q) without the block
    double log_ppl_ratio = 0;       // mean ln(PPL(Q)/PPL(base))
    double kld = 0, kld_error = 0;  // mean KL(base || Q) per scored token
    double same_top = 0;            // fraction of tokens with argmax Q == argmax base
};

struct LayerImportanceResult {
    PerplexityResult base;                // the model with only the run's skip list
    std::vector<BlockImportance> blocks;  // ascending KLD: the least important first
};

/// Makes a chunk evaluator of the model with `skip` skipped; it stays valid
/// until the next call (one stage at a time keeps memory at one model's).
using SkipEvaluatorFactory = std::function<ChunkEvaluator(const LayerSkip &skip)>;

/// Ranks the blocks of a model with n_layer blocks. The base run evaluates
/// the model with `skip` (usually empty) and saves its log-probabilities to
/// `base_path` (llama-perplexity's --kl-divergence-base format, kept for the
/// caller); then each block not in `skip` is skipped in turn and compared
/// with the base over the same chunks. on_block gets each block's result as
/// it is measured. Errors: perplexity_chunks', the evaluators', and the base
/// file's (kIo).
LayerImportanceResult layer_importance(
    const std::vector<int32_t> &tokens, const PerplexityOptions &opts, uint32_t n_layer,
    const LayerSkip &skip, const std::string &base_path, const SkipEvaluatorFactory &make_eval,
    const std::function<void(const BlockImportance &)> &on_block);

/// Makes a stage of the model's blocks `range` with `skip` skipped; with
/// no_head a range that ends at the last block gives hidden states, not
/// logits (WeightLoadOptions::no_head). The stage must hold opts.n_ctx
/// tokens of sequence 0.
using StageFactory =
    std::function<std::unique_ptr<Stage>(LayerRange range, const LayerSkip &skip, bool no_head)>;

/// ShortGPT's Block Influence (Men et al. 2024, eq. 1) of each of n_layer
/// blocks over the chunks a perplexity run evaluates (every position):
/// BI_i = 1 - mean over tokens of cos(x_i, x_i+1), x_i the hidden state
/// entering block i. One pass through a chain of one-block stages (n_layer +
/// 1 stages: the first gives the embeddings alone), no base run: a cheap
/// proxy of what layer_importance measures. Returns [n_layer], each in
/// [0, 2]. Errors: perplexity_chunks', the stages'.
std::vector<double> block_influence(const std::vector<int32_t> &tokens,
                                    const PerplexityOptions &opts, uint32_t n_layer,
                                    const StageFactory &make_stage);

/// Spearman's rank correlation of two score lists of the same length n >= 2
/// (no ties expected: ties take the order of their index). 1 = the same
/// ranking, -1 = reversed.
double rank_correlation(const std::vector<double> &a, const std::vector<double> &b);

/// The blocks of `result` in the order to skip them (least important first),
/// as a --skip-layers prefix of `n` blocks joined to the run's own list.
LayerSkip least_important(const LayerImportanceResult &result, const LayerSkip &skip, size_t n);

}  // namespace colony
