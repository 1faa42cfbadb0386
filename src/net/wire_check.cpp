#include "net/wire_check.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "util/error.h"

namespace colony::wire_detail {

namespace {

[[noreturn]] void fail(const std::string &reason) {
    throw Error(ErrorCode::kProtocol, reason);
}

std::string str(uint64_t v) {
    return std::to_string(v);
}

void check_string(const std::string &s, const char *field, uint32_t max) {
    if (s.size() > max) {
        fail(std::string(field) + " is " + str(s.size()) + " bytes, the limit is " + str(max));
    }
}

void check_range(uint64_t v, uint64_t lo, uint64_t hi, const char *field) {
    if (v < lo || v > hi) {
        fail(std::string(field) + " = " + str(v) + " is outside [" + str(lo) + ", " + str(hi) +
             "]");
    }
}

void check_layers(uint32_t first, uint32_t last, uint32_t max) {
    if (!(first < last && last <= max)) {
        fail("layer range [" + str(first) + ", " + str(last) + ") is empty or beyond " + str(max) +
             " layers");
    }
}

void check_dtype(WireDtype dtype) {
    if (dtype >= WIRE_DTYPE_COUNT) {
        fail("unknown dtype " + str(dtype));
    }
}

void check_finite(float v, const char *field) {
    if (!std::isfinite(v)) {
        fail(std::string(field) + " is not finite");
    }
}

void check_options(const WireSeqOptions &o, const WireLimits &l) {
    check_range(o.n_probs, 0, l.max_top_logprobs, "n_probs");
    check_range(o.n_prompt, 0, l.max_pos, "n_prompt");
    check_string(o.grammar, "grammar", l.max_grammar_bytes);
    check_range(o.trigger_patterns.size(), 0, l.max_trigger_patterns, "n_trigger_patterns");
    for (const std::string &p : o.trigger_patterns)
        check_string(p, "trigger pattern", l.max_string_bytes);
    check_range(o.trigger_tokens.size(), 0, l.max_option_tokens, "n_trigger_tokens");
    check_range(o.prefill_tokens.size(), 0, l.max_option_tokens, "n_prefill_tokens");
    check_range(o.pooling, 0, 3, "pooling");
    if (o.copy_from < -1 || (o.copy_from >= 0 && uint32_t(o.copy_from) >= l.max_n_seq))
        fail("copy_from " + std::to_string(o.copy_from) + " out of range");
    check_range(static_cast<uint64_t>(std::max(o.copy_len, 0)), 0, l.max_pos, "copy_len");
    if (o.copy_len < 0)
        fail("copy_len is negative");
    if (o.grammar.empty() && (o.lazy || !o.trigger_patterns.empty() || !o.trigger_tokens.empty() ||
                              !o.prefill_tokens.empty())) {
        fail("grammar options without a grammar");
    }
}

void check_sampling(const WireSampling &s) {
    check_finite(s.temperature, "temperature");
    check_finite(s.top_p, "top_p");
    check_finite(s.min_p, "min_p");
    check_finite(s.penalty_repeat, "penalty_repeat");
    check_finite(s.penalty_freq, "penalty_freq");
    check_finite(s.penalty_present, "penalty_present");
    if (s.temperature < 0.0f) {
        fail("temperature " + std::to_string(s.temperature) + " < 0");
    }
    if (s.top_p < 0.0f || s.top_p > 1.0f || s.min_p < 0.0f || s.min_p > 1.0f) {
        fail("top_p/min_p outside [0, 1]");
    }
    if (s.penalty_last_n < -1 || s.penalty_last_n > kWireMaxPenaltyLastN) {
        // the last stage allocates a window of this many tokens per sequence
        fail("penalty_last_n " + std::to_string(s.penalty_last_n) + " outside [-1, " +
             std::to_string(kWireMaxPenaltyLastN) + "]");
    }
    if (s.penalty_repeat <= 0.0f) {
        fail("penalty_repeat must be > 0");
    }
    if (s.n_drawn > kWireMaxDrawn)
        fail("n_drawn " + std::to_string(s.n_drawn) + " exceeds " + std::to_string(kWireMaxDrawn));
}

void check(const WireJoin &m, const WireLimits &l) {
    check_string(m.node_name, "node_name", l.max_string_bytes);
    check_string(m.software_version, "software_version", l.max_string_bytes);
    check_string(m.os, "os", l.max_string_bytes);
    check_string(m.arch, "arch", l.max_string_bytes);
    check_string(m.backend, "backend", l.max_string_bytes);
    check_string(m.data_endpoint, "data_endpoint", l.max_string_bytes);
    if (m.node_key == WireKey{}) {
        fail("node_key is all zero");
    }
    if (m.cached_shards.size() > l.max_cached_shards) {
        fail(str(m.cached_shards.size()) + " cached shards exceed the limit " +
             str(l.max_cached_shards));
    }
    for (const WireCachedShard &c : m.cached_shards) {
        check_layers(c.layer_first, c.layer_last, l.max_n_layer);
    }
}

void check(const WireJoinAccept &, const WireLimits &) {}
void check(const WireJoinReject &m, const WireLimits &l) {
    check_string(m.reason, "reason", l.max_string_bytes);
}
void check(const WireHeartbeat &, const WireLimits &) {}

void check(const WireAssign &m, const WireLimits &l) {
    check_range(m.n_layer, 1, l.max_n_layer, "n_layer");
    check_layers(m.layer_first, m.layer_last, m.n_layer);
    check_range(m.n_embd, 1, l.max_n_embd, "n_embd");
    check_range(m.n_vocab, 1, l.max_n_vocab, "n_vocab");
    check_range(m.n_ctx, 1, l.max_n_ctx, "n_ctx");
    check_range(m.n_ubatch, 1, l.max_tokens, "n_ubatch");
    check_range(m.n_seq_max, 1, l.max_n_seq, "n_seq_max");
    check_dtype(m.dtype);
    uint64_t row_bytes = 0;
    try {
        row_bytes = wire_dtype_row_bytes(m.dtype, m.n_embd);
    } catch (const Error &e) {
        fail(e.what());
    }
    if (row_bytes * m.n_ubatch > l.max_payload_bytes) {  // < 2^34 * 2^32: no overflow
        fail("an ubatch of " + str(m.n_ubatch) + " x " + str(row_bytes) +
             " bytes would exceed max_payload_bytes " + str(l.max_payload_bytes));
    }
    if (m.next_endpoint.empty()) {
        fail("next_endpoint is empty");
    }
    check_string(m.next_endpoint, "next_endpoint", l.max_string_bytes);
    check_string(m.shard_url, "shard_url", l.max_string_bytes);
    if (!m.shard_url.empty() && m.shard_url.rfind("http://", 0) != 0 &&
        m.shard_url.rfind("https://", 0) != 0)
        fail("shard_url is not an http(s) URL");
    if (!m.shard_url.empty() && (m.shard_sha256 == WireHash{} || m.shard_size == 0))
        fail("shard_url without the shard's hash and size");
    for (size_t i = 0; i < m.skip_layers.size(); ++i) {
        const uint32_t il = m.skip_layers[i];
        if (il < m.layer_first || il >= m.layer_last)
            fail("skip_layers names block " + str(il) + " outside the stage's layers [" +
                 str(m.layer_first) + "," + str(m.layer_last) + ")");
        if (i > 0 && il <= m.skip_layers[i - 1])
            fail("skip_layers is not ascending");
    }
    if (!(m.dyn_skip >= 0.0f && m.dyn_skip <= 1.0f))  // NaN fails too
        fail("dyn_skip is not a cosine in [0, 1]");
    if (m.dyn_skip > 0.0f && m.dyn_skip_probe == 0)
        fail("dyn_skip without a probe interval");
    for (size_t i = 0; i < m.hot_layers.size(); ++i) {
        if (m.hot_layers[i] >= m.n_layer)
            fail("hot_layers names block " + str(m.hot_layers[i]) + " of a model of " +
                 str(m.n_layer) + " blocks");
        if (i > 0 && m.hot_layers[i] <= m.hot_layers[i - 1])
            fail("hot_layers is not ascending");
    }
}

void check(const WireReady &m, const WireLimits &l) {
    check_layers(m.layer_first, m.layer_last, l.max_n_layer);
}

void check(const WireShardRequest &m, const WireLimits &l) {
    check_layers(m.layer_first, m.layer_last, l.max_n_layer);
}

void check(const WireShardChunk &m, const WireLimits &) {
    if (m.offset > m.total || m.bytes.size() > m.total - m.offset) {
        fail("chunk [" + str(m.offset) + ", +" + str(m.bytes.size()) + ") runs past total " +
             str(m.total));
    }
}

void check(const WireShardEnd &, const WireLimits &) {}

// Sequences sorted by id, to look up a token's sequence in O(log n_seqs).
struct seq_slot {
    int32_t seq_id;
    uint32_t index;
};

void check_activation_tokens(const WireActivations &m, const WireLimits &l,
                             const std::vector<seq_slot> &sorted) {
    std::vector<uint32_t> seen(m.seqs.size(), 0);
    std::vector<int32_t> last_pos(m.seqs.size(), -1);
    for (uint32_t t = 0; t < m.n_tokens; ++t) {
        if (m.tokens[t] < -1 || (m.n_embd == 0 && m.tokens[t] < 0) ||
            uint64_t(std::max(m.tokens[t], 0)) >= l.max_n_vocab) {
            fail("token " + str(t) + " has invalid id " + std::to_string(m.tokens[t]));
        }
        if (m.pos[t] < 0 || m.pos[t] >= l.max_pos) {
            fail("token " + str(t) + " has position " + std::to_string(m.pos[t]) + " outside [0, " +
                 std::to_string(l.max_pos) + ")");
        }
        auto it = std::lower_bound(sorted.begin(), sorted.end(), m.seq_id[t],
                                   [](const seq_slot &s, int32_t id) { return s.seq_id < id; });
        if (it == sorted.end() || it->seq_id != m.seq_id[t]) {
            fail("token " + str(t) + " belongs to seq " + std::to_string(m.seq_id[t]) +
                 ", which is not in the sequence list");
        }
        if (m.pos[t] <= last_pos[it->index]) {
            fail("positions of seq " + std::to_string(m.seq_id[t]) +
                 " are not strictly increasing at token " + str(t));
        }
        last_pos[it->index] = m.pos[t];
        ++seen[it->index];
    }
    for (size_t s = 0; s < m.seqs.size(); ++s) {
        if (seen[s] != m.seqs[s].n_tokens) {
            fail("seq " + std::to_string(m.seqs[s].seq_id) + " declares " +
                 str(m.seqs[s].n_tokens) + " tokens, the ubatch has " + str(seen[s]));
        }
    }
}

// A sequence with drafts: its last n_draft + 1 rows (the decode row and the
// drafts) are outputs with known tokens, so the last stage can compare each
// sampled token with the next row's input.
void check_drafts(const WireActivations &m) {
    for (const WireSeq &q : m.seqs) {
        if (q.n_draft == 0)
            continue;
        if (q.n_draft >= q.n_tokens) {
            fail("seq " + std::to_string(q.seq_id) + " has " + str(q.n_draft) + " drafts in " +
                 str(q.n_tokens) + " rows (the decode row must come first)");
        }
        uint32_t tail = q.n_draft + 1;  // rows of q still to see, from the end
        for (uint32_t t = m.n_tokens; t-- > 0 && tail > 0;) {
            if (m.seq_id[t] != q.seq_id)
                continue;
            --tail;
            if (m.tokens[t] < 0)
                fail("a draft row of seq " + std::to_string(q.seq_id) + " has no token");
            if (!std::binary_search(m.outputs.begin(), m.outputs.end(), t))
                fail("draft row " + str(t) + " of seq " + std::to_string(q.seq_id) +
                     " is not an output");
        }
    }
}

void check(const WireActivations &m, const WireLimits &l) {
    check_dtype(m.dtype);
    check_range(m.n_tokens, 1, l.max_tokens, "n_tokens");
    check_range(m.n_embd, 0, l.max_n_embd, "n_embd");
    if (m.tokens.size() != m.n_tokens || m.pos.size() != m.n_tokens ||
        m.seq_id.size() != m.n_tokens) {
        fail("n_tokens = " + str(m.n_tokens) + " but " + str(m.tokens.size()) + " tokens, " +
             str(m.pos.size()) + " positions, " + str(m.seq_id.size()) + " seq ids");
    }
    uint64_t expected = 0;
    if (m.n_embd > 0) {
        try {
            expected = uint64_t(m.n_tokens) * wire_dtype_row_bytes(m.dtype, m.n_embd);
        } catch (const Error &e) {
            fail(e.what());
        }
    }
    if (m.data.size() != expected) {
        fail(std::string("hidden state ") + wire_dtype_name(m.dtype) + " [" + str(m.n_embd) + ", " +
             str(m.n_tokens) + "] needs " + str(expected) + " bytes, got " + str(m.data.size()));
    }
    check_range(m.seqs.size(), 1, m.n_tokens, "n_seqs");
    std::vector<seq_slot> sorted;
    sorted.reserve(m.seqs.size());
    for (uint32_t s = 0; s < m.seqs.size(); ++s) {
        const WireSeq &q = m.seqs[s];
        if (q.seq_id < 0 || uint32_t(q.seq_id) >= l.max_n_seq) {
            fail("seq id " + std::to_string(q.seq_id) + " outside [0, " + str(l.max_n_seq) + ")");
        }
        check_sampling(q.sampling);
        if (q.has_options)
            check_options(q.options, l);
        sorted.push_back({q.seq_id, s});
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const seq_slot &a, const seq_slot &b) { return a.seq_id < b.seq_id; });
    for (size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i].seq_id == sorted[i - 1].seq_id) {
            fail("seq " + std::to_string(sorted[i].seq_id) + " is listed twice");
        }
    }
    check_activation_tokens(m, l, sorted);
    for (size_t i = 0; i < m.outputs.size(); ++i) {
        if (m.outputs[i] >= m.n_tokens || (i > 0 && m.outputs[i] <= m.outputs[i - 1])) {
            fail("output indices must be ascending and < n_tokens; index " + str(i) + " is " +
                 str(m.outputs[i]));
        }
    }
    check_drafts(m);
}

