// colony_single_node_bench: time per generated token of the whole model in one
// process, with a thread count and the debug slow-down factor of an emulated
// device (not a test; docs/cluster.md uses it for "each node alone"). Greedy
// decode after a 16-token prompt; prints the median and the mean of the decode
// steps (each step: forward of one token with its logits, and the argmax).
//
//   colony_single_node_bench MODEL [threads (1)] [slowdown (1)] [tokens (64)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/stage.h"
#include "util/error.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL [threads] [slowdown] [tokens]\n", argv[0]);
        return 2;
    }
    const std::string model = argv[1];
    const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
    const double slowdown = argc > 3 ? std::atof(argv[3]) : 1.0;
    const int n_gen = argc > 4 ? std::atoi(argv[4]) : 64;
    try {
        using namespace colony;
        std::shared_ptr<const GgufFile> file = GgufFile::open(model);
        const ModelHparams hp = ModelHparams::from_gguf(*file);
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = 1024;
        cfg.n_ubatch = 64;
        cfg.n_threads = threads;
        cfg.slowdown = slowdown;
        Stage stage(file, hp, cfg);
        auto step = [&](const std::vector<int32_t> &tokens, int32_t pos0) {
            const uint32_t n = static_cast<uint32_t>(tokens.size());
            std::vector<int32_t> pos(n), seq(n, 0);
            std::iota(pos.begin(), pos.end(), pos0);
            const int32_t last = static_cast<int32_t>(n - 1);
            Ubatch ub;
            ub.n_tokens = n;
            ub.tokens = tokens.data();
            ub.pos = pos.data();
            ub.seq_id = seq.data();
            ub.out_ids = &last;
            ub.n_outputs = 1;
            const float *logits = stage.forward(ub);
            return static_cast<int32_t>(std::max_element(logits, logits + hp.n_vocab) - logits);
        };
        std::vector<int32_t> prompt(16);
        for (size_t i = 0; i < prompt.size(); ++i)
            prompt[i] = static_cast<int32_t>((i * 7919 + 13) % hp.n_vocab);
        int32_t token = step(prompt, 0);
        std::vector<double> ms;
        for (int i = 0; i < n_gen; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            token = step({token}, static_cast<int32_t>(prompt.size()) + i);
            ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count());
        }
        const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
        std::sort(ms.begin(), ms.end());
        std::printf(
            "%s: %u layers, %d threads, slow-down %.2f: decode %.2f ms per token (median), "
            "%.2f ms (mean) over %d tokens\n",
            model.c_str(), hp.n_layer, threads, slowdown, ms[ms.size() / 2], mean, n_gen);
    } catch (const colony::Error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
