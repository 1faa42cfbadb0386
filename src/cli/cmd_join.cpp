// colony join: a worker that takes a layer range from a coordinator.
#include <atomic>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "cli/args.h"
#include "cli/cli_paths.h"
#include "cli/cluster_cli.h"
#include "cli/commands.h"
#include "cli/cpu_args.h"
#include "cli/gpu_args.h"
#include "cli/process_info.h"
#include "cluster/wake_lock.h"
#include "model/kv_cache.h"
#include "net/keys.h"
#include "net/tokens.h"
#include "pipeline/worker.h"
#include "util/error.h"
#include "util/host.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/trace.h"

namespace colony {

namespace {

// EX_NOPERM (sysexits.h): refused or revoked; a restart would be refused too.
constexpr int kExitRefused = 77;

}  // namespace

int cmd_join(int argc, char **argv) {
    WorkerOptions o;
    std::string config_dir, cache_dir, cache_k = "f16", cache_v = "f16", trace;
    bool no_mmap = false, batch_invariant = false, no_wake_lock = false;
    float mem_limit = 0, join_timeout_s = 0, slowdown = 1, max_temp = 0;
    CpuArgs cpu;
    GpuArgs gpu;
    uint32_t data_port = 0;
    bool insecure = false;
    DiscoverArgs discover;
    ArgParser p("colony join",
                "Join a coordinator as a worker: take the layer range it assigns, fetch that\n"
                "range's shard (or find it in the cache), and compute it. Without --coordinator,\n"
                "find the coordinator on the local network whose key the token names.\n"
                "It prints a six-digit pairing code; the coordinator shows the same one (colony\n"
                "node list), and with --confirm-pairing waits until a person approves it there.\n"
                "Exit status 77 when the coordinator refuses or revokes this worker or its\n"
                "token: restarting it will not help (e.g. systemd RestartPreventExitStatus=77).");
    p.add("", "--coordinator", "HOST:PORT",
          "the coordinator's control socket (default: found by its LAN beacon)", &o.coordinator);
    p.add("", "--token", "TOKEN", "join token printed by colony serve", &o.token);
    p.add("", "--name", "NAME", "name shown by the coordinator (default: host name)", &o.name);
    p.add("", "--mem-limit", "GiB",
          "memory the planner may use on this worker (default: MemAvailable)", &mem_limit);
    add_discover_args(p, &discover);
    p.add("", "--status-interval-ms", "MS",
          "how often the device profile and stage timings go to the coordinator",
          &o.status_interval_ms);
    p.add("", "--debug-slowdown", "F",
          "debug: run this worker's stage F times slower (emulated heterogeneity)", &slowdown);
    p.add("", "--debug-control-file", "PATH",
          "debug: read the slow-down factor from PATH every second (emulated throttling)",
          &o.debug_control_file);
    p.add("", "--debug-logits-file", "PATH",
          "debug: as the last stage, append each sampled token and the logits of each "
          "sequence's first one to PATH (format: docs/pipeline.md)",
          &o.debug_logits_file);
    add_cpu_args(p, &cpu);
    add_gpu_args(p, &gpu);
    p.add("-ctk", "--cache-type-k", "TYPE",
          "KV cache type of K of this worker's stage: f32, f16, bf16, q8_0, q4_0, ...", &cache_k);
    p.add("-ctv", "--cache-type-v", "TYPE", "KV cache type of V of this worker's stage", &cache_v);
    p.flag("", "--no-mmap", "read the shard into memory instead of mapping the file", &no_mmap);
    std::string model_dir;
    p.add("", "--model-dir", "DIR",
          "a directory holding the model file (found by its SHA-256: its .sha256 record, which "
          "colony pull writes, else hashed once): the shard is cut from it here, with no transfer "
          "(e.g. colony pull's model cache)",
          &model_dir);
    bool no_hub_shards = false;
    p.flag("", "--no-hub-shards",
           "always fetch the shard from the coordinator, never from the hub the model came from "
           "(HF_ENDPOINT, HF_TOKEN; docs/models.md)",
           &no_hub_shards);
    p.flag("", "--batch-invariant",
           "bit-exact recovery: pad every ubatch so each position gets the same floats in a "
           "prefill as in a decode (slower decode; docs/pipeline.md)",
           &batch_invariant);
    p.add("", "--cache-dir", "DIR", "shard cache (default ~/.cache/colony/shards)", &cache_dir);
    p.add("", "--config-dir", "DIR", "node key (default ~/.config/colony/worker)", &config_dir);
    p.add("", "--data-host", "HOST", "interface of the data socket (* = all)", &o.data_host);
    p.add("", "--data-port", "N", "port of the data socket (0: any free port)", &data_port);
    p.add("", "--join-timeout", "S", "give up when not admitted within S seconds (0: never)",
          &join_timeout_s);
    p.add("", "--max-temp", "C",
          "halve the compute threads while the CPU is at or above C degrees Celsius, and double "
          "them back 5 degrees below (0 = off)",
          &max_temp);
    p.flag("", "--no-wake-lock",
           "under Termux, do not hold a wake lock (termux-wake-lock) while serving", &no_wake_lock);
    p.add("", "--coordinator-timeout-ms", "MS", "a coordinator silent this long is re-joined",
          &o.coordinator_timeout_ms);
    p.add("", "--trace", "FILE",
          "write a Chrome/Perfetto trace of every ubatch of this worker (receive, unpack, "
          "compute, pack, send, sampling) to FILE",
          &trace);
    p.flag("", "--insecure", "plaintext, no authentication (the coordinator must agree)",
           &insecure);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    if (print_devices_if_asked(gpu))
        return 0;
    if (!insecure && o.token.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "--token is required (or --insecure)");
    }
    if (data_port > 65535)
        throw Error(ErrorCode::kInvalidArgument, "--data-port must be 0..65535");
    if (!(slowdown >= 1 && slowdown <= 1000))
        throw Error(ErrorCode::kInvalidArgument, "--debug-slowdown must be in [1, 1000]");
    if (o.status_interval_ms < 100)
        throw Error(ErrorCode::kInvalidArgument, "--status-interval-ms must be at least 100");
    o.debug_slowdown = slowdown;
    if (o.coordinator.empty()) {
        // The token pins the coordinator's key: join the one whose beacon names it.
        const std::string fingerprint =
            insecure ? "" : key_fingerprint(join_token_parse(o.token).coordinator_public_z85);
        o.coordinator = discover_coordinator(discover, fingerprint);
    }
    o.data_port = static_cast<uint16_t>(data_port);
    o.mem_limit_gib = mem_limit;
    const CpuPlacement placement = resolve_cpu_args(cpu);
    o.n_threads = placement.n_threads;
    o.cpu = stage_affinity(placement);
    o.gpu = gpu.offload;
    o.max_temp_c = max_temp;
    COLONY_LOG_INFO("compute threads: %s", placement.describe().c_str());
    o.type_k = parse_cache_type(cache_k);
    o.type_v = parse_cache_type(cache_v);
    o.use_mmap = !no_mmap;
    o.hub_shards = !no_hub_shards;
    if (!model_dir.empty()) {
        o.model_dir = model_dir;
        o.hash_model_dir = true;
    }
    if (batch_invariant)
        o.invariance = StageConfig::Invariance::kFull;
    o.insecure = insecure;
    o.join_timeout_ms = static_cast<int>(join_timeout_s * 1000);
    o.config_dir = config_dir_or_default(config_dir, true);
    o.cache_dir = cache_dir_or_default(cache_dir);
    if (insecure) {
        COLONY_LOG_WARN("--insecure: this worker's traffic is plaintext and unauthenticated");
    }

