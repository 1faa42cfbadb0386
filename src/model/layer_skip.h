// Blocks skipped at run time (--skip-layers): the hidden state passes through
// a skipped block unchanged, its weights are not loaded and its KV cache is
// not allocated. This is "layer removal" as ShortGPT measures it (Men et al.
// 2024, "ShortGPT: Layers in Large Language Models are More Redundant Than
// You Expect"): which blocks can go is measured with `colony perplexity
// --layer-importance` (docs/edge.md), not guessed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/layer_range.h"

namespace colony {

struct LayerSkip {
    std::vector<uint32_t> blocks;  // absolute block indices, ascending, unique

    bool empty() const { return blocks.empty(); }
    /// Whether block `il` is skipped.
    bool contains(uint32_t il) const;
    /// Skipped blocks inside `r`.
    uint32_t count_in(LayerRange r) const;
    /// Whether every block of `r` is skipped (a stage that computes nothing).
    bool covers(LayerRange r) const { return !r.empty() && count_in(r) == r.size(); }
    /// The skipped blocks inside `r` (a stage's share of a cluster-wide list).
    LayerSkip within(LayerRange r) const;
    /// This set with block `il` added.
    LayerSkip with(uint32_t il) const;
    /// "3,5,6" ("" when empty): the form parse_layer_skip reads back.
    std::string str() const;
    bool operator==(const LayerSkip &o) const { return blocks == o.blocks; }
    bool operator!=(const LayerSkip &o) const { return !(*this == o); }
};

/// "4,3,2": blocks in the order given, comma-separated.
std::string block_list(const std::vector<uint32_t> &blocks);

/// Parses a comma-separated list of blocks and inclusive ranges ("3",
/// "1,4-6", "" = none) into ascending unique block numbers. Errors:
/// Error(kInvalidArgument) naming `option` and the bad item for anything
/// that is not a number or range, or a reversed range.
std::vector<uint32_t> parse_block_list(const std::string &list, const std::string &option);

/// Error(kInvalidArgument) naming `option` when the largest of the
/// ascending `blocks` is not a block of a model of n_layer blocks.
void check_blocks_exist(const std::vector<uint32_t> &blocks, uint32_t n_layer,
                        const std::string &option);

/// Parses a comma-separated list of blocks and inclusive ranges ("3",
/// "1,4-6", "" = none) of a model with n_layer blocks (0: not known yet;
/// check_layer_skip later). Duplicates merge. Errors:
/// Error(kInvalidArgument) naming the bad item for anything that is not a
/// number or range, a reversed range, and check_layer_skip's.
LayerSkip parse_layer_skip(const std::string &list, uint32_t n_layer);

/// Error(kInvalidArgument) for a block >= n_layer, or a list that skips
/// every block (nothing would be computed).
void check_layer_skip(const LayerSkip &skip, uint32_t n_layer);

}  // namespace colony
