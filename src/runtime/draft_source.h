// Draft sources for speculative decoding (runtime/speculative.h): n-gram
// prompt lookup (llama.cpp's common_ngram_simple_draft, common/ngram-map.h)
// and a small draft model with the target's vocabulary, run greedily on this
// device (llama.cpp's -md/--model-draft).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/speculative.h"
#include "runtime/stage.h"

namespace colony {

class Tokenizer;

class DraftSource {
  public:
    virtual ~DraftSource() = default;
    /// Up to n_max tokens that may follow `history` of sequence `seq` (< the
    /// n_seq_max it was made for): the prompt and every generated token, the
    /// last one included (the token about to be fed to the target). Fewer,
    /// or none, when the source has no guess.
    virtual std::vector<int32_t> draft(int32_t seq, const std::vector<int32_t> &history,
                                       int32_t n_max) = 0;
};

/// Prompt lookup: finds the latest earlier occurrence of the last n tokens
/// (n from ngram_n down to 2) and proposes the tokens that followed it, with
/// llama.cpp's common_ngram_simple_draft (at least n of them). No model, no
/// memory beyond the history.
class NgramDraft final : public DraftSource {
  public:
    explicit NgramDraft(int32_t ngram_n) : ngram_n_(ngram_n) {}
    std::vector<int32_t> draft(int32_t seq, const std::vector<int32_t> &history,
                               int32_t n_max) override;

  private:
    int32_t ngram_n_;
};

/// A draft model on this device: its own Stage (the whole model, or the
/// target's first blocks for self-speculation) and KV cache, cfg.n_seq_max
/// sequences. Each call keeps the KV of the longest
/// prefix the sequence shares with its previous call's tokens, prefills the
/// rest of `history`,
/// then decodes greedily up to n_max tokens, stopping early where its top
/// token's probability is below p_min.
class ModelDraft final : public DraftSource {
  public:
    /// Loads `path` with `cfg` (its range is set to the whole model).
    /// Error(kInvalidArgument) when its vocabulary is not the target's (the
    /// number of tokens, BOS, and every token's text must agree: llama.cpp's
    /// common_speculative_are_compatible asks much the same), errors of the
    /// GGUF file and of Stage otherwise.
    /// n_blocks > 0: only the model's first n_blocks blocks, then its output
    /// norm and LM head: an early exit (LayerSkip, Elhoushi et al. 2024,
    /// without its training; --spec-type skip with the target's own file).
    /// Error(kInvalidArgument) unless 0 < n_blocks < the model's blocks.
    ModelDraft(const std::string &path, const Tokenizer &target, StageConfig cfg, float p_min,
               uint32_t n_blocks = 0);
    ~ModelDraft() override;
    std::vector<int32_t> draft(int32_t seq, const std::vector<int32_t> &history,
                               int32_t n_max) override;

    const Stage &stage() const { return *stage_; }

  private:
    /// Feeds tokens of `seq` at positions cached_[seq].size().. and returns
    /// the logits of the last.
    const float *feed(int32_t seq, const int32_t *tokens, uint32_t n);

    std::unique_ptr<Stage> stage_;
    float p_min_;
    // per sequence: the tokens whose KV the draft stage holds, positions 0..
    std::vector<std::vector<int32_t>> cached_;
};

/// The draft source `params` asks for (null for SpecType::kNone). The draft
/// model gets `target_cfg`'s context, sequences, ubatch and threads; the
/// skip draft loads `target_path` (the target's GGUF) again, its first
/// params.draft_layers blocks (0: half of them) with the LM head: mapped
/// weights share the target's pages, repacked ones are copied once more.
std::unique_ptr<DraftSource> make_draft_source(const SpecParams &params,
                                               const std::string &target_path,
                                               const Tokenizer &target,
                                               const StageConfig &target_cfg);

}  // namespace colony
