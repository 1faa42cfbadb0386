// The statistics of perplexity and KL-divergence runs, computed exactly as
// llama.cpp's llama-perplexity computes them (tools/perplexity/perplexity.cpp
// in the pinned tree: log_softmax, process_logits, kl_divergence), so that
// colony's figures and llama.cpp's can be put side by side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace colony {

/// log p(tok) under softmax(logits), with the token's logit and probability.
struct TokenLogProb {
    double log_prob = 0;  // natural log
    float logit = 0;
    float prob = 0;
};

/// log softmax of one row of logits [n_vocab] at `tok` (tok < n_vocab).
TokenLogProb token_log_prob(std::span<const float> logits, int32_t tok);

/// u16 values in one row of a log-probability file for a vocabulary of
/// n_vocab: 4 (two floats: scale, minimum log-probability) + n_vocab rounded
/// up to even (llama-perplexity's `nv`).
size_t logprob_row_size(int32_t n_vocab);

/// Writes the log-probabilities of one row of logits into `row`
/// [logprob_row_size(n_vocab)] in llama-perplexity's 16-bit form (the
/// maximum log-probability down to 16 below it, in 65535 steps; lower ones
/// are 0) and returns the negative log-likelihood of `tok`.
double quantize_log_probs(std::span<const float> logits, int32_t tok, std::span<uint16_t> row);

/// Sums over the evaluated tokens of a KL-divergence run: the current model
/// (Q) against the base model's saved log-probabilities.
struct KldSums {
    double sum_nll = 0, sum_nll2 = 0;            // -log Q(token)
    double sum_nll_base = 0, sum_nll_base2 = 0;  // -log base(token)
    double sum_nll_nll_base = 0;
    double sum_kld = 0, sum_kld2 = 0;                         // KL(base || Q) per token
    double sum_p_diff = 0, sum_p_diff2 = 0, sum_p_diff4 = 0;  // Q(token) - base(token)
    float max_p_diff = 0;
    size_t n_same_top = 0;  // argmax Q == argmax base
    size_t count = 0;

    /// Adds one token: `logits` [n_vocab] of Q, `base_row` the base's row in
    /// the 16-bit form, `tok` the text's next token. Returns (KL divergence,
    /// Q(tok) - base(tok)) of this token.
    std::pair<double, float> add(std::span<const float> logits, std::span<const uint16_t> base_row,
                                 int32_t tok);
};

/// Mean and its standard error of a quantity from its sum, sum of squares
/// and count (0 when count < 1; the error is 0 for count <= 10).
struct MeanError {
    double mean = 0;
    double error = 0;
};
MeanError mean_and_error(double sum, double sum2, size_t count);

/// Standard error of the mean of ln(perplexity) from the running sums
/// (llama-perplexity's "Final estimate ... +/-" uses this form).
double log_ppl_error(double nll, double nll2, size_t count);

/// The summary of a KL-divergence run as llama-perplexity prints it.
struct KldSummary {
    MeanError log_ppl, log_ppl_base;  // mean -log p of Q and of the base
    double ppl = 0, ppl_error = 0, ppl_base = 0, ppl_base_error = 0;
    double log_ppl_correlation = 0;  // of ln PPL(Q) and ln PPL(base)
    double log_ppl_ratio = 0, log_ppl_ratio_error = 0;
    double ppl_ratio = 0, ppl_ratio_error = 0;
    double ppl_diff = 0, ppl_diff_error = 0;
    MeanError kld;
    MeanError p_diff;  // mean Q(token) - base(token)
    double p_diff_rms = 0, p_diff_rms_error = 0;
    double same_top = 0, same_top_error = 0;  // fraction
};
KldSummary summarize(const KldSums &s);

/// Value at `fraction` of sorted `values` with linear interpolation
/// (llama-perplexity's percentile); values must not be empty.
float percentile(const std::vector<float> &sorted, float fraction);

}  // namespace colony
