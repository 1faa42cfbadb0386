#include "pipeline/stage_step.h"

#include <algorithm>
#include <vector>

#include "net/wire_dtype.h"
#include "pipeline/seq_samplers.h"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/trace.h"

namespace colony {

namespace {

const WireSeq *seq_of(const WireActivations &in, int32_t seq) {
    for (const WireSeq &q : in.seqs) {
        if (q.seq_id == seq)
            return &q;
    }
    return nullptr;
}

/// The next row of row's sequence in `in`, or -1.
int32_t next_row_of(const WireActivations &in, uint32_t row) {
    for (uint32_t r = row + 1; r < in.n_tokens; ++r) {
        if (in.seq_id[r] == in.seq_id[row])
            return static_cast<int32_t>(r);
    }
    return -1;
}

/// Every sequence of the ubatch holds no position from its first row on: the
/// drafts a verification rejected are still in the KV cache of every stage
/// until the sequence's next ubatch starts again where they began. (In any
/// other ubatch nothing is stored there, and this frees nothing.)
void forget_rejected_drafts(Stage &stage, const WireActivations &in) {
    std::vector<int32_t> done;
    for (uint32_t r = 0; r < in.n_tokens; ++r) {
        const int32_t seq = in.seq_id[r];
        if (std::find(done.begin(), done.end(), seq) != done.end())
            continue;
        done.push_back(seq);
        if (stage.seq_pos_max(seq) >= in.pos[r])
            stage.seq_rm(seq, in.pos[r], -1);
    }
}

}  // namespace

StageOutput run_stage_step(Stage &stage, const WireActivations &in, WireDtype out_dtype,
                           SequenceSamplers &samplers) {
    const uint32_t n_embd = stage.hparams().n_embd;
    std::vector<float> embd;
    Ubatch ub;
    ub.n_tokens = in.n_tokens;
    ub.pos = in.pos.data();
    ub.seq_id = in.seq_id.data();
    if (stage.is_first()) {
        ub.tokens = in.tokens.data();
    } else {
        TraceSpan span("unpack", "hop");
        embd.resize(static_cast<size_t>(n_embd) * in.n_tokens);
        wire_unpack_hidden(in.data, in.dtype, n_embd, embd);
        ub.embd = embd.data();
    }
    std::vector<int32_t> out_ids(in.outputs.begin(), in.outputs.end());
    const bool discard_logits = stage.is_last() && out_ids.empty();
    if (discard_logits)
        out_ids.push_back(static_cast<int32_t>(in.n_tokens - 1));
    ub.out_ids = out_ids.data();
    ub.n_outputs = static_cast<uint32_t>(out_ids.size());

    for (const WireSeq &q : in.seqs) {  // a prompt prefilled once for several choices
        if (q.has_options && q.options.copy_from >= 0)
            stage.seq_cp(q.options.copy_from, q.seq_id, q.options.copy_len);
    }
    forget_rejected_drafts(stage, in);
    if (stage.is_last()) {
        samplers.observe(in);  // may throw on bad sampling: before forward
        for (uint32_t row : in.outputs)
            ub.want_hidden = ub.want_hidden || samplers.pools(in.seq_id[row]);
    }
    const float *out = nullptr;
    {
        TraceSpan span("forward", "stage");
        out = stage.forward(ub);
        if (span.active()) {
            span.set_args("{\"layers\":\"" + stage.range().str() +
                          "\",\"n_tokens\":" + std::to_string(in.n_tokens) +
                          ",\"n_outputs\":" + std::to_string(in.outputs.size()) + "}");
        }
    }

    if (!stage.is_last()) {
        WireActivations next;
        next.plan_epoch = in.plan_epoch;
        next.dtype = out_dtype;
        next.n_embd = n_embd;
        next.n_tokens = in.n_tokens;
        next.seqs = in.seqs;
        next.tokens = in.tokens;
        next.pos = in.pos;
        next.seq_id = in.seq_id;
        next.outputs = in.outputs;
        TraceSpan span("pack", "hop");
        next.data =
            wire_pack_hidden({out, static_cast<size_t>(n_embd) * in.n_tokens}, n_embd, out_dtype);
        return next;
    }
    WireTokens tokens;
    tokens.plan_epoch = in.plan_epoch;
    if (discard_logits)
        return tokens;
    TraceSpan span("sample", "stage");
    const size_t n_vocab = stage.hparams().n_vocab;
    std::vector<int32_t> verified;  // sequences whose verification ended
    for (size_t i = 0; i < in.outputs.size(); ++i) {
        const uint32_t row = in.outputs[i];
        const WireSeq *q = seq_of(in, in.seq_id[row]);
        const bool drafts = q && q->n_draft > 0;
        if (drafts && std::find(verified.begin(), verified.end(), q->seq_id) != verified.end())
            continue;                          // after the first rejected draft: not sampled
        if (samplers.pools(in.seq_id[row])) {  // an embedding: pooled, never sampled
            const uint32_t n_embd = stage.hparams().n_embd;
            std::optional<std::vector<float>> e = samplers.pool(
                in.seq_id[row], in.pos[row], stage.hidden_output() + size_t(i) * n_embd, n_embd);
            if (e)
                tokens.embeddings.push_back({in.seq_id[row], in.pos[row], std::move(*e)});
            continue;
        }
        WireSampled s;
        s.seq_id = in.seq_id[row];
        s.pos = in.pos[row];
        SampledToken t = samplers.sample(s.seq_id, s.pos, out + i * n_vocab);
        s.token = t.token;
        s.has_logprob = t.has_logprob;
        s.logprob = t.logprob;
        for (const TokenLogprob &p : t.top)
            s.top.push_back({p.token, p.logprob});
        if (drafts) {  // exact-match verification (runtime/speculative.h)
            const int32_t next = next_row_of(in, row);
            if (next < 0 || in.tokens[static_cast<size_t>(next)] != s.token)
                verified.push_back(s.seq_id);
        }
        tokens.sampled.push_back(std::move(s));
    }
    return tokens;
}

}  // namespace colony
