// colony-serve-local: `colony serve` without workers as a program of its own,
// for the Node and browser tests (the colony binary wires the same
// cmd_serve_local into `colony serve`).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/api_args.h"
#include "llama.h"
#include "util/error.h"

int main(int argc, char **argv) {
    const char *env = std::getenv("COLONY_LOG");
    if (!env || std::string(env) != "debug") {
        llama_log_set(
            [](ggml_log_level level, const char *text, void *) {
                if (level == GGML_LOG_LEVEL_ERROR)
                    std::fputs(text, stderr);
            },
            nullptr);
    }
    llama_backend_init();
    int rc = 1;
    try {
        rc = colony::cmd_serve_local(argc, argv);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "colony serve: error: %s\n", e.what());
    }
    llama_backend_free();
    return rc;
}
