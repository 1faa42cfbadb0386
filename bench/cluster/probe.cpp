// colony-bench-probe: one process, one model, the per-request figures that
// llama-bench does not print: model load time (for llama.cpp RPC this includes
// pushing the weights to the rpc-servers), TTFT of an N-token prompt, prefill
// tokens/s, and the time of every decode step (for p50/p90/p99), plus the bytes
// that crossed a network interface in each phase and the peak RSS.
//
// Engines: "llama" (libllama of the pinned tree, optionally with the ggml RPC
// backend: --rpc, --ngl, --ts as llama-bench names them) and "colony" (colony's
// Stage over the whole model, a cluster of one). Both run the same loop:
//
//   load -> warm-up (one prompt + 2 steps) -> R times: { clear the KV cache,
//   prefill N random tokens, argmax of the last token's logits (TTFT ends),
//   G decode steps, each: one token -> logits -> argmax (one time per token) }
//
// Unlike llama-bench's tg test (G steps from an empty KV cache), decode here
// follows the prompt, as it does for a user (depth N).
//
// Prints one JSON object on stdout (see print_result for the fields); errors go
// to stderr with exit code 1.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "nlohmann/json.hpp"
#include "runtime/stage.h"
#include "util/error.h"

namespace colony {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// Command-line options; names follow llama-bench where they mean the same.
struct ProbeOptions {
    std::string engine = "llama";  // "llama" or "colony"
    std::string model;
    int threads = 1;
    int n_prompt = 512;    // prompt tokens (TTFT, prefill)
    int n_gen = 128;       // decode steps per repetition
    int reps = 3;          // timed repetitions
    int n_ubatch = 512;    // tokens per prefill step
    std::string rpc;       // llama: comma-separated host:port of rpc-servers
    int ngl = -1;          // llama: layers offloaded to the RPC devices (-1: all when --rpc is set)
    std::string ts;        // llama: tensor split "a/b/..." over the RPC devices
    std::string iface;     // network interface whose counters are read per phase ("" = none)
    uint32_t seed = 1234;  // prompt tokens
};

[[noreturn]] void usage_error(const std::string &msg) {
    throw Error(ErrorCode::kInvalidArgument, msg + " (see colony-bench-probe --help)");
}

int to_int(const std::string &flag, const char *v) {
    try {
        size_t used = 0;
        const int x = std::stoi(v, &used);
        if (used != std::strlen(v))
            throw std::invalid_argument(v);
        return x;
    } catch (const std::exception &) {
        usage_error(flag + " needs an integer, got '" + v + "'");
    }
}

const char *kUsage =
    "usage: colony-bench-probe -m MODEL [options]\n"
    "  --engine llama|colony   engine (default llama)\n"
    "  -t N                    threads (default 1)\n"
    "  -p N                    prompt tokens (default 512)\n"
    "  -n N                    decode steps per repetition (default 128)\n"
    "  -r N                    repetitions (default 3)\n"
    "  -ub N                   ubatch size (default 512)\n"
    "  --rpc HOST:PORT,...     llama: rpc-servers (ggml RPC backend)\n"
    "  -ngl N                  llama: layers on the RPC devices (default: all + output)\n"
    "  -ts A/B/...             llama: tensor split over the RPC devices\n"
    "  --iface NAME            read /sys/class/net/NAME/statistics per phase\n"
    "  --seed S                prompt token seed (default 1234)\n";

ProbeOptions parse_args(int argc, char **argv) {
    ProbeOptions o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (i + 1 >= argc)
            usage_error(a + " needs a value or is unknown");
        const char *v = argv[++i];
        if (a == "--engine")
            o.engine = v;
        else if (a == "-m" || a == "--model")
            o.model = v;
        else if (a == "-t" || a == "--threads")
            o.threads = to_int(a, v);
        else if (a == "-p" || a == "--n-prompt")
            o.n_prompt = to_int(a, v);
        else if (a == "-n" || a == "--n-gen")
            o.n_gen = to_int(a, v);
        else if (a == "-r" || a == "--repetitions")
            o.reps = to_int(a, v);
        else if (a == "-ub" || a == "--ubatch-size")
            o.n_ubatch = to_int(a, v);
        else if (a == "--rpc")
            o.rpc = v;
        else if (a == "-ngl" || a == "--n-gpu-layers")
            o.ngl = to_int(a, v);
        else if (a == "-ts" || a == "--tensor-split")
            o.ts = v;
        else if (a == "--iface")
            o.iface = v;
        else if (a == "--seed")
            o.seed = static_cast<uint32_t>(to_int(a, v));
        else
            usage_error("unknown option " + a);
    }
    if (o.model.empty())
        usage_error("-m MODEL is required");
    if (o.engine != "llama" && o.engine != "colony")
        usage_error("--engine must be llama or colony");
    if (o.threads <= 0 || o.n_prompt <= 0 || o.n_gen <= 0 || o.reps <= 0 || o.n_ubatch <= 0) {
        usage_error("-t, -p, -n, -r and -ub must be positive");
    }
    if (o.engine == "colony" && (!o.rpc.empty() || !o.ts.empty() || o.ngl >= 0)) {
        usage_error("--rpc, -ngl and -ts apply to --engine llama only");
    }
    return o;
}

