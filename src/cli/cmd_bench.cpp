// colony bench: prefill (ppN) and decode (tgN) tokens/s of colony's stage and
// of llama.cpp's llama-bench (same tree, same ggml flags, same model, same
// threads, flash attention on both), side by side in one table.
//
// Method (as llama-bench, tools/llama-bench/llama-bench.cpp test_prompt/test_gen):
// random tokens, one warm-up run, then R timed repetitions from an empty KV cache;
// pp: the prompt in ubatches of 512 with the logits of the last token; tg: N
// single-token decode steps, each producing logits.
#include <unistd.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "nlohmann/json.hpp"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

struct Stat {
    double mean = 0, stddev = 0;
};

Stat stat_of(const std::vector<double> &v) {
    Stat s;
    if (v.empty())
        return s;
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double var = 0;
    for (double x : v)
        var += (x - s.mean) * (x - s.mean);
    s.stddev = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0;
    return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// tokens/s of R repetitions of a prompt of n_prompt tokens, after a warm-up.
Stat colony_pp(Stage &stage, int n_prompt, int reps, std::mt19937 &rng) {
    const uint32_t n_ub = stage.config().n_ubatch;
    std::uniform_int_distribution<int32_t> tok(0,
                                               static_cast<int32_t>(stage.hparams().n_vocab) - 1);
    std::vector<int32_t> tokens(n_prompt), pos(n_prompt), seq(n_prompt, 0);
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<double> tps;
    for (int r = 0; r <= reps; ++r) {
        for (auto &t : tokens)
            t = tok(rng);
        stage.seq_rm(0);
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n_prompt; i += static_cast<int>(n_ub)) {
            const uint32_t n = std::min<uint32_t>(n_ub, static_cast<uint32_t>(n_prompt - i));
            const int32_t row = static_cast<int32_t>(n - 1);
            Ubatch ub{n, tokens.data() + i, nullptr, pos.data() + i, seq.data(), &row, 1};
            stage.forward(ub);
        }
        if (r > 0)
            tps.push_back(n_prompt / seconds_since(t0));  // r == 0 is the warm-up
    }
    return stat_of(tps);
}

Stat colony_tg(Stage &stage, int n_gen, int reps, std::mt19937 &rng) {
    std::uniform_int_distribution<int32_t> tok(0,
                                               static_cast<int32_t>(stage.hparams().n_vocab) - 1);
    std::vector<double> tps;
    const int32_t seq = 0, row = 0;
    for (int r = 0; r <= reps; ++r) {
        stage.seq_rm(0);
        const int steps = r == 0 ? 1 : n_gen;
        const auto t0 = std::chrono::steady_clock::now();
        for (int32_t p = 0; p < steps; ++p) {
            const int32_t t = tok(rng);
            Ubatch ub{1, &t, nullptr, &p, &seq, &row, 1};
            stage.forward(ub);
        }
        if (r > 0)
            tps.push_back(n_gen / seconds_since(t0));
    }
    return stat_of(tps);
}

/// Runs llama-bench and returns {pp, tg} tokens/s; empty stats on failure.
std::array<Stat, 2> llama_bench(const std::string &bin, const std::string &model, int threads,
                                int n_prompt, int n_gen, int reps) {
    const std::string cmd = "'" + bin + "' -m '" + model + "' -t " + std::to_string(threads) +
                            " -p " + std::to_string(n_prompt) + " -n " + std::to_string(n_gen) +
                            " -r " + std::to_string(reps) + " -fa 1 -o json 2>/dev/null";
    std::array<Stat, 2> out{};
    std::unique_ptr<FILE, int (*)(FILE *)> pipe(popen(cmd.c_str(), "r"), pclose);
    if (!pipe)
        return out;
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe.get())) > 0)
        text.append(buf, n);
    try {
        for (const auto &row : nlohmann::json::parse(text)) {
            const int idx = row.value("n_gen", 0) > 0 ? 1 : 0;
            out[idx] = {row.value("avg_ts", 0.0), row.value("stddev_ts", 0.0)};
        }
    } catch (const std::exception &e) {
        COLONY_LOG_WARN("could not parse llama-bench output: %s", e.what());
    }
    return out;
}

