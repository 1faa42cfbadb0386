#include "runtime/stage_probe.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "runtime/stage.h"
#include "util/clock.h"

namespace colony {

namespace {

/// Median of the timed calls of fn (after one warm-up), microseconds.
template <typename Fn>
double median_us(int reps, Fn &&fn) {
    fn();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        const int64_t t0 = now_us();
        fn();
        t.push_back(static_cast<double>(now_us() - t0));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

StageSpeed measure_stage_speed(Stage &stage, int n_decode, int n_prefill, int32_t seq) {
    const ModelHparams &hp = stage.hparams();
    const uint32_t n_prefill_u = std::min<uint32_t>(static_cast<uint32_t>(std::max(1, n_prefill)),
                                                    std::min(stage.config().n_ubatch, stage.config().n_ctx_seq));
    std::vector<int32_t> tokens(n_prefill_u), pos(n_prefill_u), seqs(n_prefill_u, seq);
    for (uint32_t i = 0; i < n_prefill_u; ++i) tokens[i] = static_cast<int32_t>((i * 7919u + 13u) % hp.n_vocab);
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<float> embd(static_cast<size_t>(hp.n_embd) * n_prefill_u, 0.0f);
    const int32_t last_row = static_cast<int32_t>(n_prefill_u - 1), row0 = 0;

    auto run = [&](uint32_t n, int32_t p0) {
        std::vector<int32_t> p(n);
        std::iota(p.begin(), p.end(), p0);
        Ubatch ub;
        ub.n_tokens = n;
        ub.tokens = stage.is_first() ? tokens.data() : nullptr;
        ub.embd = stage.is_first() ? nullptr : embd.data();
        ub.pos = p.data();
        ub.seq_id = seqs.data();
        ub.out_ids = n == 1 ? &row0 : &last_row;
        ub.n_outputs = 1;
        stage.forward(ub);
    };

    const double layers = static_cast<double>(stage.range().size());
    StageSpeed speed;
    const double prefill_us = median_us(2, [&] {
        stage.seq_rm(seq);
        run(n_prefill_u, 0);
    });
    speed.prefill_ms_per_layer_per_token = prefill_us / 1000.0 / layers / n_prefill_u;
    stage.seq_rm(seq);
    int32_t p = 0;
    const double decode_us = median_us(std::max(1, n_decode), [&] { run(1, p++); });
    stage.seq_rm(seq);
    speed.decode_ms_per_layer = decode_us / 1000.0 / layers;
    return speed;
}

}  // namespace colony