void check_logprob(float v) {
    if (!std::isfinite(v) || v > 0.0f)
        fail("logprob " + std::to_string(v) + " is not a finite value <= 0");
}

void check(const WireTokens &m, const WireLimits &l) {
    check_range(m.sampled.size(), 0, l.max_tokens, "n_sampled");
    for (const WireSampled &s : m.sampled) {
        if (s.seq_id < 0 || uint32_t(s.seq_id) >= l.max_n_seq || s.token < 0 ||
            uint32_t(s.token) >= l.max_n_vocab || s.pos < 0 || s.pos >= l.max_pos) {
            fail("sampled entry (seq " + std::to_string(s.seq_id) + ", token " +
                 std::to_string(s.token) + ", pos " + std::to_string(s.pos) + ") out of range");
        }
        if (!s.has_logprob) {
            if (!s.top.empty())
                fail("top logprobs without has_logprob");
            continue;
        }
        check_logprob(s.logprob);
        check_range(s.top.size(), 0, l.max_top_logprobs, "n_top");
        for (const WireTokenProb &t : s.top) {
            if (t.token < 0 || uint32_t(t.token) >= l.max_n_vocab)
                fail("top token " + std::to_string(t.token) + " out of range");
            check_logprob(t.logprob);
        }
    }
    check_range(m.embeddings.size(), 0, l.max_tokens, "n_embeddings");
    for (const WireEmbedding &e : m.embeddings) {
        if (e.seq_id < 0 || uint32_t(e.seq_id) >= l.max_n_seq || e.pos < 0 || e.pos >= l.max_pos)
            fail("embedding of seq " + std::to_string(e.seq_id) + " out of range");
        check_range(e.values.size(), 1, l.max_n_embd, "embedding n_embd");
        for (float v : e.values) {
            if (!std::isfinite(v))
                fail("an embedding value is not finite");
        }
    }
}

