// Speculative decoding options (runtime/speculative.h), with llama.cpp's
// names (common/arg.cpp): -md/--model-draft, --spec-type, --draft-max,
// --draft-min, --draft-p-min; and colony's --spec-ngram-size-n,
// --draft-layers and --no-spec-adaptive.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cli/args.h"
#include "runtime/speculative.h"

namespace colony {

/// The options as parsed; resolve() gives the SpecParams.
struct SpecArgs {
    std::string model_draft;
    std::string type;  // "" = none, or the draft model when -md is given
    SpecParams params;
    bool no_adaptive = false;

    /// Error(kInvalidArgument) for a bad type or value.
    SpecParams resolve() const {
        SpecParams p = params;
        p.draft_model = model_draft;
        if (!type.empty())
            p.type = parse_spec_type(type);
        else if (!model_draft.empty())
            p.type = SpecType::kDraftModel;
        p.adaptive = !no_adaptive;
        p.validate();
        return p;
    }
};

/// The options again as command-line arguments (those not at their
/// defaults), for a child process: colony run passes them to colony serve.
inline std::vector<std::string> spec_arguments(const SpecArgs &a) {
    std::vector<std::string> out;
    const SpecParams d;
    if (!a.model_draft.empty())
        out.insert(out.end(), {"--model-draft", std::filesystem::absolute(a.model_draft).string()});
    if (!a.type.empty())
        out.insert(out.end(), {"--spec-type", a.type});
    if (a.params.draft_max != d.draft_max)
        out.insert(out.end(), {"--draft-max", std::to_string(a.params.draft_max)});
    if (a.params.draft_min != d.draft_min)
        out.insert(out.end(), {"--draft-min", std::to_string(a.params.draft_min)});
    if (a.params.p_min != d.p_min)
        out.insert(out.end(), {"--draft-p-min", std::to_string(a.params.p_min)});
    if (a.params.ngram_n != d.ngram_n)
        out.insert(out.end(), {"--spec-ngram-size-n", std::to_string(a.params.ngram_n)});
    if (a.params.draft_layers != d.draft_layers)
        out.insert(out.end(), {"--draft-layers", std::to_string(a.params.draft_layers)});
    if (a.no_adaptive)
        out.push_back("--no-spec-adaptive");
    return out;
}

inline void add_spec_args(ArgParser &p, SpecArgs *a) {
    p.add("-md", "--model-draft", "PATH",
          "draft model for speculative decoding: a small GGUF with this model's vocabulary, run "
          "on this device (docs/speculative.md)",
          &a->model_draft);
    p.add("", "--spec-type", "TYPE",
          "speculative decoding without a draft model: ngram (drafts copied from where the last "
          "tokens occurred before; code, quotes, edits), skip (this model's first blocks and "
          "its LM head draft: an early exit) or none",
          &a->type);
    p.add("", "--draft-max", "N", "drafts verified per step at most", &a->params.draft_max);
    p.add("", "--draft-min", "N", "fewer drafts than this are not verified", &a->params.draft_min);
    p.add("", "--draft-p-min", "P",
          "the draft model stops drafting where its top token is less likely than P",
          &a->params.p_min);
    p.add("", "--spec-ngram-size-n", "N",
          "--spec-type ngram: the longest n-gram looked up, shorter ones down to 2 after it",
          &a->params.ngram_n);
    p.add("", "--draft-layers", "N",
          "--spec-type skip: the blocks the draft runs before its early exit (0 = half the "
          "model's)",
          &a->params.draft_layers);
    p.flag("", "--no-spec-adaptive",
           "always draft --draft-max tokens, even where the measured acceptance says drafting "
           "does not pay",
           &a->no_adaptive);
}

}  // namespace colony
