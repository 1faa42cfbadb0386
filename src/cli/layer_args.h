// Layer options shared by the commands that run a stage on this machine:
// --skip-layers (model/layer_skip.h) and dynamic skipping
// (runtime/dynamic_skip.h), one help text.
#pragma once

#include <string>

#include "cli/args.h"
#include "model/layer_skip.h"
#include "runtime/dynamic_skip.h"
#include "util/error.h"

namespace colony {

/// Adds --skip-layers LIST to `p`, parsed into `list` (parse_layer_skip
/// reads it once the model's block count is known).
inline void add_skip_layers_arg(ArgParser &p, std::string *list) {
    p.add("", "--skip-layers", "LIST",
          "blocks to skip at run time, e.g. 3 or 1,4-6: their weights are not loaded and the "
          "hidden state passes through them (lossy; rank blocks first with colony perplexity "
          "--layer-importance, docs/edge.md)",
          list);
}

/// --dynamic-skip, --hot-layers, --skip-probe as given.
struct DynamicSkipArgs {
    float threshold = 0;
    std::string hot;  // "" = the model's first and last block
    uint32_t probe = 8;
};

inline void add_dynamic_skip_args(ArgParser &p, DynamicSkipArgs *a) {
    p.add("", "--dynamic-skip", "COS",
          "skip, per decode token, every block whose output has stayed within this cosine of "
          "its input on the sequence's recent tokens, e.g. 0.95 (0 = off; lossy: measure with "
          "colony perplexity --stream, docs/edge.md)",
          &a->threshold);
    p.add("", "--hot-layers", "LIST",
          "blocks --dynamic-skip never skips (default: the first and the last)", &a->hot);
    p.add("", "--skip-probe", "N",
          "--dynamic-skip computes every block at positions that are multiples of N, to keep "
          "its measurements current",
          &a->probe);
}

/// The options (n_layer 0: the model is not loaded yet; its first and last
/// block become the default hot ones when it is, resolve_dynamic_skip).
/// Errors: check_dynamic_skip's and parse_block_list's (naming --hot-layers).
inline DynamicSkip resolve_dynamic_skip_args(const DynamicSkipArgs &a, uint32_t n_layer) {
    DynamicSkip d;
    d.threshold = a.threshold;
    d.probe = a.probe;
    d.hot.blocks = parse_block_list(a.hot, "--hot-layers");
    d.hot_default = a.hot.empty();
    return n_layer > 0 ? resolve_dynamic_skip(d, n_layer) : d;
}

}  // namespace colony
