// Layer options shared by the commands that run a stage on this machine:
// --skip-layers (model/layer_skip.h), one help text.
#pragma once

#include <string>

#include "cli/args.h"

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

}  // namespace colony
