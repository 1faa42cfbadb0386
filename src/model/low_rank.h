// Low-rank factorization of a weight matrix by its truncated SVD, for
// `colony compress` (issue 12's layer compression).
//
// A ggml matrix W of ne {n_in, n_out} maps x [n_in] to y = W x [n_out]. With
// the SVD W = U S V^T, the rank-r factors are A = sqrt(S_r) V_r^T (r x n_in)
// and B = U_r sqrt(S_r) (n_out x r), so W ~= B A and y ~= B (A x): two
// mul_mats of r (n_in + n_out) weights instead of n_in n_out. The names follow
// llama.cpp's LoRA adapters (lora_a applied first, lora_b second). By
// Eckart-Young this is the best rank-r approximation in the Frobenius norm.
#pragma once

#include <cstdint>
#include <vector>

namespace colony {

/// The rank-r factors of one matrix, row-major as ggml stores them: `a` holds
/// r rows of n_in floats (ggml ne {n_in, r}), `b` holds n_out rows of r floats
/// (ggml ne {r, n_out}).
struct LowRankFactors {
    int64_t rank = 0;
    std::vector<float> a;
    std::vector<float> b;
    /// ||W - B A||_F / ||W||_F, from the singular values (0 for a zero W).
    double rel_error = 0;
};

/// Factors `w` (n_out rows of n_in floats, row-major) at rank `rank`, which
/// must be in [1, min(n_in, n_out)]. A matrix whose smaller side is at most
/// `exact_limit` gets Eigen's exact SVD (BDCSVD); a larger one the randomized
/// range finder with `power_iterations` power iterations and 10 oversamples
/// (Halko, Martinsson and Tropp 2011, algorithms 4.4 and 5.1), whose sketch is
/// seeded by `seed`, so a file compresses to the same bytes every time.
/// With `input_scale` (n_in positive floats, e.g. each input channel's RMS
/// activation from an importance matrix), W diag(s) is factorized and A is
/// scaled back by diag(1/s): the factors then minimize the error on inputs
/// of that scale, E||W x - B A x||^2 under a diagonal input covariance (the
/// activation-aware SVD of Yuan et al. 2023, ASVD, with alpha = 1), and
/// rel_error is measured in that weighted norm.
/// Throws Error(kInvalidArgument) on a rank out of range.
LowRankFactors factorize_low_rank(const float *w, int64_t n_in, int64_t n_out, int64_t rank,
                                  uint64_t seed, int power_iterations = 2,
                                  int64_t exact_limit = 1024, const float *input_scale = nullptr);

}  // namespace colony