void check(const WireSeqRelease &m, const WireLimits &l) {
    if (m.seq_id < -1 || (m.seq_id >= 0 && uint32_t(m.seq_id) >= l.max_n_seq)) {
        fail("seq_id " + std::to_string(m.seq_id) + " outside [-1, " + str(l.max_n_seq) + ")");
    }
    if (m.p0 < 0 || m.p0 > l.max_pos) {
        fail("p0 " + std::to_string(m.p0) + " outside [0, " + std::to_string(l.max_pos) + "]");
    }
}

void check(const WireSeqShift &m, const WireLimits &l) {
    if (m.seq_id < 0 || uint32_t(m.seq_id) >= l.max_n_seq)
        fail("seq_id " + std::to_string(m.seq_id) + " outside [0, " + str(l.max_n_seq) + ")");
    // p0 >= 0, n_discard >= 1, p0 + n_discard < n_past <= max_pos, in 64 bits
    if (m.p0 < 0 || m.n_discard < 1 || m.n_past > l.max_pos ||
        int64_t{m.p0} + m.n_discard >= int64_t{m.n_past}) {
        fail("shift p0 " + std::to_string(m.p0) + " n_discard " + std::to_string(m.n_discard) +
             " n_past " + std::to_string(m.n_past) +
             " is not 0 <= p0, 1 <= n_discard, p0 + n_discard < n_past <= " +
             std::to_string(l.max_pos));
    }
}

