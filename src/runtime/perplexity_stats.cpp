// The formulas follow llama.cpp's tools/perplexity/perplexity.cpp (pinned
// tree) line for line, float and double where it uses them, so that the
// figures agree to the printed digits.
#include "runtime/perplexity_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace colony {
namespace {

// Round to nearest (llama-perplexity's nearest_int, valid for |v| < 2^22).
int nearest_int(float v) {
    const float shifted = v + 12582912.f;
    int i;
    std::memcpy(&i, &shifted, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

float max_of(std::span<const float> logits, size_t *at = nullptr) {
    float m = logits[0];
    size_t im = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
        if (logits[i] > m) {
            m = logits[i];
            im = i;
        }
    }
    if (at)
        *at = im;
    return m;
}

double sum_exp_below(std::span<const float> logits, float max_logit) {
    double sum = 0;
    for (float l : logits)
        sum += std::exp(l - max_logit);
    return sum;
}

}  // namespace

TokenLogProb token_log_prob(std::span<const float> logits, int32_t tok) {
    const float max_logit = max_of(logits);
    const double sum_exp = sum_exp_below(logits, max_logit);
    const float l = logits[static_cast<size_t>(tok)];
    return {l - max_logit - std::log(sum_exp), l,
            std::exp(l - max_logit) / static_cast<float>(sum_exp)};
}

size_t logprob_row_size(int32_t n_vocab) {
    return 2 * ((static_cast<size_t>(n_vocab) + 1) / 2) + 4;
}

double quantize_log_probs(std::span<const float> logits, int32_t tok, std::span<uint16_t> row) {
    float max_logit = logits[0], min_logit = logits[0];
    for (size_t i = 1; i < logits.size(); ++i) {
        max_logit = std::max(max_logit, logits[i]);
        min_logit = std::min(min_logit, logits[i]);
    }
    min_logit = std::max(min_logit, max_logit - 16);
    const double sum_exp = sum_exp_below(logits, max_logit);
    const float log_sum_exp = static_cast<float>(std::log(sum_exp));
    const float min_log_prob = min_logit - max_logit - log_sum_exp;
    const float scale = (max_logit - min_logit) / 65535.f;
    std::memcpy(row.data(), &scale, sizeof(float));
    std::memcpy(row.data() + 2, &min_log_prob, sizeof(float));
    uint16_t *q = row.data() + 4;
    std::fill(q, row.data() + row.size(), uint16_t{0});
    if (scale != 0) {
        const float inv_scale = 1 / scale;
        for (size_t i = 0; i < logits.size(); ++i) {
            q[i] = logits[i] > min_logit
                       ? static_cast<uint16_t>(nearest_int(inv_scale * (logits[i] - min_logit)))
                       : 0;
        }
    }
    return max_logit + log_sum_exp - logits[static_cast<size_t>(tok)];
}

std::pair<double, float> KldSums::add(std::span<const float> logits,
                                      std::span<const uint16_t> base_row, int32_t tok) {
    size_t imax = 0;
    float max_logit = max_of(logits, &imax);
    const double sum_exp = sum_exp_below(logits, max_logit);
    const float log_sum_exp = static_cast<float>(std::log(sum_exp));
    float scale, min_log_prob;
    std::memcpy(&scale, base_row.data(), sizeof(float));
    std::memcpy(&min_log_prob, base_row.data() + 2, sizeof(float));
    const uint16_t *base = base_row.data() + 4;
    const auto t = static_cast<size_t>(tok);

    const float nll = max_logit + log_sum_exp - logits[t];
    sum_nll += nll;
    sum_nll2 += nll * nll;
    const float nll_base = -(scale * base[t] + min_log_prob);
    sum_nll_base += nll_base;
    sum_nll_base2 += nll_base * nll_base;
    sum_nll_nll_base += nll * nll_base;

    max_logit += log_sum_exp;
    double kld = 0;
    size_t imax_base = 0;
    float p_log_base_max = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        const float p_log_base = scale * base[i] + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if (p_log_base > -16.f)
            kld += std::exp(p_log_base) * (p_log_base - logits[i] + max_logit);
    }
    sum_kld += kld;
    sum_kld2 += kld * kld;
    ++count;
    if (imax == imax_base)
        ++n_same_top;

