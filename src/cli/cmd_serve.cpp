// colony serve: the OpenAI-compatible API and the dashboard, over either
//   - the whole model on this machine (LocalBackend) when no worker is
//     expected: no --workers-expected (or 0) and no --split with several ranges;
//   - the pipeline coordinator (control plane, stage 0) otherwise, through
//     CoordinatorBackend.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "api/coordinator_backend.h"
#include "api/openai/openai_server.h"
#include "api/serve_local.h"
#include "cli/api_args.h"
#include "cli/args.h"
#include "cli/cli_paths.h"
#include "cli/cluster_cli.h"
#include "cli/commands.h"
#include "cli/cpu_args.h"
#include "cli/gpu_args.h"
#include "cli/kv_args.h"
#include "cli/layer_args.h"
#include "cli/model_source.h"
#include "cli/process_info.h"
#include "cli/spec_args.h"
#include "cluster/layer_split.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "net/wire_dtype.h"
#include "pipeline/coordinator.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/trace.h"

namespace colony {

namespace {

uint16_t port_option(uint32_t v, const char *name) {
    if (v > 65535)
        throw Error(ErrorCode::kInvalidArgument, std::string(name) + " must be 0..65535");
    return static_cast<uint16_t>(v);
}

/// Ranges in a --split value ("0:3,3:5" has 2); 0 when empty.
uint32_t split_ranges(const std::string &split) {
    if (split.empty())
        return 0;
    uint32_t n = 1;
    for (char c : split)
        n += c == ',';
    return n;
}

/// The coordinator's mode: plan, serve, print, wait for a signal.
int serve_coordinator(CoordinatorOptions o, const ApiArgs &api, const std::string &api_host,
                      const std::string &ready_file, const ServeClusterArgs &cluster) {
    const OpenAiServerOptions so = api_server_options(api, api_host);
    Coordinator coordinator(o);
    CoordinatorBackend backend(coordinator, {api.alias, api.queue_size});
    OpenAiServer server(backend, coordinator.tokenizer(), so);
    const std::string where = (o.host == "0.0.0.0" ? std::string("<this host>") : o.host) + ":" +
                              std::to_string(coordinator.control_port());
    std::printf("colony serve: model %s, waiting for %u worker(s)\n",
                coordinator.model_name().c_str(), o.workers_expected);
    if (!o.insecure) {
        std::printf("join token: %s\n", coordinator.join_token().c_str());
        std::printf("workers join with: colony join --coordinator %s --token %s\n", where.c_str(),
                    coordinator.join_token().c_str());
        if (o.confirm_pairing) {
            std::printf(
                "pairing: a new worker waits until you compare its code and run "
                "colony node approve CODE (colony node list shows them)\n");
        }
    } else {
        std::printf("workers join with: colony join --coordinator %s --insecure\n", where.c_str());
    }
    // LAN beacon for `colony join` without --coordinator (cluster_cli.h; docs/cluster.md).
    const std::unique_ptr<BeaconSender> beacon =
        start_beacon(cluster, o, coordinator.control_port(), server.port());
    const std::string url = std::string(server.tls() ? "https" : "http") + "://" + api_host + ":" +
                            std::to_string(server.port());
    std::printf("colony: listening on %s/\n", url.c_str());
    std::printf("API: %s/v1/chat/completions, %s/v1/completions; dashboard: %s/\n", url.c_str(),
                url.c_str(), url.c_str());
    std::fflush(stdout);
    if (!ready_file.empty()) {
        write_ready_file(ready_file, nlohmann::json{{"control_port", coordinator.control_port()},
                                                    {"api_port", server.port()},
                                                    {"token", coordinator.join_token()},
                                                    {"data_endpoint", coordinator.data_endpoint()},
                                                    {"model_sha256", coordinator.model_hash_hex()}}
                                         .dump());
    }

    int sig = 0;
    bool announced = false;
    while ((sig = wait_stop_signal(500)) == 0) {
        if (!announced && backend.health().ready) {
            announced = true;
            std::printf("colony: model %s ready\n", backend.model_info().id.c_str());
            std::fflush(stdout);
        }
    }
    coordinator.stop();  // fails waiting requests, so the HTTP server can stop
    const auto j = nlohmann::json::parse(coordinator.health_json(), nullptr, false);
    std::fprintf(
        stderr,
        "colony serve: signal %d, stopping | shard bytes served %llu | data bytes sent "
        "%llu | peak RSS %.1f MB\n",
        sig, static_cast<unsigned long long>(coordinator.shard_bytes_served()),
        static_cast<unsigned long long>(j.is_object() ? j.value("data_bytes_sent", 0ull) : 0ull),
        peak_rss_bytes() / 1e6);
    return 0;
}

}  // namespace

int cmd_serve(int argc, char **argv) {
    CoordinatorOptions o;
    ApiArgs api;
    std::string config_dir, cache_dir, wire_type = "f16", api_host, ready_file;
    std::string cache_k = "f16", cache_v = "f16", trace;
    uint32_t port = o.port;
    int32_t workers_expected = -1;
    float mem_limit = 0;
    CpuArgs cpu;
    GpuArgs gpu;
    int32_t hb_timeout = o.heartbeat_timeout_ms, stall_timeout = o.stall_timeout_ms;
    int32_t hb_interval = o.heartbeat_interval_ms, recovery_timeout = o.recovery_timeout_ms;
    bool insecure = false, no_mmap = false, no_recovery = false, batch_invariant = false;
    bool confirm_pairing = false;
    ArgParser p(
        "colony serve",
        "Serve a model over the OpenAI-compatible API (/v1/chat/completions with tools,\n"
        "structured output and logprobs, /v1/completions, /v1/embeddings, /v1/responses,\n"
        "/v1/models), Anthropic's /v1/messages, Ollama's /api/*, /health, /metrics,\n"
        "/v1/cluster and the dashboard at /. Without workers the whole model runs here.\n"
        "With --workers-expected N (or a --split of several ranges) this is a coordinator:\n"
        "it owns the model, runs the first layers itself and gives the other layer ranges\n"
        "to workers that join with its token.");
    p.add("-m", "--model", "MODEL",
          "GGUF model file, or a hub model to pull first (colony pull --help)", &o.model_path,
          true);
    p.add("", "--model-url", "URL",
          "the hub resolve URL the model file came from (set by itself when -m names a hub "
          "model): workers build their shards from its byte ranges, checked against the "
          "coordinator's hash (docs/models.md)",
          &o.model_url);
    p.add("", "--host", "HOST", "interface of the control and data sockets (0.0.0.0: all)",
          &o.host);
    p.add("", "--port", "N", "control port workers join on (0: any free port)", &port);
    p.add("", "--api-host", "HOST", "interface of the HTTP API (default: --host)", &api_host);
    add_api_args(p, api);
    ServeClusterArgs cluster;  // planner and beacon (cluster_cli.h)
    add_serve_cluster_args(p, &cluster);
    p.add("", "--split", "RANGES", "layer ranges per stage, coordinator first, e.g. 0:3,3:5",
          &o.split);
    p.add("", "--workers-expected", "N",
          "plan once N workers have joined (default: the ranges of --split minus one, else 0: "
          "serve alone)",
          &workers_expected);
    p.add("", "--wire-type", "TYPE", "hidden states on the wire: f16, f32 or q8_0", &wire_type);
    p.add("-c", "--ctx-size", "N", "KV cache cells per stage, shared by --parallel sequences",
          &o.n_ctx);
    p.add("-np", "--parallel", "N", "sequences generated at once (continuous batching)",
          &o.n_parallel);
    p.add("-ub", "--ubatch-size", "N", "tokens per ubatch (prefill chunk)", &o.n_ubatch);
    add_cpu_args(p, &cpu,
                 "compute threads of this machine's stage (default: the big cores of a "
                 "big.LITTLE CPU, else all cores)");
    add_gpu_args(p, &gpu);
    p.add("-ctk", "--cache-type-k", "TYPE",
          "KV cache type of K of this machine's stage: f32, f16, bf16, q8_0, q4_0, ...", &cache_k);
    p.add("-ctv", "--cache-type-v", "TYPE", "KV cache type of V of this machine's stage", &cache_v);
    p.flag("", "--no-mmap", "copy this machine's weights into memory instead of mapping the file",
           &no_mmap);
    p.add("", "--mem-limit", "GiB",
          "memory the planner may use on the coordinator (default: MemAvailable)", &mem_limit);
    p.add("", "--config-dir", "DIR", "node key and join tokens (default ~/.config/colony)",
          &config_dir);
    p.add("", "--cache-dir", "DIR",
          "where shards for workers are written (default "
          "~/.cache/colony/shards)",
          &cache_dir);
    p.add("", "--heartbeat-interval-ms", "MS", "a HEARTBEAT to every worker this often",
          &hb_interval);
    p.add("", "--heartbeat-timeout-ms", "MS",
          "a worker silent this long (plus 4 measured round trips) is lost", &hb_timeout);
    p.add("", "--recovery-timeout-ms", "MS",
          "running requests of a lost stage wait this long for a new plan, then fail",
          &recovery_timeout);
    p.flag("", "--batch-invariant",
           "bit-exact recovery: pad every ubatch of this machine's stage so each position gets "
           "the same floats in a prefill as in a decode (slower decode; docs/pipeline.md)",
           &batch_invariant);
    add_kv_window_args(p, &o.kv_window);
    std::string skip_layers;
    add_skip_layers_arg(p, &skip_layers);
    DynamicSkipArgs dyn_skip;
    add_dynamic_skip_args(p, &dyn_skip);
    SpecArgs spec;
    add_spec_args(p, &spec);
    p.flag("", "--no-recovery",
           "fail the running requests when a stage is lost instead of replaying them on a new "
           "plan",
           &no_recovery);
    p.add("", "--stall-timeout-ms", "MS",
          "a pipeline without progress this long (plus time for the tokens in flight) is "
          "re-planned and its requests replayed",
          &stall_timeout);
    p.add("", "--ready-file", "PATH", "write ports and token as JSON here once listening",
          &ready_file);
    p.add("", "--debug-logits-file", "PATH",
          "debug: when this machine's stage is the last one, append each sampled token and "
          "the logits of each sequence's first one to PATH (format: "
          "docs/pipeline.md)",
          &o.debug_logits_file);
    p.add("", "--trace", "FILE",
          "write a Chrome/Perfetto trace of every ubatch of this process (compute, send, "
          "sampling, queueing, the wait for the pipeline) to FILE",
          &trace);
    p.flag("", "--confirm-pairing",
           "a worker whose node key this coordinator has not approved waits until a person "
           "checks its pairing code and runs `colony node approve CODE` (default: trust it on "
           "first use; its key is pinned either way; docs/security.md)",
           &confirm_pairing);
    p.flag("", "--insecure", "plaintext, no authentication (never on an untrusted network)",
           &insecure);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    {
        std::string pulled_from;
        o.model_path = resolve_model_arg(o.model_path, &pulled_from);
        if (!pulled_from.empty())
            o.model_url = pulled_from;
    }
    if (print_devices_if_asked(gpu))
        return 0;
    o.spec = spec.resolve();
    o.skip_layers = parse_layer_skip(skip_layers, 0);  // checked against the model on load
    o.dyn_skip = resolve_dynamic_skip_args(dyn_skip, 0);
    if (workers_expected < -1)
        throw Error(ErrorCode::kInvalidArgument, "--workers-expected must be >= 0");
    const uint32_t n_ranges = split_ranges(o.split);
    o.workers_expected = workers_expected >= 0 ? static_cast<uint32_t>(workers_expected)
                                               : (n_ranges > 1 ? n_ranges - 1 : 0);
    if (api_host.empty())
        api_host = o.host;
    if (!trace.empty())
        trace_open(trace, "coordinator");
    block_stop_signals();

    if (o.workers_expected == 0 && n_ranges <= 1) {
        // Serving alone: the whole model in this process.
        if (!o.split.empty()) {
            const auto file = GgufFile::open(o.model_path);
            (void)parse_layer_split(o.split, ModelHparams::from_gguf(*file).n_layer);
        }
        LocalBackendOptions bo;
        bo.model_path = o.model_path;
        bo.model_id = api.alias;
        bo.n_parallel = o.n_parallel;
        bo.n_ctx = o.n_ctx;
        bo.n_ubatch = o.n_ubatch;
        const CpuPlacement placement = resolve_cpu_args(cpu);
        bo.n_threads = placement.n_threads;
        bo.cpu = stage_affinity(placement);
        bo.gpu = gpu.offload;
        bo.max_queue = api.queue_size;
        bo.type_k = parse_cache_type(cache_k);
        bo.type_v = parse_cache_type(cache_v);
        bo.use_mmap = !no_mmap;
        bo.debug_logits_file = o.debug_logits_file;
        bo.batch_invariant = batch_invariant;
        bo.kv_window = o.kv_window;
        bo.spec = o.spec;
        bo.skip_layers = o.skip_layers;
        bo.dyn_skip = o.dyn_skip;
        return serve_local(bo, api_server_options(api, api_host), ready_file);
    }

    o.type_k = parse_cache_type(cache_k);
    o.type_v = parse_cache_type(cache_v);
    o.use_mmap = !no_mmap;
    o.port = port_option(port, "--port");
    o.wire_type = wire_dtype_from_name(wire_type);
    const CpuPlacement placement = resolve_cpu_args(cpu);
    o.n_threads = placement.n_threads;
    o.cpu = stage_affinity(placement);
    o.gpu = gpu.offload;
    o.mem_limit_gib = mem_limit;
    o.insecure = insecure;
    if (confirm_pairing && insecure)
        throw Error(ErrorCode::kInvalidArgument, "--confirm-pairing needs CURVE: drop --insecure");
    o.confirm_pairing = confirm_pairing;
    if (hb_interval < 10 || hb_timeout < 2 * hb_interval) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--heartbeat-interval-ms must be >= 10 and --heartbeat-timeout-ms at least "
                    "twice it");
    }
    if (recovery_timeout < 0)
        throw Error(ErrorCode::kInvalidArgument, "--recovery-timeout-ms must be >= 0");
    o.heartbeat_interval_ms = hb_interval;
    o.heartbeat_timeout_ms = hb_timeout;
    o.recovery_timeout_ms = recovery_timeout;
    o.recovery = !no_recovery;
    if (batch_invariant)
        o.invariance = StageConfig::Invariance::kFull;
    o.stall_timeout_ms = stall_timeout;
    o.config_dir = config_dir_or_default(config_dir, false);
    o.cache_dir = cache_dir_or_default(cache_dir);
    if (insecure) {
        COLONY_LOG_WARN("--insecure: the cluster's traffic is plaintext and unauthenticated");
    }
    apply_serve_cluster_args(cluster, &o);
    return serve_coordinator(std::move(o), api, api_host, ready_file, cluster);
}

}  // namespace colony
