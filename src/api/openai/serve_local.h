// `colony serve` without workers: the whole model on this machine
// (LocalBackend) behind the OpenAI-compatible API and the dashboard; and the
// HTTP options that `colony serve` shares between that mode and the pipeline
// coordinator's (src/cli/cmd_serve.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "api/openai/local_backend.h"
#include "api/openai/openai_server.h"

namespace colony {

class ArgParser;

/// The HTTP API's command-line options (both modes of `colony serve`, and
/// `colony run`).
struct ApiArgs {
    OpenAiServerOptions server;  // key, TLS files, prompt and max_tokens limits
    int32_t api_port = -1;       // -1: the command's default (8080 for serve)
    uint32_t max_body_bytes = 4u << 20;
    uint32_t queue_size = 64;  // requests waiting for a sequence before 429
    std::string alias;         // model name in the API; "" = the file name without .gguf
};

/// Declares --api-port, --alias, --api-key, --ssl-cert, --ssl-key,
/// --queue-size, --max-body-bytes, --max-prompt-tokens, --max-tokens-limit.
void add_api_args(ArgParser &p, ApiArgs &a);

/// The server's options listening on `host`: port (-1: 8080) and limits from
/// `a`, the API key from $COLONY_API_KEY when none was given; warns when
/// `host` is not a loopback address and there is no key. Throws
/// Error(kInvalidArgument) for a port outside -1..65535.
OpenAiServerOptions api_server_options(const ApiArgs &a, const std::string &host);

/// Loads the model into a LocalBackend and serves it until SIGINT or SIGTERM.
/// Prints "colony: listening on <url>" on stdout once the port is bound and
/// "colony: model <id> ready" once the weights are loaded; writes
/// {"api_port", "control_port": 0, "token": ""} to ready_file (unless empty)
/// once listening. Returns the exit code. Errors (model, TLS files, port)
/// escape as colony::Error.
int serve_local(const LocalBackendOptions &backend, const OpenAiServerOptions &server,
                const std::string &ready_file = "");

/// Subcommand entry of colony-serve-local (argv[0] is the subcommand's name).
/// Options: -m, --host (or --api-host), the ApiArgs, --parallel, -c, -ub, -t,
/// -ctk, -ctv, --no-mmap, --ready-file; --help lists them. Uses ArgParser
/// (src/cli/args.cpp), which the executable must link.
int cmd_serve_local(int argc, char **argv);

/// Writes `json` (an object's text) to `path` atomically (a temporary file,
/// then rename). Throws Error(kResource) when it cannot.
void write_ready_file(const std::string &path, const std::string &json);

}  // namespace colony