    const float p_diff = std::exp(-nll) - std::exp(-nll_base);
    sum_p_diff += p_diff;
    const double p_diff2 = static_cast<double>(p_diff) * p_diff;
    sum_p_diff2 += p_diff2;
    sum_p_diff4 += p_diff2 * p_diff2;
    max_p_diff = std::max(max_p_diff, std::fabs(p_diff));
    return {kld, p_diff};
}

MeanError mean_and_error(double sum, double sum2, size_t count) {
    if (count < 1)
        return {};
    const double f = sum / count;
    double df = sum2 / count - f * f;
    df = df > 0 && count > 10 ? std::sqrt(df / (count - 1)) : 0.;
    return {f, df};
}

double log_ppl_error(double nll, double nll2, size_t count) {
    if (count < 2)
        return 0;
    const double mean = nll / count;
    const double var = nll2 / count - mean * mean;
    return var > 0 ? std::sqrt(var / (count - 1)) : 0;
}

namespace {
double covariance(double suma, double sumb, double sumab, size_t count) {
    if (count < 10)
        return 0.0;
    return (sumab / count - (suma / count) * (sumb / count)) / (count - 1);
}
}  // namespace

KldSummary summarize(const KldSums &s) {
    KldSummary r;
    r.log_ppl = mean_and_error(s.sum_nll, s.sum_nll2, s.count);
    r.ppl = std::exp(r.log_ppl.mean);
    r.ppl_error = r.ppl * r.log_ppl.error;
    r.log_ppl_base = mean_and_error(s.sum_nll_base, s.sum_nll_base2, s.count);
    r.ppl_base = std::exp(r.log_ppl_base.mean);
    r.ppl_base_error = r.ppl_base * r.log_ppl_base.error;
    const double cov = covariance(s.sum_nll, s.sum_nll_base, s.sum_nll_nll_base, s.count);
    r.log_ppl_correlation = cov / (r.log_ppl.error * r.log_ppl_base.error);
    r.log_ppl_ratio = r.log_ppl.mean - r.log_ppl_base.mean;
    r.log_ppl_ratio_error = std::sqrt(r.log_ppl.error * r.log_ppl.error +
                                      r.log_ppl_base.error * r.log_ppl_base.error - 2.0 * cov);
    r.ppl_ratio = std::exp(r.log_ppl_ratio);
    r.ppl_ratio_error = r.ppl_ratio * r.log_ppl_ratio_error;
    const double ppl_cov = r.ppl * r.ppl_base * cov;
    r.ppl_diff = r.ppl - r.ppl_base;
    r.ppl_diff_error =
        std::sqrt(r.ppl_error * r.ppl_error + r.ppl_base_error * r.ppl_base_error - 2.0 * ppl_cov);
    r.kld = mean_and_error(s.sum_kld, s.sum_kld2, s.count);
    r.p_diff = mean_and_error(s.sum_p_diff, s.sum_p_diff2, s.count);
    const MeanError mse = mean_and_error(s.sum_p_diff2, s.sum_p_diff4, s.count);
    r.p_diff_rms = std::sqrt(mse.mean);
    r.p_diff_rms_error = r.p_diff_rms > 0 ? 0.5 / r.p_diff_rms * mse.error : 0;
    if (s.count > 0) {
        r.same_top = 1. * s.n_same_top / s.count;
        r.same_top_error =
            s.count > 1 ? std::sqrt(r.same_top * (1 - r.same_top) / (s.count - 1)) : 0;
    }
    return r;
}

float percentile(const std::vector<float> &sorted, float fraction) {
    if (fraction <= 0)
        return sorted.front();
    if (fraction >= 1)
        return sorted.back();
    float p = fraction * (sorted.size() - 1);
    const auto ip = static_cast<size_t>(p);
    p -= ip;
    return (1 - p) * sorted[ip] + p * sorted[std::min(ip + 1, sorted.size() - 1)];
}

}  // namespace colony