/// rx_bytes + tx_bytes of one interface (0 when iface is empty); throws
/// kNotFound when the counters cannot be read.
uint64_t iface_bytes(const std::string &iface) {
    if (iface.empty())
        return 0;
    uint64_t sum = 0;
    for (const char *dir : {"rx_bytes", "tx_bytes"}) {
        const std::string path = "/sys/class/net/" + iface + "/statistics/" + dir;
        std::ifstream in(path);
        uint64_t v = 0;
        if (!(in >> v))
            throw Error(ErrorCode::kNotFound, "cannot read " + path);
        sum += v;
    }
    return sum;
}

/// VmHWM (peak resident set) of this process in KiB, 0 if unknown.
uint64_t peak_rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0)
            return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    return 0;
}

int32_t argmax(const float *logits, int32_t n) {
    return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

/// What the measurement loop needs from an engine; positions run from 0 after reset().
class Engine {
  public:
    virtual ~Engine() = default;
    virtual int32_t n_vocab() const = 0;
    virtual void reset() = 0;
    /// Runs the prompt (in ubatches) and returns the argmax of the last token's logits.
    virtual int32_t prefill(const std::vector<int32_t> &tokens) = 0;
    /// Runs one token at the next position and returns the argmax of its logits.
    virtual int32_t decode(int32_t token) = 0;
    virtual nlohmann::json describe() const = 0;
};

struct LlamaModelDeleter {
    void operator()(llama_model *m) const { llama_model_free(m); }
};
struct LlamaContextDeleter {
    void operator()(llama_context *c) const { llama_free(c); }
};
struct ThreadpoolDeleter {
    void operator()(ggml_threadpool *t) const { ggml_threadpool_free(t); }
};

/// Registers each "host:port" as an RPC device, as llama-bench's --rpc does
/// (tools/llama-bench/llama-bench.cpp, register_rpc_server_list).
void register_rpc_servers(const std::string &list) {
    ggml_backend_reg_t rpc_reg = ggml_backend_reg_by_name("RPC");
    if (!rpc_reg)
        throw Error(ErrorCode::kUnsupported, "this build has no ggml RPC backend (GGML_RPC=OFF)");
    using add_server_fn = ggml_backend_reg_t (*)(const char *endpoint);
    auto add = reinterpret_cast<add_server_fn>(
        ggml_backend_reg_get_proc_address(rpc_reg, "ggml_backend_rpc_add_server"));
    if (!add)
        throw Error(ErrorCode::kUnsupported, "ggml_backend_rpc_add_server not found");
    size_t start = 0;
    while (start <= list.size()) {
        size_t end = list.find(',', start);
        if (end == std::string::npos)
            end = list.size();
        const std::string ep = list.substr(start, end - start);
        if (!ep.empty()) {
            ggml_backend_reg_t reg = add(ep.c_str());
            if (!reg)
                throw Error(ErrorCode::kUnavailable, "cannot reach rpc-server " + ep);
            ggml_backend_register(reg);
        }
        start = end + 1;
    }
}

/// libllama with llama-bench's settings: flash attention on, mmap, one
/// persistent threadpool, n_batch = n_ubatch.
class LlamaEngine final : public Engine {
  public:
    explicit LlamaEngine(const ProbeOptions &o) : o_(o) {
        llama_model_params mp = llama_model_default_params();
        mp.progress_callback = [](float, void *) { return true; };  // no progress dots on stderr
        split_.assign(llama_max_devices(), 0.0f);
        if (!o.rpc.empty()) {
            register_rpc_servers(o.rpc);
            mp.n_gpu_layers = o.ngl >= 0 ? o.ngl : 999;
            parse_split(o.ts);
            mp.tensor_split = split_.data();
        } else {
            mp.n_gpu_layers = 0;
        }
        model_.reset(llama_model_load_from_file(o.model.c_str(), mp));
        if (!model_)
            throw Error(ErrorCode::kNotFound, "libllama could not load " + o.model);
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = static_cast<uint32_t>(o.n_prompt + o.n_gen + 16);
        cp.n_batch = cp.n_ubatch = static_cast<uint32_t>(o.n_ubatch);
        cp.n_threads = cp.n_threads_batch = o.threads;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        ctx_.reset(llama_init_from_model(model_.get(), cp));
        if (!ctx_)
            throw Error(ErrorCode::kResource, "libllama could not create a context for " + o.model);
        ggml_threadpool_params tpp = ggml_threadpool_params_default(o.threads);
        pool_.reset(ggml_threadpool_new(&tpp));
        if (!pool_)
            throw Error(ErrorCode::kResource, "cannot create a threadpool");
        llama_attach_threadpool(ctx_.get(), pool_.get(), nullptr);
        n_vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_.get()));
    }

    int32_t n_vocab() const override { return n_vocab_; }
    void reset() override { llama_memory_clear(llama_get_memory(ctx_.get()), false); }

    int32_t prefill(const std::vector<int32_t> &tokens) override {
        std::vector<llama_token> buf(tokens.begin(), tokens.end());
        for (size_t i = 0; i < buf.size(); i += static_cast<size_t>(o_.n_ubatch)) {
            const auto n = static_cast<int32_t>(std::min<size_t>(o_.n_ubatch, buf.size() - i));
            decode_or_throw(
                llama_batch_get_one(buf.data() + i, n));  // logits of the last token only
        }
        return argmax(llama_get_logits_ith(ctx_.get(), -1), n_vocab_);
    }

    int32_t decode(int32_t token) override {
        llama_token t = token;
        decode_or_throw(llama_batch_get_one(&t, 1));
        return argmax(llama_get_logits_ith(ctx_.get(), -1), n_vocab_);
    }

    nlohmann::json describe() const override {
        char desc[256];
        llama_model_desc(model_.get(), desc, sizeof(desc));
        nlohmann::json devs = nlohmann::json::array();
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i)
            devs.push_back(ggml_backend_dev_name(ggml_backend_dev_get(i)));
        return {{"desc", desc},
                {"n_layer", llama_model_n_layer(model_.get())},
                {"n_embd", llama_model_n_embd(model_.get())},
                {"n_vocab", n_vocab_},
                {"model_bytes", llama_model_size(model_.get())},
                {"devices", devs}};
    }

  private:
    ProbeOptions o_;
    std::vector<float> split_;
    std::unique_ptr<llama_model, LlamaModelDeleter> model_;
    std::unique_ptr<llama_context, LlamaContextDeleter> ctx_;
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> pool_;
    int32_t n_vocab_ = 0;

    void parse_split(const std::string &ts) {
        size_t i = 0, start = 0;
        while (!ts.empty() && start <= ts.size()) {
            size_t end = ts.find_first_of("/,", start);
            if (end == std::string::npos)
                end = ts.size();
            if (i >= split_.size())
                throw Error(ErrorCode::kInvalidArgument, "-ts has more parts than devices");
            try {
                split_[i++] = std::stof(ts.substr(start, end - start));
            } catch (const std::exception &) {
                throw Error(ErrorCode::kInvalidArgument, "-ts: bad number in '" + ts + "'");
            }
            start = end + 1;
        }
    }

    void decode_or_throw(llama_batch b) {
        const int rc = llama_decode(ctx_.get(), b);
        if (rc != 0)
            throw Error(ErrorCode::kInternal, "llama_decode failed with " + std::to_string(rc));
    }
};

