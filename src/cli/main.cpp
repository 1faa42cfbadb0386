// colony: one model, many devices. Entry point and subcommand dispatch.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "cli/process_info.h"
#include "llama.h"
#include "util/error.h"

#if __has_include("cli/cmd_synth.h")
#include "cli/cmd_synth.h"
#define COLONY_HAS_SYNTH 1
#endif

#ifdef COLONY_HAS_COMPRESS
#include "cli/cmd_compress.h"
#endif

namespace {

struct Subcommand {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
};

const Subcommand kCommands[] = {
    {"generate", colony::cmd_generate,
     "generate text from a prompt on this machine (a cluster of one)"},
    {"perplexity", colony::cmd_perplexity,
     "perplexity and KL-divergence of a model on a text (llama-perplexity's method)"},
#ifdef COLONY_HAS_PIPELINE
    {"serve", colony::cmd_serve, "start a coordinator: the model, the first layers, the HTTP API"},
    {"join", colony::cmd_join, "join a coordinator as a worker and run the layers it assigns"},
    {"run", colony::cmd_run, "start a coordinator and N workers on this machine (a local cluster)"},
    {"token", colony::cmd_token, "list, create or revoke a coordinator's join tokens"},
    {"node", colony::cmd_node, "list, approve or revoke the worker node keys a coordinator pinned"},
    {"discover", colony::cmd_discover, "list the coordinators announcing themselves on the LAN"},
#endif
#ifdef COLONY_HAS_PLAN
    {"plan", colony::cmd_plan, "plan a model over measured devices, or measure this machine"},
#endif
#ifdef COLONY_HAS_SYNTH
    {"synth", colony::cmd_synth, "write a synthetic GGUF with a real model's shapes and tokenizer"},
#endif
#ifdef COLONY_HAS_COMPRESS
    {"compress", colony::cmd_compress,
     "write a GGUF whose block matrices are low-rank factors (smaller, lossy)"},
#endif
    {"pull", colony::cmd_pull,
     "download a model from a Hugging Face-style hub (or one stage's shard of it)"},
    {"shard", colony::cmd_shard, "write the GGUF shard of a layer range of a local model"},
    {"bench", colony::cmd_bench, "prefill/decode speed of colony against llama.cpp's llama-bench"},
};

void print_usage() {
    std::printf("usage: colony <command> [options]\n\ncommands:\n");
    for (const auto &c : kCommands)
        std::printf("  %-10s %s\n", c.name, c.summary);
    std::printf("\n'colony <command> --help' describes a command's options.\n");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
        print_usage();
        return argc < 2 ? 1 : 0;
    }
    if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version")) {
        std::printf("colony %s\n", COLONY_VERSION);
        return 0;
    }
    for (const auto &c : kCommands) {
        if (std::strcmp(argv[1], c.name) != 0)
            continue;
        try {
            colony::install_library_logging();
            llama_backend_init();
            const int rc = c.run(argc - 1, argv + 1);
            llama_backend_free();
            return rc;
        } catch (const colony::Error &e) {
            std::fprintf(stderr, "colony %s: error: %s\n", c.name, e.what());
            return 1;
        } catch (const std::exception &e) {
            std::fprintf(stderr, "colony %s: error: %s\n", c.name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "colony: unknown command '%s'\n", argv[1]);
    print_usage();
    return 1;
}
