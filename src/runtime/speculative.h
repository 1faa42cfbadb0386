// Speculative decoding: a cheap source proposes the next few tokens (drafts),
// the target model computes the logits of all of them in one forward, and
// the tokens it would have produced anyway are kept (Leviathan et al. 2023,
// "Fast Inference from Transformers via Speculative Decoding"; Chen et al.
// 2023; llama.cpp's common/speculative.cpp and its option names).
//
// Verification here samples the target's rows in order with the request's
// own sampler and keeps a draft while it equals the token drawn (exact-match
// verification). The draws and the history the sampler sees are those of
// plain decoding, so greedy and seeded text are unchanged for every draft
// source, the n-gram one included, which has no distribution for the
// rejection-sampling rule of Leviathan et al. The price: at temperature > 0
// fewer drafts are accepted than with that rule.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace colony {

/// Where drafts come from (llama.cpp's --spec-type and -md/--model-draft).
enum class SpecType : uint8_t {
    kNone = 0,
    kNgram,       // prompt lookup: the tokens that followed the last n-gram before
    kDraftModel,  // a small model with the target's vocabulary, greedy
    kSkip,        // self-speculation: the target's first blocks and its LM head (early exit)
};

/// "none", "ngram", "draft", "skip".
const char *spec_type_name(SpecType t);

/// Parses --spec-type: "none", "ngram" (also llama.cpp's "ngram-simple"),
/// "skip".
/// "draft" is chosen by -md/--model-draft. Error(kInvalidArgument) otherwise.
SpecType parse_spec_type(const std::string &name);

/// Options of speculative decoding, with llama.cpp's names and defaults
/// where it has them (common/common.h, common_params_speculative).
struct SpecParams {
    SpecType type = SpecType::kNone;
    std::string draft_model;   // -md/--model-draft: GGUF path (type kDraftModel)
    int32_t draft_max = 16;    // --draft-max: drafts per verification at most
    int32_t draft_min = 0;     // --draft-min: fewer drafts are not verified
    float p_min = 0.0f;        // --draft-p-min: the draft model stops below this top probability
    int32_t ngram_n = 4;       // --spec-ngram-size-n: the longest n-gram looked up (down to 2)
    int32_t draft_layers = 0;  // --draft-layers (skip): blocks the draft runs; 0 = half the model
    bool adaptive = true;      // the length follows the measured acceptance and costs

    bool enabled() const { return type != SpecType::kNone; }
    /// Error(kInvalidArgument) naming the option that is out of range.
    void validate() const;
};

/// Counts of one generation (llama-server's timings.draft_n and
/// draft_n_accepted).
struct SpecStats {
    int64_t n_verifications = 0;  // target forwards that carried drafts
    int64_t n_drafted = 0;        // drafts verified
    int64_t n_accepted = 0;       // drafts kept
    double acceptance() const {
        return n_drafted > 0 ? static_cast<double>(n_accepted) / static_cast<double>(n_drafted)
                             : 0.0;
    }
};

/// Exact-match verification. sample_row(i) samples row i of the target's
/// logits (the continuation after the fed token i; row i follows draft i-1)
/// with the request's sampler. Rows are sampled in order, stopping after the
/// first token that differs from its draft or after row drafts.size().
/// Returns the tokens drawn: the accepted drafts, then the next token
/// (size = accepted + 1).
std::vector<int32_t> verify_drafts(const std::vector<int32_t> &drafts,
                                   const std::function<int32_t(size_t row)> &sample_row);

/// The number of drafts to verify next, from the measured acceptance and the
/// measured costs: with per-draft acceptance a, k drafts give
/// E(k) = (1 - a^(k+1)) / (1 - a) tokens per verification (Leviathan et al.
/// 2023, eq. 1) for a target forward of k+1 rows plus k draft steps; the k
/// of the highest E(k) / cost wins, and 0 (plain decoding) when none beats
/// one token per one-row forward. While off it tries a short draft every
/// kProbeEvery plain steps, so that a text that turns repetitive is noticed.
class DraftLength {
  public:
    static constexpr int32_t kProbeEvery = 16;

    DraftLength() = default;
    explicit DraftLength(const SpecParams &params) : params_(params) {}

    /// Drafts to ask for now, at most `cap` (room in the context or ubatch);
    /// 0: decode one token plainly.
    int32_t next(int32_t cap);
    /// After a forward of the target with n_drafted drafts (0: a plain
    /// decode) of which n_accepted were kept; target_ms: that forward,
    /// draft_ms: making the drafts.
    void record(int32_t n_drafted, int32_t n_accepted, double target_ms, double draft_ms);
    /// The per-draft acceptance estimate in [0, 1].
    double acceptance() const;

  private:
    double expected_rate(int32_t k) const;

    SpecParams params_;
    // decayed counts of accepted drafts and of rejections (prior: a = 0.5)
    double accepted_ = 1.0, rejected_ = 1.0;
    double plain_ms_ = 0;    // a one-row forward (0: not measured)
    double row_ms_ = -1;     // each further row of a forward (< 0: not measured)
    double draft_ms_ = 0;    // making one draft
    int32_t plain_run_ = 0;  // plain steps since the last draft
};

}  // namespace colony
