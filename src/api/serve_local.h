// `colony serve` without workers: the whole model on this machine (a cluster
// of one, LocalBackend) behind the OpenAI-compatible API and the dashboard.
// The command-line side (options, --help) is in src/cli/api_args.h.
#pragma once

#include <string>

#include "api/local_backend.h"
#include "api/openai/openai_server.h"

namespace colony {

/// Loads the model into a LocalBackend and serves it until SIGINT or SIGTERM.
/// Prints "colony: listening on <url>" on stdout once the port is bound and
/// "colony: model <id> ready" once the weights are loaded; writes
/// {"api_port", "control_port": 0, "token": ""} to ready_file (unless empty)
/// once listening. Returns the exit code. Errors (model, TLS files, port)
/// escape as colony::Error.
int serve_local(const LocalBackendOptions &backend, const OpenAiServerOptions &server,
                const std::string &ready_file = "");

/// Writes `json` (an object's text) to `path` atomically (a temporary file,
/// then rename). Throws Error(kResource) when it cannot.
void write_ready_file(const std::string &path, const std::string &json);

}  // namespace colony
