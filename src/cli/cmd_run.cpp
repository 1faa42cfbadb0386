// colony run: a whole cluster on this machine, over the real network path: a
// coordinator and N workers as separate processes talking CURVE over
// loopback TCP, with a fresh join token and their own config and cache
// directories under a temporary directory. The coordinator serves the
// OpenAI-compatible API and the dashboard (colony serve).
//
// The children die with it (ChildProcess: PR_SET_PDEATHSIG, even when run is
// killed by SIGKILL). The temporary directory is removed on exit (SIGINT,
// SIGTERM, an error); one left behind by a run killed with SIGKILL holds a
// "run.pid" of a process that is gone, and the next `colony run` removes it.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <cpp-httplib/httplib.h>
#include <nlohmann/json.hpp>

#include "cli/api_args.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/kv_args.h"
#include "cli/layer_args.h"
#include "cli/model_source.h"
#include "cli/spec_args.h"
#include "model/kv_cache.h"
#include "pipeline/child_process.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/trace.h"

namespace colony {

namespace {

constexpr int kReadyTimeoutMs = 60000;
constexpr int kHealthTimeoutMs = 120000;

struct RunOptions {
    std::string model, prompt, split, wire_type = "f16";
    std::string debug_logits_file;  // passed to every process; only the last stage writes
    std::string trace;              // --trace FILE: every process's events
    std::string cache_k = "f16", cache_v = "f16";  // KV cache types of every stage
    bool no_mmap = false;                          // every process reads its weights into memory
    bool batch_invariant = false;                  // every stage pads its ubatches (stage.h)
    KvWindow kv_window;                            // the coordinator's --kv-window/--kv-sinks
    SpecArgs spec;                                 // the coordinator's speculative decoding
    std::string skip_layers;                       // the coordinator's --skip-layers
    DynamicSkipArgs dyn_skip;                      // the coordinator's --dynamic-skip
    uint32_t workers = 1;
    int32_t n_predict = 128, threads = 0, seed = -1, top_k = 40;
    uint32_t n_ctx = 4096, parallel = 4;
    float temp = 0.8f, top_p = 0.95f, min_p = 0.05f;
    bool keep_dir = false;
    std::string model_dir;  // passed to every worker: build shards from the model file there
    ApiArgs api;            // passed on to the coordinator (colony serve)
};

/// An HTTP client for the coordinator's API (HTTPS when it serves TLS: its
/// certificate is the user's own, so it is not verified on loopback), with
/// the API key when there is one.
std::unique_ptr<httplib::Client> api_client(const RunOptions &o, uint16_t port) {
    const bool tls = !o.api.server.ssl_cert.empty();
    auto c = std::make_unique<httplib::Client>((tls ? "https://127.0.0.1:" : "http://127.0.0.1:") +
                                               std::to_string(port));
    if (!c->is_valid())
        throw Error(ErrorCode::kUnsupported, "this build of colony has no HTTPS client");
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    c->enable_server_certificate_verification(false);
#endif
    const char *key = std::getenv("COLONY_API_KEY");
    if (key && *key)
        c->set_bearer_token_auth(key);
    return c;
}

constexpr const char *kRunDirPrefix = "colony-run-";
constexpr const char *kRunPidFile = "run.pid";

/// Removes the temporary directories of earlier runs that were killed before
/// they could remove their own: this user's colony-run-* directories in
/// `tmp` whose run.pid names a process that no longer exists. A directory
/// without run.pid (--keep-dir, or one being created) is left alone.
void remove_stale_run_dirs(const std::filesystem::path &tmp) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
        const std::filesystem::path dir = it->path();
        struct stat st {};
        if (dir.filename().string().rfind(kRunDirPrefix, 0) != 0 ||
            ::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid())
            continue;
        std::ifstream in(dir / kRunPidFile);
        long pid = 0;
        if (!(in >> pid) || pid <= 0)
            continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
            continue;  // still running (or not ours to ask)
        std::error_code rm;
        std::filesystem::remove_all(dir, rm);
        if (!rm)
            COLONY_LOG_INFO("run: removed %s, left by colony run %ld, which was killed",
                            dir.c_str(), pid);
    }
}

