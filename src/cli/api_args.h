// The HTTP API's command-line options, shared by both modes of `colony serve`
// and by `colony run`, and `colony serve` without workers as a subcommand of
// its own (also built as the test program colony-serve-local).
#pragma once

#include <cstdint>
#include <string>

#include "api/openai/openai_server.h"

namespace colony {

class ArgParser;

/// The HTTP API's command-line options.
struct ApiArgs {
    OpenAiServerOptions server;  // key, TLS files, prompt and max_tokens limits
    int32_t api_port = -1;       // -1: the command's default (8080 for serve)
    uint32_t max_body_bytes = 4u << 20;
    uint32_t queue_size = 64;        // requests waiting for a sequence before 429
    std::string alias;               // model name in the API; "" = the file name without .gguf
    std::string chat_template_file;  // --chat-template-file; "" = the model's template
};

/// Declares --api-port, --alias, --api-key, --ssl-cert, --ssl-key,
/// --queue-size, --max-body-bytes, --max-prompt-tokens, --max-tokens-limit,
/// --chat-template-file, --pooling.
void add_api_args(ArgParser &p, ApiArgs &a);

/// The server's options listening on `host`: port (-1: 8080) and limits from
/// `a`, the API key from $COLONY_API_KEY when none was given; warns when
/// `host` is not a loopback address and there is no key. Throws
/// Error(kInvalidArgument) for a port outside -1..65535 or an unknown
/// --pooling; Error(kNotFound) for an unreadable --chat-template-file.
OpenAiServerOptions api_server_options(const ApiArgs &a, const std::string &host);

/// Subcommand entry of `colony serve` without workers (argv[0] is the
/// subcommand's name). Options: -m, --host (or --api-host), the ApiArgs,
/// --parallel, -c, -ub, -t, -ctk, -ctv, --no-mmap, --ready-file; --help
/// lists them. Returns the exit code; errors escape as colony::Error.
int cmd_serve_local(int argc, char **argv);

}  // namespace colony
