// Dynamic layer skipping (--dynamic-skip): a per-token gate that skips the
// "cold" blocks of a decode step, those whose output hidden state has stayed
// nearly parallel to their input on the sequence's recent tokens, while the
// `--hot-layers` are never skipped (issue 12's "hot path").
//
// The signal is ShortGPT's Block Influence read per token (Men et al. 2024,
// eq. 1: a block whose output is its input changed little in direction does
// little): the stage measures cos(x_in, x_out) of every block it computes for
// every decode row, and keeps an exponential mean per sequence and block
// (weight 1/2). A block is skipped for a decode row when that mean is at
// least the threshold, except at positions that are a multiple of the probe
// interval, where every block is computed so that the means stay current.
//
// A skipped block still writes the row's K and V into its cache, projected
// from the block's real input (they depend on nothing else), so later tokens
// attend over every position, as CALM's state propagation does (Schuster et
// al. 2022); attention and feed-forward are what is saved. Prefill rows and
// the rows of speculative verification (several rows of one sequence in a
// ubatch) compute every block. Every decision depends only on the
// sequence's own hidden states and positions, so a sequence gets the same
// text alone or batched with others, on one node or split into stages.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "model/layer_range.h"
#include "model/layer_skip.h"

namespace colony {

/// The options, the same on every stage of a cluster.
struct DynamicSkip {
    float threshold = 0;       // cosine in (0, 1]; 0 = off
    LayerSkip hot;             // never skipped (absolute blocks)
    uint32_t probe = 8;        // positions p with p % probe == 0 compute every block
    bool hot_default = false;  // `hot` is to be the model's first and last block
    bool on() const { return threshold > 0; }
    bool operator==(const DynamicSkip &o) const {
        return threshold == o.threshold && hot == o.hot && probe == o.probe &&
               hot_default == o.hot_default;
    }
};

/// Error(kInvalidArgument) for a threshold outside [0, 1], a probe of 0, or a
/// hot block >= n_layer.
void check_dynamic_skip(const DynamicSkip &d, uint32_t n_layer);

/// `d` for a model of n_layer blocks: hot_default applied
/// (default_hot_layers), then checked (check_dynamic_skip).
DynamicSkip resolve_dynamic_skip(DynamicSkip d, uint32_t n_layer);

/// The default hot blocks: the model's first and last (their removal costs
/// most in ShortGPT's and colony's own --layer-importance measurements).
LayerSkip default_hot_layers(uint32_t n_layer);

/// One stage's gate: per sequence and block of its range, the mean cosine.
class DynamicSkipGate {
  public:
    /// How a block runs for one ubatch (GraphShape::block_mode).
    enum Mode : uint8_t {
        kCompute = 0,  // every row
        kKvOnly = 1,   // no row: K/V stored, the hidden state passes through
        kMixed = 2,    // computed, then rows that skip keep their input (a row mask)
    };

    DynamicSkipGate(const DynamicSkip &opts, LayerRange range, const LayerSkip &static_skip);

    bool on() const { return opts_.on(); }
    /// Decides one ubatch: `keep` gets, per block of the range (static skips
    /// included, as kCompute) and row, 1 to compute and 0 to skip; returns
    /// the mode per block. Rows of `scratch_seq` (batch-invariance padding)
    /// follow the others.
    std::vector<uint8_t> decide(const int32_t *seq_id, const int32_t *pos, uint32_t n_tokens,
                                int32_t scratch_seq, std::vector<std::vector<float>> &keep);
    /// Takes the cosines of block il (absolute) for the rows that computed it
    /// (`keep` as decide() gave it): only decode rows count.
    void observe(uint32_t il, const float *cos, const int32_t *seq_id, uint32_t n_tokens,
                 const std::vector<float> &keep);
    /// A sequence removed from its first position: its means start over.
    void forget(int32_t seq) { mean_.erase(seq); }

    uint64_t n_evaluated() const { return n_evaluated_; }  // block x decode-row decisions
    uint64_t n_skipped() const { return n_skipped_; }

  private:
    bool decode_row(uint32_t row) const { return single_[row]; }

    DynamicSkip opts_;
    LayerRange range_;
    LayerSkip static_skip_;
    std::unordered_map<int32_t, std::vector<float>> mean_;  // NaN: never measured
    std::vector<bool> single_;  // per row of the last decide(): its sequence's only row
    uint64_t n_evaluated_ = 0, n_skipped_ = 0;
};

}  // namespace colony
