// colony serve: the coordinator (control plane, stage 0, HTTP API).
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "api/http_api.h"
#include "cli/args.h"
#include "cli/cli_paths.h"
#include "cli/commands.h"
#include "cli/process_info.h"
#include "cli/signals.h"
#include "net/wire-dtype.h"
#include "pipeline/coordinator.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

uint16_t port_option(uint32_t v, const char *name) {
    if (v > 65535)
        throw Error(ErrorCode::kInvalidArgument, std::string(name) + " must be 0..65535");
    return static_cast<uint16_t>(v);
}

void write_ready_file(const std::string &path, const Coordinator &c, uint16_t api_port) {
    const nlohmann::json j = {{"control_port", c.control_port()},
                              {"api_port", api_port},
                              {"token", c.join_token()},
                              {"data_endpoint", c.data_endpoint()},
                              {"model_sha256", c.model_hash_hex()}};
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump() << "\n";
        if (!out)
            throw Error(ErrorCode::kResource, "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        throw Error(ErrorCode::kResource, "cannot write " + path);
    }
}

}  // namespace

int cmd_serve(int argc, char **argv) {
    CoordinatorOptions o;
    std::string config_dir, cache_dir, wire_type = "f16", api_host, ready_file;
    uint32_t port = o.port, api_port = 8080;
    float mem_limit = 0;
    int32_t threads = 0, hb_timeout = o.heartbeat_timeout_ms, stall_timeout = o.stall_timeout_ms;
    bool insecure = false;
    ArgParser p("colony serve",
                "Start a coordinator: it owns the model, runs the first layers itself, gives the\n"
                "other layer ranges to workers that join with its token, and serves\n"
                "POST /v1/completions and GET /health.");
    p.add("-m", "--model", "PATH", "GGUF model file", &o.model_path, true);
    p.add("", "--host", "HOST", "interface of the control and data sockets (0.0.0.0: all)",
          &o.host);
    p.add("", "--port", "N", "control port workers join on (0: any free port)", &port);
    p.add("", "--api-host", "HOST", "interface of the HTTP API (default: --host)", &api_host);
    p.add("", "--api-port", "N", "HTTP API port (0: any free port)", &api_port);
    p.add("", "--split", "RANGES", "layer ranges per stage, coordinator first, e.g. 0:3,3:5",
          &o.split);
    p.add("", "--workers-expected", "N", "plan once N workers have joined (0: serve alone)",
          &o.workers_expected);
    p.add("", "--wire-type", "TYPE", "hidden states on the wire: f16, f32 or q8_0", &wire_type);
    p.add("-c", "--ctx-size", "N", "KV cache cells per stage, shared by --parallel sequences",
          &o.n_ctx);
    p.add("", "--parallel", "N", "sequences in flight at once", &o.n_parallel);
    p.add("-ub", "--ubatch-size", "N", "tokens per ubatch (prefill chunk)", &o.n_ubatch);
    p.add("-t", "--threads", "N", "compute threads of the coordinator's stage, 0 = all cores",
          &threads);
    p.add("", "--mem-limit", "GiB", "the coordinator's memory for the proportional split",
          &mem_limit);
    p.add("", "--config-dir", "DIR", "node key and join tokens (default ~/.config/colony)",
          &config_dir);
    p.add("", "--cache-dir", "DIR",
          "where shards for workers are written (default "
          "~/.cache/colony/shards)",
          &cache_dir);
    p.add("", "--heartbeat-timeout-ms", "MS", "a worker silent this long is lost", &hb_timeout);
    p.add("", "--stall-timeout-ms", "MS", "an ubatch unanswered this long fails its requests",
          &stall_timeout);
    p.add("", "--ready-file", "PATH", "write ports and token as JSON here once listening",
          &ready_file);
    p.flag("", "--insecure", "plaintext, no authentication (never on an untrusted network)",
           &insecure);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    o.port = port_option(port, "--port");
    o.wire_type = wire_dtype_from_name(wire_type);
    o.n_threads = threads;
    o.mem_limit_gib = mem_limit;
    o.insecure = insecure;
    o.heartbeat_timeout_ms = hb_timeout;
    o.stall_timeout_ms = stall_timeout;
    o.config_dir = config_dir_or_default(config_dir, false);
    o.cache_dir = cache_dir_or_default(cache_dir);
    if (api_host.empty())
        api_host = o.host;
    if (insecure) {
        COLONY_LOG_WARN("--insecure: the cluster's traffic is plaintext and unauthenticated");
    }

    block_stop_signals();
    Coordinator coordinator(o);
    HttpApi api(coordinator, {api_host, port_option(api_port, "--api-port")});
    const std::string where = (o.host == "0.0.0.0" ? std::string("<this host>") : o.host) + ":" +
                              std::to_string(coordinator.control_port());
    std::printf("colony serve: model %s, waiting for %u worker(s)\n",
                coordinator.model_name().c_str(), o.workers_expected);
    if (!insecure) {
        std::printf("join token: %s\n", coordinator.join_token().c_str());
        std::printf("workers join with: colony join --coordinator %s --token %s\n", where.c_str(),
                    coordinator.join_token().c_str());
    } else {
        std::printf("workers join with: colony join --coordinator %s --insecure\n", where.c_str());
    }
    std::printf("API: http://%s:%u/v1/completions (health: /health)\n", api_host.c_str(),
                api.port());
    std::fflush(stdout);
    if (!ready_file.empty())
        write_ready_file(ready_file, coordinator, api.port());

    int sig = 0;
    while ((sig = wait_stop_signal(500)) == 0) {
    }
    coordinator.stop();  // fails waiting requests, so the HTTP server can stop
    const HealthReport h = coordinator.health();
    const auto j = nlohmann::json::parse(h.json, nullptr, false);
    std::fprintf(
        stderr,
        "colony serve: signal %d, stopping | shard bytes served %llu | data bytes sent "
        "%llu | peak RSS %.1f MB\n",
        sig, static_cast<unsigned long long>(coordinator.shard_bytes_served()),
        static_cast<unsigned long long>(j.is_object() ? j.value("data_bytes_sent", 0ull) : 0ull),
        peak_rss_bytes() / 1e6);
    return 0;
}

}  // namespace colony
