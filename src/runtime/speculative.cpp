#include "runtime/speculative.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace colony {

namespace {
constexpr double kDecay = 0.95;  // weight of the acceptance seen so far, per verification
constexpr double kEma = 0.2;     // weight of a new timing
double ema(double old, double sample) {
    return old + kEma * (sample - old);
}
}  // namespace

const char *spec_type_name(SpecType t) {
    switch (t) {
        case SpecType::kNone:
            return "none";
        case SpecType::kNgram:
            return "ngram";
        case SpecType::kDraftModel:
            return "draft";
        case SpecType::kSkip:
            return "skip";
    }
    return "?";
}

SpecType parse_spec_type(const std::string &name) {
    if (name == "none")
        return SpecType::kNone;
    if (name == "ngram" || name == "ngram-simple")
        return SpecType::kNgram;
    if (name == "skip")
        return SpecType::kSkip;
    throw Error(ErrorCode::kInvalidArgument,
                "--spec-type must be none, ngram or skip (a draft model is chosen by "
                "-md/--model-draft), "
                "not '" +
                    name + "'");
}

void SpecParams::validate() const {
    auto bad = [](const std::string &what) { throw Error(ErrorCode::kInvalidArgument, what); };
    if (draft_max < 1 || draft_max > 256)
        bad("--draft-max must be in [1, 256]");
    if (draft_min < 0 || draft_min > draft_max)
        bad("--draft-min must be in [0, --draft-max]");
    if (!(p_min >= 0.0f && p_min <= 1.0f))
        bad("--draft-p-min must be in [0, 1]");
    if (ngram_n < 2 || ngram_n > 64)
        bad("--spec-ngram-size-n must be in [2, 64]");
    if (draft_layers < 0)
        bad("--draft-layers must be 0 (half the model) or more");
    if (draft_layers != 0 && type != SpecType::kSkip)
        bad("--draft-layers needs --spec-type skip");
    if (type == SpecType::kDraftModel && draft_model.empty())
        bad("speculative decoding with a draft model needs -md/--model-draft");
    if (type != SpecType::kDraftModel && !draft_model.empty())
        bad("-md/--model-draft and --spec-type " + std::string(spec_type_name(type)) +
            " exclude each other");
}

std::vector<int32_t> verify_drafts(const std::vector<int32_t> &drafts,
                                   const std::function<int32_t(size_t row)> &sample_row) {
    std::vector<int32_t> out;
    out.reserve(drafts.size() + 1);
    for (size_t row = 0; row <= drafts.size(); ++row) {
        const int32_t t = sample_row(row);
        out.push_back(t);
        if (row == drafts.size() || t != drafts[row])
            break;
    }
    return out;
}

double DraftLength::acceptance() const {
    return accepted_ / (accepted_ + rejected_);
}

double DraftLength::expected_rate(int32_t k) const {
    const double a = std::min(acceptance(), 0.999);
    const double tokens = (1.0 - std::pow(a, k + 1)) / (1.0 - a);
    const double ms = plain_ms_ + std::max(row_ms_, 0.0) * k + draft_ms_ * k;
    return tokens / ms;
}

int32_t DraftLength::next(int32_t cap) {
    cap = std::min(cap, params_.draft_max);
    const int32_t lo = std::max(1, params_.draft_min);
    if (cap < lo)
        return 0;
    if (!params_.adaptive)
        return cap;
    if (plain_ms_ <= 0)
        return 0;  // one plain decode first: the cost every draft is weighed against
    if (row_ms_ < 0)
        return cap;  // one verification: what each further row costs
    int32_t best = lo;
    for (int32_t k = lo + 1; k <= cap; ++k) {
        if (expected_rate(k) > expected_rate(best))
            best = k;
    }
    if (expected_rate(best) > 1.0 / plain_ms_)
        return best;
    return plain_run_ >= kProbeEvery ? best : 0;
}

void DraftLength::record(int32_t n_drafted, int32_t n_accepted, double target_ms, double draft_ms) {
    if (n_drafted <= 0) {
        plain_ms_ = plain_ms_ > 0 ? ema(plain_ms_, target_ms) : target_ms;
        ++plain_run_;
        return;
    }
    plain_run_ = 0;
    accepted_ = accepted_ * kDecay + n_accepted;
    rejected_ = rejected_ * kDecay + (n_accepted < n_drafted ? 1.0 : 0.0);
    if (plain_ms_ > 0) {
        const double row = std::max(0.0, (target_ms - plain_ms_) / n_drafted);
        row_ms_ = row_ms_ >= 0 ? ema(row_ms_, row) : row;
    }
    const double per_draft = draft_ms / n_drafted;
    draft_ms_ = draft_ms_ > 0 ? ema(draft_ms_, per_draft) : per_draft;
}

}  // namespace colony