std::string cell(const Stat &s) {
    if (s.mean <= 0)
        return "n/a";
    char b[64];
    std::snprintf(b, sizeof(b), "%.2f ± %.2f", s.mean, s.stddev);
    return b;
}

std::string default_llama_bench() {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return "llama-bench";
    std::string dir(self, static_cast<size_t>(n));
    return dir.substr(0, dir.rfind('/')) + "/llama-bench";
}

}  // namespace

int cmd_bench(int argc, char **argv) {
    std::string models_arg, llama_bin = default_llama_bench();
    int32_t threads = 0, n_prompt = 512, n_gen = 128, reps = 3;
    bool no_llama = false;
    ArgParser p(
        "colony bench",
        "Prefill (ppN) and decode (tgN) tokens/s of colony against llama.cpp's llama-bench,\n"
        "built from the same tree with the same ggml flags, on the same model and threads.");
    p.add("-m", "--model", "PATHS", "GGUF model file(s), comma-separated", &models_arg, true);
    p.add("-t", "--threads", "N", "threads, 0 = all cores", &threads);
    p.add("-p", "--n-prompt", "N", "prompt tokens for the prefill test", &n_prompt);
    p.add("-n", "--n-gen", "N", "tokens for the decode test", &n_gen);
    p.add("-r", "--repetitions", "N", "timed repetitions of each test", &reps);
    p.add("", "--llama-bench", "PATH", "llama-bench binary", &llama_bin);
    p.flag("", "--no-llama", "measure colony only", &no_llama);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    if (n_prompt <= 0 || n_gen <= 0 || reps <= 0)
        throw Error(ErrorCode::kInvalidArgument, "-p, -n and -r must be positive");
    if (threads <= 0)
        threads = default_thread_count();
    if (!no_llama && access(llama_bin.c_str(), X_OK) != 0) {
        throw Error(ErrorCode::kNotFound,
                    "llama-bench not found at " + llama_bin +
                        " (build it: cmake --build build --target llama-bench, or scripts/setup.sh "
                        "--all; or pass --no-llama)");
    }
    std::vector<std::string> models;
    for (size_t s = 0, e; s <= models_arg.size(); s = e + 1) {
        e = models_arg.find(',', s);
        if (e == std::string::npos)
            e = models_arg.size();
        if (e > s)
            models.push_back(models_arg.substr(s, e - s));
    }

    std::printf("| model | threads | test | colony t/s | llama.cpp t/s | colony/llama.cpp |\n");
    std::printf("| --- | ---: | --- | ---: | ---: | ---: |\n");
    std::mt19937 rng(1234);
    for (const std::string &model : models) {
        std::shared_ptr<const GgufFile> file = GgufFile::open(model);
        const ModelHparams hp = ModelHparams::from_gguf(*file);
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = static_cast<uint32_t>(std::max(n_prompt, n_gen) + 8);
        cfg.n_threads = threads;
        Stage stage(file, hp, cfg);
        std::fprintf(stderr, "bench: %s: colony pp%d ...\n", model.c_str(), n_prompt);
        const Stat pp = colony_pp(stage, n_prompt, reps, rng);
        std::fprintf(stderr, "bench: %s: colony tg%d ...\n", model.c_str(), n_gen);
        const Stat tg = colony_tg(stage, n_gen, reps, rng);
        std::array<Stat, 2> ref{};
        if (!no_llama) {
            std::fprintf(stderr, "bench: %s: llama-bench ...\n", model.c_str());
            ref = llama_bench(llama_bin, model, threads, n_prompt, n_gen, reps);
        }
        const std::string name = model.substr(model.rfind('/') + 1);
        const Stat ours[2] = {pp, tg};
        const std::string tests[2] = {"pp" + std::to_string(n_prompt),
                                      "tg" + std::to_string(n_gen)};
        for (int i = 0; i < 2; ++i) {
            char ratio[32] = "n/a";
            if (ref[i].mean > 0)
                std::snprintf(ratio, sizeof(ratio), "%.3f", ours[i].mean / ref[i].mean);
            std::printf("| %s | %d | %s | %s | %s | %s |\n", name.c_str(), threads,
                        tests[i].c_str(), cell(ours[i]).c_str(), cell(ref[i]).c_str(), ratio);
            std::fflush(stdout);
        }
    }
    return 0;
}

}  // namespace colony