/// The cluster's processes and their temporary directory.
class LocalCluster {
  public:
    explicit LocalCluster(bool keep_dir) : keep_(keep_dir) {
        const std::filesystem::path tmp = std::filesystem::temp_directory_path();
        remove_stale_run_dirs(tmp);
        std::string tmpl = (tmp / (std::string(kRunDirPrefix) + "XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) {
            throw Error(ErrorCode::kResource, "cannot create a temporary directory");
        }
        dir_ = tmpl;
        if (!keep_)  // a kept directory is never removed by a later run
            std::ofstream(dir_ / kRunPidFile) << ::getpid() << "\n";
    }
    ~LocalCluster() {
        for (auto it = workers_.rbegin(); it != workers_.rend(); ++it)
            if (*it)
                (*it)->stop();
        if (serve_)
            serve_->stop();
        if (!trace_out_.empty()) {
            try {
                merge_trace_files(trace_parts_, trace_out_);
                std::fprintf(stderr, "colony run: trace written to %s\n", trace_out_.c_str());
            } catch (const Error &e) {
                std::fprintf(stderr, "colony run: %s\n", e.what());
            }
        }
        if (keep_) {
            std::fprintf(stderr, "colony run: kept %s\n", dir_.c_str());
        } else {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }
    const std::filesystem::path &dir() const { return dir_; }
    std::string log(const std::string &name) const { return (dir_ / (name + ".log")).string(); }

    /// The last lines of a child's log, for error messages.
    std::string log_tail(const std::string &name) const {
        std::ifstream in(log(name));
        std::vector<std::string> lines;
        for (std::string l; std::getline(in, l);)
            lines.push_back(l);
        std::string out;
        for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) {
            out += "\n  " + name + ": " + lines[i];
        }
        return out;
    }

    /// The --trace argument for process `name`: its own file in the
    /// directory, merged into `out` when the cluster stops. Empty when out is.
    std::vector<std::string> trace_args(const std::string &out, const std::string &name) {
        if (out.empty())
            return {};
        trace_out_ = out;
        trace_parts_.push_back((dir_ / (name + ".trace.json")).string());
        return {"--trace", trace_parts_.back()};
    }

    std::unique_ptr<ChildProcess> serve_;
    std::vector<std::unique_ptr<ChildProcess>> workers_;
    std::vector<std::vector<std::string>> worker_argv_;  // to restart worker i
    std::vector<std::string> worker_log_;                // its log file ("" = inherit)
    std::vector<std::vector<std::chrono::steady_clock::time_point>> restarts_;

  private:
    std::filesystem::path dir_;
    bool keep_;
    std::string trace_out_;                 // --trace FILE ("" = none)
    std::vector<std::string> trace_parts_;  // each process's trace file
};

void check_alive(LocalCluster &c) {
    if (c.serve_ && !c.serve_->running()) {
        throw Error(ErrorCode::kUnavailable, "the coordinator exited (status " +
                                                 std::to_string(c.serve_->exit_code()) + ")" +
                                                 c.log_tail("coordinator"));
    }
    for (size_t i = 0; i < c.workers_.size(); ++i) {
        if (!c.workers_[i]->running()) {
            const std::string name = "worker-" + std::to_string(i + 1);
            throw Error(ErrorCode::kUnavailable, name + " exited (status " +
                                                     std::to_string(c.workers_[i]->exit_code()) +
                                                     ")" + c.log_tail(name));
        }
    }
}

/// Serving: a worker process that exited is started again with the same
/// key and shard cache (it rejoins; the coordinator replays what ran on it).
/// One that exits more than kMaxRestarts times within a minute is left out:
/// the cluster goes on without it.
void restart_exited_workers(LocalCluster &c) {
    constexpr size_t kMaxRestarts = 5;
    if (c.serve_ && !c.serve_->running())
        check_alive(c);  // the coordinator is gone: that ends the run
    const auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < c.workers_.size(); ++i) {
        if (!c.workers_[i] || c.workers_[i]->running())
            continue;
        const std::string name = "worker-" + std::to_string(i + 1);
        auto &times = c.restarts_[i];
        times.erase(std::remove_if(times.begin(), times.end(),
                                   [&](auto t) { return now - t > std::chrono::minutes(1); }),
                    times.end());
        if (times.size() >= kMaxRestarts) {
            COLONY_LOG_ERROR(
                "run: %s exited (status %d) %zu times within a minute; going on "
                "without it",
                name.c_str(), c.workers_[i]->exit_code(), times.size() + 1);
            c.workers_[i].reset();
            continue;
        }
        COLONY_LOG_WARN("run: %s exited (status %d); starting it again", name.c_str(),
                        c.workers_[i]->exit_code());
        times.push_back(now);
        c.workers_[i] = std::make_unique<ChildProcess>(c.worker_argv_[i], "", c.worker_log_[i]);
    }
}

