// colony pull: a model from a Hugging Face-style hub into the model cache, or
// one stage's shard of it from Range requests (docs/models.md).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "hub/pull.h"
#include "model/layer_range.h"
#include "util/error.h"

namespace colony {

namespace {

void print_catalog() {
    std::printf("%-18s %-10s %-30s %s\n", "NAME", "ARCH", "SIZE", "REPO:FILE");
    for (const CatalogEntry &e : model_catalog())
        std::printf("%-18s %-10s %-30s %s:%s\n", e.name, e.arch, e.about, e.repo, e.file);
}

}  // namespace

int cmd_pull(int argc, char **argv) {
    std::string model, cache_dir, layers, out;
    int32_t retries = 4;
    bool list = false, quiet = false;
    ArgParser p(
        "colony pull MODEL",
        "Download a GGUF model from a Hugging Face-style hub into the model cache, resuming\n"
        "an interrupted download and checking the hub's SHA-256; print its path.\n"
        "MODEL: a catalog name (--list), owner/repo:FILE.gguf, owner/repo:QUANT (e.g. Q8_0),\n"
        "owner/repo (Q4_K_M), with @REVISION after the repo for another than main.\n"
        "Environment: HF_ENDPOINT (a mirror; default https://huggingface.co), HF_TOKEN\n"
        "(gated or private repos), COLONY_MODEL_CACHE or XDG_CACHE_HOME (the cache).\n"
        "MODEL may come before or after the options.");
    p.add("", "--cache-dir", "DIR",
          "model cache (default $COLONY_MODEL_CACHE, else $XDG_CACHE_HOME/colony/models or "
          "~/.cache/colony/models)",
          &cache_dir);
    p.add("", "--retries", "N", "tries after the first when the connection is cut (each resumes)",
          &retries);
    p.add("", "--layers", "A:B",
          "fetch only what a stage with blocks [A, B) needs (the header and its tensors' byte "
          "ranges) "
          "and write its shard to -o",
          &layers);
    p.add("-o", "--output", "PATH", "the shard file --layers writes", &out);
    p.flag("-q", "--quiet", "no progress line", &quiet);
    p.final_flag("--list", "list the catalog's models and exit", &list);
    // MODEL may stand anywhere among the options: take it out, parse the rest.
    std::vector<char *> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool takes_value = a == "--cache-dir" || a == "--retries" || a == "--layers" ||
                                 a == "-o" || a == "--output";
        if (a.empty() || a[0] == '-' || !model.empty()) {
            rest.push_back(argv[i]);
            if (takes_value && i + 1 < argc)
                rest.push_back(argv[++i]);
        } else {
            model = a;
        }
    }
    p.parse(static_cast<int>(rest.size()), rest.data());
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    if (list) {
        print_catalog();
        return 0;
    }
    if (model.empty())
        throw Error(ErrorCode::kInvalidArgument,
                    "colony pull needs a MODEL (see colony pull --help and --list)");
    if (retries < 0)
        throw Error(ErrorCode::kInvalidArgument, "--retries must be >= 0");
    if (layers.empty() != out.empty())
        throw Error(ErrorCode::kInvalidArgument,
                    "--layers and -o go together (a shard and where to write it)");

    PullOptions o;
    o.retries = retries;
    o.cache_dir = cache_dir;  // empty: default_model_cache()
    PullPrinter printer(quiet);
    o.progress = [&](const PullProgress &pr) {
        printer.progress(pr.done, pr.total, pr.resumed_from, pr.hashing);
    };
    o.note = [&](const std::string &s) { printer.note(s); };
    const Hub hub = Hub::from_env();
    const ModelRef ref = parse_model_ref(model);
    if (!layers.empty()) {
        const LayerRange range = parse_layers_option(layers);
        const HubFileInfo info = resolve_ref(hub, ref);
        const uint64_t fetched = pull_shard(hub, info, range, out, o);
        printer.finish();
        printer.note("shard " + range.str() + " of " + info.repo + "/" + info.file + ": fetched " +
                     std::to_string(fetched) + " of the model's " + std::to_string(info.size) +
                     " bytes");
        std::printf("%s\n", out.c_str());
        return 0;
    }
    const PulledModel m = pull_model(hub, ref, o);
    printer.finish();
    if (m.bytes_fetched == 0)
        printer.note(m.info.repo + "/" + m.info.file +
                     " is already in the cache (SHA-256 checked)");
    std::printf("%s\n", m.path.string().c_str());
    return 0;
}

}  // namespace colony
