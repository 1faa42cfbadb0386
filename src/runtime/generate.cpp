#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"

namespace colony {

GenerateStats generate(Stage &stage, const Tokenizer &tok, const std::vector<int32_t> &prompt,
                       const GenerateOptions &opts,
                       const std::function<bool(int32_t, const std::string &)> &on_token) {
    if (!stage.is_first() || !stage.is_last()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "generate() needs a stage that holds the whole model");
    }
    if (prompt.empty())
        throw Error(ErrorCode::kInvalidArgument, "empty prompt");
    opts.kv_window.validate(stage.config().n_ctx_seq);
    if (opts.kv_window.enabled() && prompt.size() + 1 > opts.kv_window.window) {
        throw Error(ErrorCode::kOutOfRange, "the prompt has " + std::to_string(prompt.size()) +
                                                " tokens, the KV window holds " +
                                                std::to_string(opts.kv_window.window - 1));
    }
    GenerateStats st;
    st.n_prompt = static_cast<int32_t>(prompt.size());
    Sampler sampler(opts.sampling, static_cast<int32_t>(stage.hparams().n_vocab));
    for (int32_t t : prompt)
        sampler.accept(t);
    Detokenizer detok(tok);

    const int32_t seq = opts.seq_id;
    const uint32_t n_ubatch = stage.config().n_ubatch;
    std::vector<int32_t> pos(n_ubatch), seqs(n_ubatch, seq);
    const int64_t t_start = now_us();
    const float *logits = nullptr;
    for (size_t i = 0; i < prompt.size(); i += n_ubatch) {
        const uint32_t n = static_cast<uint32_t>(std::min<size_t>(n_ubatch, prompt.size() - i));
        std::iota(pos.begin(), pos.begin() + n, static_cast<int32_t>(i));
        const int32_t last_row = static_cast<int32_t>(n - 1);
        Ubatch ub;
        ub.n_tokens = n;
        ub.tokens = prompt.data() + i;
        ub.pos = pos.data();
        ub.seq_id = seqs.data();
        ub.out_ids = &last_row;
        ub.n_outputs = 1;
        logits = stage.forward(ub);
    }
    st.prefill_us = now_us() - t_start;

    int32_t next_pos = static_cast<int32_t>(prompt.size());
    int64_t t_first = 0;
    st.stop_reason = "length";
    std::vector<float> masked;  // ignore_eos: the logits with end-of-generation tokens at -inf
    std::vector<int32_t> eog;
    if (opts.ignore_eos) {
        for (int32_t t = 0; t < tok.n_vocab(); ++t)
            if (tok.is_eog(t))
                eog.push_back(t);
    }
    st.kv_used_max = stage.kv_used();
    for (int32_t i = 0; opts.n_predict < 0 || i < opts.n_predict; ++i) {
        if (!eog.empty()) {
            masked.assign(logits, logits + stage.hparams().n_vocab);
            for (int32_t t : eog)
                masked[t] = -INFINITY;
            logits = masked.data();
        }
        const int32_t token = sampler.sample(logits);
        ++st.n_generated;
        if (i == 0) {
            t_first = now_us();
            st.ttft_us = t_first - t_start;
        }
        if (opts.stop_at_eog && tok.is_eog(token)) {
            st.stop_reason = "eog";
            break;
        }
        if (!on_token(token, detok.push(token))) {
            st.stop_reason = "cancelled";
            break;
        }
        if (opts.n_predict >= 0 && i + 1 >= opts.n_predict)
            break;
        if (static_cast<uint32_t>(next_pos) >= stage.config().n_ctx_seq) {
            st.stop_reason = "length";
            break;
        }
        if (const auto shift = opts.kv_window.shift_before(next_pos)) {
            stage.apply_shift(seq, *shift);
            next_pos = shift->n_past_after();
            ++st.n_kv_shifts;
        }
        const int32_t row = 0;
        Ubatch ub;
        ub.n_tokens = 1;
        ub.tokens = &token;
        ub.pos = &next_pos;
        ub.seq_id = &seq;
        ub.out_ids = &row;
        ub.n_outputs = 1;
        logits = stage.forward(ub);
        ++next_pos;
        st.kv_used_max = std::max(st.kv_used_max, stage.kv_used());
    }
    const std::string rest = detok.flush();
    if (!rest.empty())
        on_token(-1, rest);
    st.decode_us = t_first ? now_us() - t_first : 0;
    return st;
}

}  // namespace colony