nlohmann::json wait_ready_file(LocalCluster &c, const std::filesystem::path &file) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
    while (std::chrono::steady_clock::now() < end) {
        check_alive(c);
        std::ifstream in(file);
        if (in) {
            nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
            if (j.is_object())
                return j;
        }
        if (wait_stop_signal(50))
            throw Error(ErrorCode::kCancelled, "interrupted");
    }
    throw Error(ErrorCode::kUnavailable, "the coordinator did not start within " +
                                             std::to_string(kReadyTimeoutMs / 1000) + " s" +
                                             c.log_tail("coordinator"));
}

void wait_healthy(LocalCluster &c, const RunOptions &o, uint16_t api_port) {
    const auto http = api_client(o, api_port);
    http->set_connection_timeout(1);
    http->set_read_timeout(5);
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHealthTimeoutMs);
    std::string last;
    while (std::chrono::steady_clock::now() < end) {
        check_alive(c);
        if (auto res = http->Get("/health")) {
            if (res->status == 200)
                return;
            last = res->body;
        }
        if (wait_stop_signal(100))
            throw Error(ErrorCode::kCancelled, "interrupted");
    }
    throw Error(ErrorCode::kUnavailable,
                "the cluster did not become ready: " + last + c.log_tail("coordinator"));
}

std::string complete(uint16_t api_port, const RunOptions &o) {
    nlohmann::json req = {{"prompt", o.prompt},    {"max_tokens", o.n_predict},
                          {"temperature", o.temp}, {"top_k", o.top_k},
                          {"top_p", o.top_p},      {"min_p", o.min_p},
                          {"seed", o.seed}};
    const auto http = api_client(o, api_port);
    http->set_read_timeout(3600);
    auto res = http->Post("/v1/completions", req.dump(), "application/json");
    if (!res)
        throw Error(ErrorCode::kUnavailable, "no answer from the coordinator's API");
    const nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
    if (res->status != 200 || !j.is_object() || !j.contains("choices")) {
        std::string msg = res->body;
        if (j.is_object() && j.contains("error"))
            msg = j["error"].value("message", msg);
        throw Error(res->status == 400 ? ErrorCode::kInvalidArgument : ErrorCode::kUnavailable,
                    "completion failed (HTTP " + std::to_string(res->status) + "): " + msg);
    }
    const auto &usage = j["usage"];
    const int n_gen = usage.value("completion_tokens", 0);
    const double ttft = j["timings"].value("ttft_ms", 0.0);
    const double total = j["timings"].value("total_ms", 0.0);
    const double decode_tps =
        n_gen > 1 && total > ttft ? (n_gen - 1) * 1000.0 / (total - ttft) : 0.0;
    std::string spec;  // speculative decoding, when drafts were verified
    if (const int64_t drafted = j["timings"].value("draft_n", int64_t{0}); drafted > 0)
        spec = " | speculative: " + std::to_string(drafted) + " drafted, " +
               std::to_string(j["timings"].value("draft_n_accepted", int64_t{0})) + " accepted";
    std::fprintf(stderr,
                 "colony run: %u worker(s) | prompt %d tokens | TTFT %.2f ms | decode %.1f tok/s "
                 "(%d tokens, %s)%s\n",
                 o.workers, usage.value("prompt_tokens", 0), ttft, decode_tps, n_gen,
                 j["choices"][0].value("finish_reason", "?").c_str(), spec.c_str());
    return j["choices"][0].value("text", "");
}

