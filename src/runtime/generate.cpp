#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

#include "runtime/draft_source.h"
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

    const int32_t n_vocab = static_cast<int32_t>(stage.hparams().n_vocab);
    std::vector<float> masked;  // ignore_eos: the logits with end-of-generation tokens at -inf
    std::vector<int32_t> eog;
    if (opts.ignore_eos) {
        for (int32_t t = 0; t < tok.n_vocab(); ++t)
            if (tok.is_eog(t))
                eog.push_back(t);
    }
    auto sample_row = [&](const float *row) {
        if (!eog.empty()) {
            masked.assign(row, row + n_vocab);
            for (int32_t t : eog)
                masked[t] = -INFINITY;
            row = masked.data();
        }
        return sampler.sample(row);
    };
    int64_t t_first = 0;
    st.stop_reason = "length";
    // Hands a sampled token to the caller; false when generation ends with it.
    auto emit = [&](int32_t token) {
        if (++st.n_generated == 1) {
            t_first = now_us();
            st.ttft_us = t_first - t_start;
        }
        if (opts.stop_at_eog && tok.is_eog(token)) {
            st.stop_reason = "eog";
            return false;
        }
        if (!on_token(token, detok.push(token))) {
            st.stop_reason = "cancelled";
            return false;
        }
        return opts.n_predict < 0 || st.n_generated < opts.n_predict;
    };

    const int32_t n_ctx_seq = static_cast<int32_t>(stage.config().n_ctx_seq);
    DraftLength draft_length(opts.spec);
    std::vector<int32_t> history = prompt;  // the tokens fed so far, for the draft source
    std::vector<int32_t> fed, pos_fed, rows;
    int32_t next_pos = static_cast<int32_t>(prompt.size());
    st.kv_used_max = stage.kv_used();
    int32_t token = sample_row(logits);  // sampled, not yet fed
    for (bool more = emit(token); more;) {
        if (next_pos >= n_ctx_seq)
            break;  // "length"
        if (const auto shift = opts.kv_window.shift_before(next_pos)) {
            stage.apply_shift(seq, *shift);
            next_pos = shift->n_past_after();
            ++st.n_kv_shifts;
        }
        history.push_back(token);
        std::vector<int32_t> drafts;
        double draft_ms = 0;
        if (opts.draft) {
            // drafts take positions next_pos + 1 .. : inside the context, the
            // window (no shift before plain decoding would make one) and the ubatch
            int64_t cap = std::min<int64_t>(n_ctx_seq - next_pos - 1, n_ubatch - 1);
            if (opts.kv_window.enabled())
                cap = std::min<int64_t>(cap, int64_t{opts.kv_window.window} - next_pos - 2);
            if (opts.n_predict >= 0)
                cap = std::min<int64_t>(cap, opts.n_predict - st.n_generated - 1);
            if (const int32_t k =
                    draft_length.next(static_cast<int32_t>(std::max<int64_t>(cap, 0)));
                k > 0) {
                const int64_t t0 = now_us();
                drafts = opts.draft->draft(seq, history, k);
                draft_ms = (now_us() - t0) / 1000.0;
                if (drafts.size() > static_cast<size_t>(k))
                    drafts.resize(static_cast<size_t>(k));
                if (drafts.size() < static_cast<size_t>(opts.spec.draft_min))
                    drafts.clear();
            }
        }
        // the token and its drafts in one forward, a logits row for each
        const uint32_t n = static_cast<uint32_t>(drafts.size() + 1);
        fed.assign(1, token);
        fed.insert(fed.end(), drafts.begin(), drafts.end());
        pos_fed.resize(n);
        std::iota(pos_fed.begin(), pos_fed.end(), next_pos);
        rows.resize(n);
        std::iota(rows.begin(), rows.end(), 0);
        std::vector<int32_t> seqs_fed(n, seq);
        Ubatch ub;
        ub.n_tokens = n;
        ub.tokens = fed.data();
        ub.pos = pos_fed.data();
        ub.seq_id = seqs_fed.data();
        ub.out_ids = rows.data();
        ub.n_outputs = n;
        const int64_t t0 = now_us();
        logits = stage.forward(ub);
        const double target_ms = (now_us() - t0) / 1000.0;
        ++next_pos;
        st.kv_used_max = std::max(st.kv_used_max, stage.kv_used());

        const std::vector<int32_t> drawn = verify_drafts(drafts, [&](size_t r) {
            return sample_row(logits + r * static_cast<size_t>(n_vocab));
        });
        const int32_t accepted = static_cast<int32_t>(drawn.size()) - 1;
        if (opts.draft) {
            draft_length.record(static_cast<int32_t>(drafts.size()), accepted, target_ms, draft_ms);
            if (!drafts.empty()) {
                ++st.spec.n_verifications;
                st.spec.n_drafted += static_cast<int64_t>(drafts.size());
                st.spec.n_accepted += accepted;
            }
        }
        for (int32_t i = 0; i < accepted && more; ++i) {
            more = emit(drawn[static_cast<size_t>(i)]);
            history.push_back(drawn[static_cast<size_t>(i)]);  // fed as a draft: in the KV
            ++next_pos;
        }
        if (static_cast<size_t>(accepted) < drafts.size())
            stage.seq_rm(seq, next_pos, -1);  // the rejected drafts' positions
        token = drawn.back();
        if (more)
            more = emit(token);
    }
    const std::string rest = detok.flush();
    if (!rest.empty())
        on_token(-1, rest);
    st.decode_us = t_first ? now_us() - t_first : 0;
    return st;
}

}  // namespace colony