/// colony's Stage over every layer of the model (a cluster of one), with the
/// settings of colony bench (StageConfig defaults: mmap, repacking, f16 KV).
class ColonyEngine final : public Engine {
  public:
    explicit ColonyEngine(const ProbeOptions &o) : o_(o) {
        std::shared_ptr<const GgufFile> file = GgufFile::open(o.model);
        hp_ = ModelHparams::from_gguf(*file);
        StageConfig cfg;
        cfg.range = {0, hp_.n_layer};
        cfg.n_ctx = static_cast<uint32_t>(o.n_prompt + o.n_gen + 16);
        cfg.n_ubatch = static_cast<uint32_t>(o.n_ubatch);
        cfg.n_threads = o.threads;
        stage_ = std::make_unique<Stage>(file, hp_, cfg);
    }

    int32_t n_vocab() const override { return static_cast<int32_t>(hp_.n_vocab); }
    void reset() override {
        stage_->seq_rm(0);
        pos_ = 0;
    }

    int32_t prefill(const std::vector<int32_t> &tokens) override {
        const float *logits = nullptr;
        for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(o_.n_ubatch)) {
            const auto n = static_cast<uint32_t>(std::min<size_t>(o_.n_ubatch, tokens.size() - i));
            logits = forward(tokens.data() + i, n);
        }
        return argmax(logits, n_vocab());
    }

    int32_t decode(int32_t token) override { return argmax(forward(&token, 1), n_vocab()); }

    nlohmann::json describe() const override {
        return {{"desc", hp_.arch_name},
                {"n_layer", hp_.n_layer},
                {"n_embd", hp_.n_embd},
                {"n_vocab", hp_.n_vocab},
                {"model_bytes", stage_->weight_bytes()}};
    }

  private:
    ProbeOptions o_;
    ModelHparams hp_;
    std::unique_ptr<Stage> stage_;
    int32_t pos_ = 0;

    const float *forward(const int32_t *tokens, uint32_t n) {
        std::vector<int32_t> pos(n), seq(n, 0);
        for (uint32_t i = 0; i < n; ++i)
            pos[i] = pos_ + static_cast<int32_t>(i);
        const int32_t row = static_cast<int32_t>(n - 1);
        Ubatch ub{n, tokens, nullptr, pos.data(), seq.data(), &row, 1};
        const float *out = stage_->forward(ub);
        pos_ += static_cast<int32_t>(n);
        return out;
    }
};