    if (!trace.empty())
        trace_open(trace, "worker " + (o.name.empty() ? host_name().value_or("?") : o.name));
    block_stop_signals();
    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    Worker worker(o);
    if (!worker.pairing_code().empty()) {
        std::fprintf(stderr, "colony join: pairing code %s (the coordinator shows the same one)\n",
                     worker.pairing_code().c_str());
    }
    std::thread watcher([&] {
        while (!done.load()) {
            if (wait_stop_signal(200) != 0) {
                stop.store(true);
                return;
            }
        }
    });
    // under Termux: the phone stays awake while this worker serves (released on exit)
    const std::unique_ptr<WakeLock> wake_lock = no_wake_lock ? nullptr : WakeLock::for_termux();
    std::exception_ptr failure;
    try {
        worker.run(stop);
    } catch (...) {
        failure = std::current_exception();
    }
    done.store(true);
    watcher.join();
    std::fprintf(stderr,
                 "colony join: shard bytes received %llu | ubatches %llu | data bytes sent %llu | "
                 "peak RSS %.1f MB\n",
                 static_cast<unsigned long long>(worker.shard_bytes_received()),
                 static_cast<unsigned long long>(worker.ubatches()),
                 static_cast<unsigned long long>(worker.data_bytes_sent()), peak_rss_bytes() / 1e6);
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const Error &e) {
            if (e.code() != ErrorCode::kUnauthorized)
                throw;
            std::fprintf(stderr, "colony join: error: %s\n", e.what());
            return kExitRefused;
        }
    }
    return 0;
}

}  // namespace colony