void check(const WireError &m, const WireLimits &l) {
    check_string(m.message, "message", l.max_string_bytes);
}

void check(const WireStatus &m, const WireLimits &l) {
    check_string(m.json, "json", l.max_status_bytes);
}

}  // namespace

void check_body(const WireBody &body, const WireLimits &limits) {
    std::visit([&](const auto &m) { check(m, limits); }, body);
}

}  // namespace colony::wire_detail

namespace colony {

void wire_check_activations(const WireActivations &act, const WirePlanShape &plan) {
    auto mismatch = [](const std::string &what, uint64_t expected, uint64_t got) {
        throw Error(ErrorCode::kProtocol, "ACTIVATIONS: " + what + ": expected " +
                                              std::to_string(expected) + ", got " +
                                              std::to_string(got));
    };
    if (act.plan_epoch != plan.plan_epoch) {
        throw Error(ErrorCode::kOutOfRange,
                    "ACTIVATIONS of plan epoch " + std::to_string(act.plan_epoch) +
                        ", the current epoch is " + std::to_string(plan.plan_epoch));
    }
    if (act.n_embd != plan.n_embd) {
        mismatch("n_embd", plan.n_embd, act.n_embd);
    }
    if (act.n_tokens > plan.n_ubatch) {
        mismatch("n_tokens <= n_ubatch", plan.n_ubatch, act.n_tokens);
    }
    for (const WireSeq &q : act.seqs) {
        if (uint32_t(q.seq_id) >= plan.n_seq_max) {  // seq_id >= 0 after wire_decode
            mismatch("seq id < n_seq_max", plan.n_seq_max, uint32_t(q.seq_id));
        }
        if (!q.has_options)
            continue;
        if (q.options.copy_from >= 0 &&
            (uint32_t(q.options.copy_from) >= plan.n_seq_max || q.options.copy_from == q.seq_id)) {
            mismatch("copy_from < n_seq_max and not the sequence itself", plan.n_seq_max,
                     uint32_t(q.options.copy_from));
        }
        for (const std::vector<int32_t> *ids :
             {&q.options.trigger_tokens, &q.options.prefill_tokens}) {
            for (int32_t tok : *ids) {
                if (tok < 0 || uint32_t(tok) >= plan.n_vocab)
                    mismatch("option token id < n_vocab", plan.n_vocab, uint32_t(tok));
            }
        }
    }
    for (uint32_t t = 0; t < act.n_tokens; ++t) {
        if (uint32_t(act.pos[t]) >= plan.n_ctx) {
            throw Error(ErrorCode::kOutOfRange,
                        "ACTIVATIONS: position " + std::to_string(act.pos[t]) +
                            " is beyond the context size " + std::to_string(plan.n_ctx));
        }
        const int32_t tok = act.tokens[t];
        if (tok < 0 && plan.n_embd == 0) {
            throw Error(ErrorCode::kProtocol, "ACTIVATIONS: stage 0 needs the id of token " +
                                                  std::to_string(t) + ", got -1");
        }
        if (tok >= 0 && uint32_t(tok) >= plan.n_vocab) {
            mismatch("token id < n_vocab", plan.n_vocab, uint32_t(tok));
        }
    }
    // a sequence draws one token per position: a replay skips at most n_ctx
    // draws (the last stage runs each one, so a forged count is a hang)
    for (const WireSeq &q : act.seqs) {
        if (q.sampling.n_drawn > plan.n_ctx)
            mismatch("sampling n_drawn <= n_ctx", plan.n_ctx, q.sampling.n_drawn);
    }
}

}  // namespace colony