/// One repetition: TTFT (ms), prefill tokens/s, per-step decode times (ms),
/// and the interface bytes of each phase.
struct RepResult {
    double ttft_ms = 0;
    std::vector<double> step_ms;
    uint64_t prefill_bytes = 0, decode_bytes = 0;
};

RepResult run_once(Engine &e, const ProbeOptions &o, std::mt19937 &rng, int n_gen) {
    std::uniform_int_distribution<int32_t> tok(0, e.n_vocab() - 1);
    std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
    for (auto &t : prompt)
        t = tok(rng);
    e.reset();
    RepResult r;
    const uint64_t b0 = iface_bytes(o.iface);
    const auto t0 = Clock::now();
    int32_t next = e.prefill(prompt);
    r.ttft_ms = ms_since(t0);
    const uint64_t b1 = iface_bytes(o.iface);
    r.step_ms.reserve(static_cast<size_t>(n_gen));
    for (int i = 0; i < n_gen; ++i) {
        const auto ts = Clock::now();
        next = e.decode(next);
        r.step_ms.push_back(ms_since(ts));
    }
    const uint64_t b2 = iface_bytes(o.iface);
    r.prefill_bytes = b1 - b0;
    r.decode_bytes = b2 - b1;
    return r;
}

int probe_main(int argc, char **argv) {
    const ProbeOptions o = parse_args(argc, argv);
    llama_log_set(
        [](ggml_log_level level, const char *text, void *) {
            if (level >= GGML_LOG_LEVEL_ERROR)
                std::fputs(text, stderr);
        },
        nullptr);
    llama_backend_init();

    const uint64_t nb0 = iface_bytes(o.iface);
    const auto t_load = Clock::now();
    std::unique_ptr<Engine> engine;
    if (o.engine == "llama")
        engine = std::make_unique<LlamaEngine>(o);
    else
        engine = std::make_unique<ColonyEngine>(o);
    const double load_ms = ms_since(t_load);
    const uint64_t load_bytes = iface_bytes(o.iface) - nb0;
    const uint64_t rss_after_load = peak_rss_kib();

    std::mt19937 rng(o.seed);
    run_once(*engine, o, rng, 2);  // warm-up, not reported
    nlohmann::json reps = nlohmann::json::array();
    for (int r = 0; r < o.reps; ++r) {
        const RepResult rr = run_once(*engine, o, rng, o.n_gen);
        reps.push_back({{"ttft_ms", rr.ttft_ms},
                        {"prefill_tps", o.n_prompt / (rr.ttft_ms / 1e3)},
                        {"step_ms", rr.step_ms},
                        {"prefill_bytes", rr.prefill_bytes},
                        {"decode_bytes", rr.decode_bytes}});
    }
    const nlohmann::json out = {{"probe", 1},
                                {"engine", o.engine},
                                {"model_path", o.model},
                                {"model", engine->describe()},
                                {"threads", o.threads},
                                {"n_prompt", o.n_prompt},
                                {"n_gen", o.n_gen},
                                {"rpc", o.rpc},
                                {"ngl", o.ngl},
                                {"ts", o.ts},
                                {"iface", o.iface},
                                {"load_ms", load_ms},
                                {"load_bytes", load_bytes},
                                {"rss_after_load_kib", rss_after_load},
                                {"peak_rss_kib", peak_rss_kib()},
                                {"reps", reps}};
    std::printf("%s\n", out.dump().c_str());
    engine.reset();
    llama_backend_free();
    return 0;
}

}  // namespace
}  // namespace colony

int main(int argc, char **argv) {
    try {
        return colony::probe_main(argc, argv);
    } catch (const colony::Error &e) {
        std::fprintf(stderr, "colony-bench-probe: error: %s: %s\n",
                     colony::error_code_name(e.code()), e.what());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "colony-bench-probe: error: %s\n", e.what());
    }
    return 1;
}