/// The served model's name (GET /v1/models).
std::string served_model(const RunOptions &o, uint16_t api_port) {
    const auto http = api_client(o, api_port);
    if (auto res = http->Get("/v1/models")) {
        const nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
        if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty())
            return j["data"][0].value("id", "");
    }
    return "";
}

/// Arguments of `colony serve` for the API options given to run.
/// The stage options every process gets (-ctk, -ctv, --no-mmap,
/// --batch-invariant), only
/// those that differ from the defaults.
std::vector<std::string> stage_arguments(const RunOptions &o) {
    std::vector<std::string> args;
    if (o.cache_k != "f16")
        args.insert(args.end(), {"-ctk", o.cache_k});
    if (o.cache_v != "f16")
        args.insert(args.end(), {"-ctv", o.cache_v});
    if (o.no_mmap)
        args.push_back("--no-mmap");
    if (o.batch_invariant)
        args.push_back("--batch-invariant");
    return args;
}

void add_api_arguments(const ApiArgs &a, std::vector<std::string> &argv) {
    const ApiArgs defaults;
    auto add = [&](const char *flag, const std::string &value) {
        argv.push_back(flag);
        argv.push_back(value);
    };
    if (!a.alias.empty())
        add("--alias", a.alias);
    if (!a.server.ssl_cert.empty())
        add("--ssl-cert", std::filesystem::absolute(a.server.ssl_cert).string());
    if (!a.server.ssl_key.empty())
        add("--ssl-key", std::filesystem::absolute(a.server.ssl_key).string());
    if (a.queue_size != defaults.queue_size)
        add("--queue-size", std::to_string(a.queue_size));
    if (a.max_body_bytes != defaults.max_body_bytes)
        add("--max-body-bytes", std::to_string(a.max_body_bytes));
    if (a.server.max_prompt_tokens != defaults.server.max_prompt_tokens)
        add("--max-prompt-tokens", std::to_string(a.server.max_prompt_tokens));
    if (a.server.max_tokens_limit != defaults.server.max_tokens_limit)
        add("--max-tokens-limit", std::to_string(a.server.max_tokens_limit));
}

}  // namespace

