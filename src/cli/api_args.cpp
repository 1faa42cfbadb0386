#include "cli/api_args.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "api/serve_local.h"
#include "cli/args.h"
#include "cli/cpu_args.h"
#include "cli/gpu_args.h"
#include "cli/kv_args.h"
#include "cli/layer_args.h"
#include "cli/model_source.h"
#include "cli/spec_args.h"
#include "model/kv_cache.h"
#include "util/error.h"
#include "util/log.h"
#include "util/text_file.h"

namespace colony {

namespace {

bool is_loopback(const std::string &host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

}  // namespace

void add_api_args(ArgParser &p, ApiArgs &a) {
    p.add("", "--api-port", "PORT", "HTTP port (0: any free port; default 8080)", &a.api_port);
    p.add("", "--alias", "NAME", "model name in the API (default: the file name without .gguf)",
          &a.alias);
    p.add("", "--api-key", "KEY", "require 'Authorization: Bearer KEY' (default: $COLONY_API_KEY)",
          &a.server.api_key);
    p.add("", "--ssl-cert", "PEM", "TLS certificate chain (serve HTTPS; needs --ssl-key)",
          &a.server.ssl_cert);
    p.add("", "--ssl-key", "PEM", "TLS private key", &a.server.ssl_key);
    p.add("", "--queue-size", "N", "requests waiting for a sequence before 429", &a.queue_size);
    p.add("", "--max-body-bytes", "N", "largest request body (413 above)", &a.max_body_bytes);
    p.add("", "--max-prompt-tokens", "N", "longest prompt in tokens (413 above); 0 = the context",
          &a.server.max_prompt_tokens);
    p.add("", "--max-tokens-limit", "N", "largest max_tokens a request may ask for (400 above)",
          &a.server.max_tokens_limit);
    p.add("", "--chat-template-file", "PATH",
          "Jinja chat template to use instead of the model's (tool calls follow its format)",
          &a.chat_template_file);
    p.add("", "--pooling", "TYPE",
          "embeddings: mean, cls or last (default: the model's pooling_type, else mean)",
          &a.server.pooling);
}

OpenAiServerOptions api_server_options(const ApiArgs &a, const std::string &host) {
    if (a.api_port < -1 || a.api_port > 65535)
        throw Error(ErrorCode::kInvalidArgument, "--api-port must be 0..65535");
    OpenAiServerOptions so = a.server;
    so.host = host;
    so.port = a.api_port < 0 ? 8080 : static_cast<uint16_t>(a.api_port);
    so.max_body_bytes = a.max_body_bytes;
    if (!so.pooling.empty() && so.pooling != "mean" && so.pooling != "cls" && so.pooling != "last")
        throw Error(ErrorCode::kInvalidArgument, "--pooling must be mean, cls or last");
    if (!a.chat_template_file.empty())
        so.chat_template = read_text_file(a.chat_template_file, 1u << 20);
    if (so.api_key.empty()) {
        if (const char *env = std::getenv("COLONY_API_KEY"))
            so.api_key = env;
    }
    if (!is_loopback(so.host) && so.api_key.empty()) {
        COLONY_LOG_WARN(
            "serving on %s without an API key: anyone who can reach this port can use the model",
            so.host.c_str());
    }
    return so;
}

int cmd_serve_local(int argc, char **argv) {
    LocalBackendOptions bo;
    ApiArgs api;
    std::string host = "127.0.0.1", cache_k = "f16", cache_v = "f16", ready_file;
    bool no_mmap = false;
    ArgParser p(
        "colony serve",
        "Serve a model from this machine alone (no workers): the OpenAI-compatible API\n"
        "(/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/models),\n"
        "Anthropic's /v1/messages, Ollama's /api/*, /health, /metrics, /v1/cluster and the\n"
        "dashboard at /.");
    p.add("-m", "--model", "MODEL",
          "GGUF model file, or a hub model to pull first (colony pull --help)", &bo.model_path,
          true);
    p.add("", "--host", "ADDR", "address to listen on (0.0.0.0: every interface)", &host);
    p.add("", "--api-host", "ADDR", "same as --host (the name `colony serve` with workers uses)",
          &host);
    add_api_args(p, api);
    p.add("-np", "--parallel", "N", "sequences generated at once (continuous batching)",
          &bo.n_parallel);
    p.add("-c", "--ctx-size", "N", "KV cache cells in total, shared by the parallel sequences",
          &bo.n_ctx);
    p.add("-ub", "--ubatch-size", "N", "tokens per forward pass", &bo.n_ubatch);
    CpuArgs cpu;
    add_cpu_args(p, &cpu);
    GpuArgs gpu;
    add_gpu_args(p, &gpu);
    p.add("-ctk", "--cache-type-k", "TYPE", "KV cache type of K: f32, f16, bf16, q8_0, q4_0, ...",
          &cache_k);
    p.add("-ctv", "--cache-type-v", "TYPE", "KV cache type of V", &cache_v);
    add_kv_window_args(p, &bo.kv_window);
    std::string skip_layers;
    add_skip_layers_arg(p, &skip_layers);
    DynamicSkipArgs dyn_skip;
    add_dynamic_skip_args(p, &dyn_skip);
    SpecArgs spec;
    add_spec_args(p, &spec);
    p.add("", "--ready-file", "PATH", "write the API port as JSON here once listening",
          &ready_file);
    p.flag("", "--no-mmap", "copy weights into memory instead of mapping the file", &no_mmap);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    bo.model_path = resolve_model_arg(bo.model_path);
    if (print_devices_if_asked(gpu))
        return 0;
    bo.spec = spec.resolve();
    bo.skip_layers = parse_layer_skip(skip_layers, 0);  // checked against the model on load
    bo.dyn_skip = resolve_dynamic_skip_args(dyn_skip, 0);
    const CpuPlacement placement = resolve_cpu_args(cpu);
    bo.n_threads = placement.n_threads;
    bo.cpu = stage_affinity(placement);
    bo.gpu = gpu.offload;
    bo.model_id = api.alias;
    bo.max_queue = api.queue_size;
    bo.type_k = parse_cache_type(cache_k);
    bo.type_v = parse_cache_type(cache_v);
    bo.use_mmap = !no_mmap;
    return serve_local(bo, api_server_options(api, host), ready_file);
}

}  // namespace colony
