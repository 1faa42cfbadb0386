#include "pipeline/seq_samplers.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "util/error.h"

namespace colony {

SamplingParams sampling_from_wire(const WireSampling &w) {
    SamplingParams p;
    p.temperature = w.temperature;
    p.top_k = w.top_k;
    p.top_p = w.top_p;
    p.min_p = w.min_p;
    p.seed = w.seed;
    p.penalty_last_n = w.penalty_last_n;
    p.repeat_penalty = w.penalty_repeat;
    p.frequency_penalty = w.penalty_freq;
    p.presence_penalty = w.penalty_present;
    return p;
}

WireSampling sampling_to_wire(const SamplingParams &p) {
    WireSampling w;
    w.temperature = std::max(p.temperature, 0.0f);
    w.top_k = p.top_k;
    w.top_p = p.top_p;
    w.min_p = p.min_p;
    w.seed = p.seed;
    w.penalty_last_n = p.penalty_last_n;
    w.penalty_repeat = p.repeat_penalty;
    w.penalty_freq = p.frequency_penalty;
    w.penalty_present = p.presence_penalty;
    return w;
}

SequenceOptions options_from_wire(const WireSeqOptions &w) {
    SequenceOptions o;
    o.n_probs = static_cast<int32_t>(w.n_probs);
    o.n_prompt = w.n_prompt;
    o.constraint.grammar = w.grammar;
    o.constraint.lazy = w.lazy;
    o.constraint.trigger_patterns = w.trigger_patterns;
    o.constraint.trigger_tokens = w.trigger_tokens;
    o.constraint.prefill_tokens = w.prefill_tokens;
    o.pooling = static_cast<Pooling>(w.pooling);
    return o;
}

WireSeqOptions options_to_wire(const SequenceOptions &o) {
    WireSeqOptions w;
    w.n_probs = static_cast<uint32_t>(std::max(o.n_probs, 0));
    w.n_prompt = o.n_prompt;
    w.grammar = o.constraint.grammar;
    w.lazy = o.constraint.lazy;
    w.trigger_patterns = o.constraint.trigger_patterns;
    w.trigger_tokens = o.constraint.trigger_tokens;
    w.prefill_tokens = o.constraint.prefill_tokens;
    w.pooling = static_cast<uint8_t>(o.pooling);
    return w;
}

void SequenceSamplers::observe(const WireActivations &act) {
    for (const WireSeq &s : act.seqs) {
        if (s.has_options) {
            // options come with position 0: a sequence starting again (a replay
            // on this same stage) gets a fresh sampler and pool
            for (uint32_t t = 0; t < act.n_tokens; ++t) {
                if (act.seq_id[t] == s.seq_id) {
                    if (act.pos[t] == 0)
                        seqs_.erase(s.seq_id);
                    break;
                }
            }
        }
        if (seqs_.count(s.seq_id) == 0) {
            Entry e;
            SequenceOptions options;
            if (s.has_options)
                options = options_from_wire(s.options);
            const llama_vocab *vocab = !options.constraint.empty() && vocab_ ? vocab_() : nullptr;
            e.sampler =
                std::make_unique<Sampler>(sampling_from_wire(s.sampling), n_vocab_, options, vocab);
            e.sampler->skip_draws(s.sampling.n_drawn);  // a replayed sequence (recovery)
            e.n_prompt = s.has_options ? options.n_prompt : INT32_MAX;
            e.pooling = options.pooling;
            seqs_.emplace(s.seq_id, std::move(e));
        }
    }
    // drafts (the last n_draft rows of a sequence) are not history: the
    // sampler records each accepted one when it samples it
    std::vector<bool> draft(act.n_tokens, false);
    for (const WireSeq &s : act.seqs) {
        uint32_t left = s.n_draft;
        for (uint32_t t = act.n_tokens; t-- > 0 && left > 0;) {
            if (act.seq_id[t] == s.seq_id) {
                draft[t] = true;
                --left;
            }
        }
    }
    for (uint32_t t = 0; t < act.n_tokens; ++t) {
        Entry &e = seqs_.at(act.seq_id[t]);
        if (act.pos[t] < e.n_seen || draft[t])
            continue;
        if (act.tokens[t] >= 0) {
            if (act.pos[t] >= e.n_prompt)
                e.sampler->accept_generated(act.tokens[t]);  // a replayed answer
            else
                e.sampler->accept(act.tokens[t]);
        }
        e.n_seen = act.pos[t] + 1;
    }
}

SampledToken SequenceSamplers::sample(int32_t seq, int32_t pos, const float *logits) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) {
        throw Error(ErrorCode::kInternal, "no sampler for sequence " + std::to_string(seq));
    }
    const SampledToken sampled = it->second.sampler->sample_full(logits);
    const int32_t token = sampled.token;
    it->second.n_seen = std::max(it->second.n_seen, pos + 2);  // the sample sits at pos + 1
    if (hook_)
        hook_(seq, pos, token, logits, !it->second.sampled);
    it->second.sampled = true;
    return sampled;
}

bool SequenceSamplers::pools(int32_t seq) const {
    auto it = seqs_.find(seq);
    return it != seqs_.end() && it->second.pooling != Pooling::kNone;
}

std::optional<std::vector<float>> SequenceSamplers::pool(int32_t seq, int32_t pos,
                                                         const float *hidden, uint32_t n_embd) {
    Entry &e = seqs_.at(seq);
    if (e.pooled.size() != n_embd)
        e.pooled.assign(n_embd, 0.0);
    const bool take = e.pooling == Pooling::kMean || (e.pooling == Pooling::kCls && pos == 0) ||
                      (e.pooling == Pooling::kLast && pos + 1 == e.n_prompt);
    if (take) {
        for (uint32_t i = 0; i < n_embd; ++i)
            e.pooled[i] += hidden[i];
        ++e.n_pooled;
    }
    if (pos + 1 != e.n_prompt)
        return std::nullopt;
    double norm = 0.0;
    for (double v : e.pooled)
        norm += v * v;
    norm = std::sqrt(norm);
    std::vector<float> out(n_embd);
    for (uint32_t i = 0; i < n_embd; ++i)
        out[i] = norm > 0.0 ? static_cast<float>(e.pooled[i] / norm) : 0.0f;
    return out;  // the mean's 1/n cancels in the normalization
}

void SequenceSamplers::release(int32_t seq) {
    if (seq < 0) {
        seqs_.clear();
    } else {
        seqs_.erase(seq);
    }
}

}  // namespace colony
