// The last stage's samplers, one per sequence (DESIGN.md, decision 1: the
// last stage samples, so only token ids travel back). A sequence's sampler is
// created from the WireSampling of its first ubatch and fed every input token
// it has not seen yet (the prompt), so repetition penalties see the same
// history as in single-node generation (a replayed sequence's sampler also
// skips the WireSampling::n_drawn draws it made before, recovery); a sampled token is recorded by
// the sampler itself, and when it comes back as the next input it is not counted twice.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "net/wire.h"
#include "runtime/sampler.h"

namespace colony {

/// WireSampling <-> SamplingParams (same fields; a negative temperature,
/// which SamplingParams allows, is sent as 0 = greedy).
SamplingParams sampling_from_wire(const WireSampling &w);
WireSampling sampling_to_wire(const SamplingParams &p);
/// WireSeqOptions <-> SequenceOptions (same fields).
SequenceOptions options_from_wire(const WireSeqOptions &w);
WireSeqOptions options_to_wire(const SequenceOptions &o);

class SequenceSamplers {
  public:
    /// Called after each sample with the sequence, the position whose logits
    /// were sampled, the token, the logits F32 [n_vocab] as the sampler got
    /// them, and whether this is the sequence's first sampled token since its
    /// sampler was created (a debug hook: LogitsDump).
    using SampleHook = std::function<void(int32_t seq, int32_t pos, int32_t token,
                                          const float *logits, bool first)>;

    /// The model's vocabulary for grammars, loaded when a sequence first
    /// needs one (null: grammars are refused).
    using VocabSource = std::function<const llama_vocab *()>;

    explicit SequenceSamplers(int32_t n_vocab, VocabSource vocab = {})
        : n_vocab_(n_vocab), vocab_(std::move(vocab)) {}

    /// Installs (or, with an empty function, removes) the sample hook.
    void set_sample_hook(SampleHook hook) { hook_ = std::move(hook); }

    /// Creates samplers for sequences seen for the first time (with the
    /// options of their first ubatch) and feeds each sequence the input
    /// tokens at positions it has not seen: prompt positions to the
    /// penalties, generated ones (a replay) to the grammar too. Tokens of -1
    /// (unknown) are skipped. Throws Error(kInvalidArgument) when a sampling
    /// parameter is out of range or a grammar is bad (Sampler's checks).
    void observe(const WireActivations &act);

    /// Samples the token after position `pos` of `seq` from logits F32
    /// [n_vocab], with the logprobs the sequence asked for. Throws
    /// Error(kInternal) for a sequence never observed, kInvalidArgument when
    /// its grammar allows no token.
    SampledToken sample(int32_t seq, int32_t pos, const float *logits);

    /// Whether `seq` is an embedding (its options pool, nothing is sampled).
    bool pools(int32_t seq) const;
    /// Adds the final hidden state F32 [n_embd] of position `pos` of an
    /// embedding sequence; at its last prompt position returns the pooled,
    /// L2-normalized embedding (llama.cpp's pooling: mean of every position,
    /// cls = position 0, last = the last one).
    std::optional<std::vector<float>> pool(int32_t seq, int32_t pos, const float *hidden,
                                           uint32_t n_embd);

    /// Drops the sampler of `seq`; -1 drops all.
    void release(int32_t seq);
    size_t size() const { return seqs_.size(); }

  private:
    struct Entry {
        std::unique_ptr<Sampler> sampler;
        int32_t n_prompt = 0;  // positions from here on are generated tokens
        Pooling pooling = Pooling::kNone;
        std::vector<double> pooled;  // sum (mean) or the chosen row (cls, last)
        int32_t n_pooled = 0;
        int32_t n_seen = 0;    // positions [0, n_seen) have been accepted
        bool sampled = false;  // a token was sampled since the sampler was created
    };
    int32_t n_vocab_;
    VocabSource vocab_;
    SampleHook hook_;
    std::map<int32_t, Entry> seqs_;
};

}  // namespace colony
