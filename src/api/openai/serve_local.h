// `colony serve` without workers: the whole model on this machine
// (LocalBackend) behind the OpenAI-compatible API and the dashboard.
#pragma once

namespace colony {

/// Subcommand entry (argv[0] is the subcommand's name). Options: -m, --host (or --api-host),
/// --api-port, --api-key (else $COLONY_API_KEY), --ssl-cert, --ssl-key,
/// --parallel, -c, -ub, -t, --queue-size, --max-body-bytes,
/// --max-prompt-tokens, --max-tokens-limit, --alias; --help lists them.
/// Prints "colony: listening on <url>" on stdout once the port is bound,
/// serves until SIGINT or SIGTERM, returns the exit code. Errors (bad
/// options, model, TLS files, port) escape as colony::Error. Uses ArgParser
/// (src/cli/args.cpp), which the executable must link.
int cmd_serve_local(int argc, char **argv);

}  // namespace colony