int cmd_run(int argc, char **argv) {
    RunOptions o;
    ArgParser p("colony run",
                "Start a whole cluster on this machine: a coordinator and N workers as separate\n"
                "processes over loopback TCP with CURVE. With -p, print the completion and exit;\n"
                "without, serve the OpenAI-compatible API and the dashboard on 127.0.0.1 until\n"
                "interrupted (--api-port: default 8080; with -p any free port).");
    p.add("-m", "--model", "MODEL",
          "GGUF model file, or a hub model to pull first (colony pull --help)", &o.model, true);
    p.add("", "--workers", "N", "worker processes", &o.workers);
    add_api_args(p, o.api);
    p.add("-p", "--prompt", "TEXT", "prompt: print its completion and exit", &o.prompt);
    p.add("-n", "--n-predict", "N", "tokens to generate", &o.n_predict);
    p.add("", "--temp", "T", "temperature; 0 = greedy", &o.temp);
    p.add("", "--top-k", "K", "top-k sampling, 0 = off", &o.top_k);
    p.add("", "--top-p", "P", "top-p sampling, 1 = off", &o.top_p);
    p.add("", "--min-p", "P", "min-p sampling, 0 = off", &o.min_p);
    p.add("", "--seed", "S", "sampling seed, -1 = random", &o.seed);
    p.add("", "--split", "RANGES", "layer ranges per stage, coordinator first, e.g. 0:3,3:5",
          &o.split);
    p.add("", "--wire-type", "TYPE", "hidden states on the wire: f16, f32 or q8_0", &o.wire_type);
    p.add("-c", "--ctx-size", "N", "KV cache cells per stage", &o.n_ctx);
    p.add("", "--parallel", "N", "sequences in flight at once", &o.parallel);
    p.add("-t", "--threads", "N", "compute threads per process (default: cores / processes)",
          &o.threads);
    p.add("-ctk", "--cache-type-k", "TYPE",
          "KV cache type of K of every stage: f32, f16, bf16, q8_0, q4_0, ...", &o.cache_k);
    p.add("-ctv", "--cache-type-v", "TYPE", "KV cache type of V of every stage", &o.cache_v);
    p.flag("", "--no-mmap", "every process reads its weights into memory", &o.no_mmap);
    add_kv_window_args(p, &o.kv_window);
    add_skip_layers_arg(p, &o.skip_layers);
    add_dynamic_skip_args(p, &o.dyn_skip);
    add_spec_args(p, &o.spec);
    p.flag("", "--batch-invariant",
           "bit-exact recovery: every stage pads its ubatches (slower decode; docs/pipeline.md)",
           &o.batch_invariant);
    p.add("", "--debug-logits-file", "PATH",
          "debug: the last stage appends each sampled token and the logits of each sequence's "
          "first one to PATH (format: docs/pipeline.md)",
          &o.debug_logits_file);
    p.add("", "--trace", "FILE",
          "write a Chrome/Perfetto trace of every ubatch in every process (compute, send, "
          "receive, sampling, queueing) to FILE (open it in ui.perfetto.dev)",
          &o.trace);
    p.flag("", "--keep-dir", "keep the temporary directory (logs, keys, shards)", &o.keep_dir);
    p.add("", "--model-dir", "DIR",
          "each worker cuts its shard from the model file in DIR (recognized by its SHA-256) "
          "instead of receiving it: colony join --model-dir",
          &o.model_dir);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    std::string model_url;  // workers build their shards from the hub too
    o.model = resolve_model_arg(o.model, &model_url);
    if (o.workers < 1 || o.workers > 64) {
        throw Error(ErrorCode::kInvalidArgument, "--workers must be in 1..64");
    }
    if (!std::filesystem::is_regular_file(o.model)) {
        throw Error(ErrorCode::kNotFound, "model file " + o.model + " not found");
    }
    const bool one_shot = !o.prompt.empty();
    if (o.api.api_port < -1 || o.api.api_port > 65535)
        throw Error(ErrorCode::kInvalidArgument, "--api-port must be 0..65535");
    const int api_port = o.api.api_port >= 0 ? o.api.api_port : (one_shot ? 0 : 8080);
    if (o.api.server.ssl_cert.empty() != o.api.server.ssl_key.empty())
        throw Error(ErrorCode::kInvalidArgument, "--ssl-cert and --ssl-key must be given together");
    // the key reaches the coordinator through its environment, not its command line
    if (!o.api.server.api_key.empty())
        ::setenv("COLONY_API_KEY", o.api.server.api_key.c_str(), 1);
    (void)parse_cache_type(o.cache_k);  // a bad type fails here, not in a child
    (void)parse_cache_type(o.cache_v);
    const std::vector<std::string> stage_args = stage_arguments(o);
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const int threads = o.threads > 0 ? o.threads : std::max(1, int(cores / (o.workers + 1)));
    const std::string model = std::filesystem::absolute(o.model).string();
    const std::string exe = self_executable();

    block_stop_signals();
    LocalCluster cluster(o.keep_dir);
    const auto sub = [&](const std::string &name) { return (cluster.dir() / name).string(); };
    const std::filesystem::path ready = cluster.dir() / "ready.json";
    std::vector<std::string> serve = {exe,
                                      "serve",
                                      "-m",
                                      model,
                                      "--host",
                                      "127.0.0.1",
                                      "--port",
                                      "0",
                                      "--api-port",
                                      std::to_string(api_port),
                                      "--workers-expected",
                                      std::to_string(o.workers),
                                      "--config-dir",
                                      sub("coordinator/config"),
                                      "--cache-dir",
                                      sub("coordinator/cache"),
                                      "--ready-file",
                                      ready.string(),
                                      "--wire-type",
                                      o.wire_type,
                                      "-c",
                                      std::to_string(o.n_ctx),
                                      "--parallel",
                                      std::to_string(o.parallel),
                                      "-t",
                                      std::to_string(threads)};
    if (!o.split.empty()) {
        serve.push_back("--split");
        serve.push_back(o.split);
    }
    if (!model_url.empty()) {
        serve.push_back("--model-url");
        serve.push_back(model_url);
    }
    const std::string logits_file =
        o.debug_logits_file.empty() ? "" : std::filesystem::absolute(o.debug_logits_file).string();
    if (!logits_file.empty()) {
        serve.push_back("--debug-logits-file");
        serve.push_back(logits_file);
    }
    add_api_arguments(o.api, serve);
    serve.insert(serve.end(), stage_args.begin(), stage_args.end());
    if (o.kv_window.window > 0 || o.kv_window.sinks > 0) {
        serve.insert(serve.end(), {"--kv-window", std::to_string(o.kv_window.window), "--kv-sinks",
                                   std::to_string(o.kv_window.sinks)});
    }
    for (const std::string &a : spec_arguments(o.spec))
        serve.push_back(a);
    if (!o.skip_layers.empty())
        serve.insert(serve.end(), {"--skip-layers", o.skip_layers});
    if (o.dyn_skip.threshold > 0) {
        char cos[32];
        std::snprintf(cos, sizeof(cos), "%.9g", o.dyn_skip.threshold);
        serve.insert(serve.end(), {"--dynamic-skip", cos, "--skip-probe",
                                   std::to_string(o.dyn_skip.probe)});
        if (!o.dyn_skip.hot.empty())
            serve.insert(serve.end(), {"--hot-layers", o.dyn_skip.hot});
    }
    const std::string trace_out =
        o.trace.empty() ? "" : std::filesystem::absolute(o.trace).string();
    for (const std::string &a : cluster.trace_args(trace_out, "coordinator"))
        serve.push_back(a);
    const std::string out_log = cluster.log("coordinator.out");
    cluster.serve_ =
        std::make_unique<ChildProcess>(serve, out_log, one_shot ? cluster.log("coordinator") : "");
    const nlohmann::json info = wait_ready_file(cluster, ready);
    const uint16_t control_port = info.value("control_port", 0);
    const uint16_t api = info.value("api_port", 0);
    const std::string token = info.value("token", "");
    for (uint32_t i = 1; i <= o.workers; ++i) {
        const std::string name = "worker-" + std::to_string(i);
        std::vector<std::string> join = {exe,
                                         "join",
                                         "--coordinator",
                                         "127.0.0.1:" + std::to_string(control_port),
                                         "--token",
                                         token,
                                         "--name",
                                         name,
                                         "--config-dir",
                                         sub(name + "/config"),
                                         "--cache-dir",
                                         sub(name + "/cache"),
                                         "--data-host",
                                         "127.0.0.1",
                                         "-t",
                                         std::to_string(threads),
                                         "--join-timeout",
                                         "60"};
        if (!logits_file.empty()) {
            join.push_back("--debug-logits-file");
            join.push_back(logits_file);
        }
        if (!o.model_dir.empty()) {
            join.push_back("--model-dir");
            join.push_back(std::filesystem::absolute(o.model_dir).string());
        }
        join.insert(join.end(), stage_args.begin(), stage_args.end());
        for (const std::string &a : cluster.trace_args(trace_out, name))
            join.push_back(a);
        const std::string log = one_shot ? cluster.log(name) : "";
        cluster.workers_.push_back(std::make_unique<ChildProcess>(join, "", log));
        cluster.worker_argv_.push_back(join);
        cluster.worker_log_.push_back(log);
        cluster.restarts_.emplace_back();
    }
    wait_healthy(cluster, o, api);

    if (one_shot) {
        const std::string text = complete(api, o);
        std::fputs(o.prompt.c_str(), stdout);
        std::fputs(text.c_str(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
        return 0;
    }
    const std::string url = std::string(o.api.server.ssl_cert.empty() ? "http" : "https") +
                            "://127.0.0.1:" + std::to_string(api);
    std::printf("colony: listening on %s/\n", url.c_str());
    std::printf("colony: model %s ready\n", served_model(o, api).c_str());
    std::printf(
        "colony run: a coordinator and %u worker(s) serve %s/v1/chat/completions, "
        "/v1/completions, /v1/embeddings, /v1/responses, /v1/messages and Ollama's /api/*; "
        "dashboard %s/ (Ctrl-C stops them)\n",
        o.workers, url.c_str(), url.c_str());
    std::fflush(stdout);
    for (;;) {
        if (const int sig = wait_stop_signal(200)) {
            COLONY_LOG_INFO("run: signal %d, stopping the cluster", sig);
            return 0;
        }
        restart_exited_workers(cluster);
    }
}

}  // namespace colony
