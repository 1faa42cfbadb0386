#include "net/wire.h"

#include <cmath>
#include <cstring>
#include <string>

#include "net/wire_check.h"
#include "net/wire_codec.h"
#include "util/error.h"

namespace colony {

using wire_detail::WireReader;
using wire_detail::WireWriter;

namespace {

constexpr size_t kSamplingBytes = 10 * 4;  // WireSampling on the wire
constexpr size_t kSeqBytes = 4 + 4 + kSamplingBytes + 1 + 4;
constexpr size_t kSampledBytes = 3 * 4 + 1;
constexpr size_t kTokenBytes = 3 * 4;  // token, pos, seq_id

// ErrorCode <-> u16 on the wire (ERROR, JOIN_REJECT). Values are pinned.
uint16_t error_code_to_wire(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument:
            return 1;
        case ErrorCode::kNotFound:
            return 2;
        case ErrorCode::kCorrupt:
            return 3;
        case ErrorCode::kUnsupported:
            return 4;
        case ErrorCode::kOutOfRange:
            return 5;
        case ErrorCode::kResource:
            return 6;
        case ErrorCode::kProtocol:
            return 7;
        case ErrorCode::kUnauthorized:
            return 8;
        case ErrorCode::kUnavailable:
            return 9;
        case ErrorCode::kCancelled:
            return 10;
        case ErrorCode::kInternal:
            return 11;
    }
    return 11;
}

ErrorCode error_code_from_wire(uint16_t v) {
    constexpr ErrorCode kCodes[] = {
        ErrorCode::kInvalidArgument, ErrorCode::kNotFound,     ErrorCode::kCorrupt,
        ErrorCode::kUnsupported,     ErrorCode::kOutOfRange,   ErrorCode::kResource,
        ErrorCode::kProtocol,        ErrorCode::kUnauthorized, ErrorCode::kUnavailable,
        ErrorCode::kCancelled,       ErrorCode::kInternal,
    };
    if (v == 0 || v > std::size(kCodes)) {
        WireReader::fail("unknown error code " + std::to_string(v));
    }
    return kCodes[v - 1];
}

// ---- encoders: one per body type, field order as in wire.h ----

void put(WireWriter &w, const WireJoin &m) {
    w.str(m.node_name);
    w.bytes32(m.node_key);
    w.str(m.software_version);
    w.u64(m.free_memory_bytes);
    w.u64(m.mem_limit_bytes);
    w.u32(m.n_threads);
    w.str(m.os);
    w.str(m.arch);
    w.str(m.backend);
    w.str(m.data_endpoint);
    w.u32(static_cast<uint32_t>(m.cached_shards.size()));
    for (const WireCachedShard &c : m.cached_shards) {
        w.bytes32(c.model_hash);
        w.u32(c.layer_first);
        w.u32(c.layer_last);
    }
}
void put(WireWriter &w, const WireJoinAccept &m) {
    w.u32(m.node_id);
    w.u32(m.heartbeat_interval_ms);
}
void put(WireWriter &w, const WireJoinReject &m) {
    w.u16(error_code_to_wire(m.code));
    w.str(m.reason);
}
void put(WireWriter &w, const WireHeartbeat &m) {
    w.u64(m.timestamp_ns);
    w.u64(m.counter);
}
void put(WireWriter &w, const WireAssign &m) {
    w.u64(m.plan_epoch);
    w.u32(m.layer_first);
    w.u32(m.layer_last);
    w.bytes32(m.model_hash);
    w.u32(m.n_layer);
    w.u32(m.n_embd);
    w.u32(m.n_vocab);
    w.u8(m.dtype);
    w.u32(m.n_ctx);
    w.u32(m.n_ubatch);
    w.u32(m.n_seq_max);
    w.boolean(m.is_last);
    w.boolean(m.sampling);
    w.str(m.next_endpoint);
    w.bytes32(m.next_key);
    w.bytes32(m.prev_key);
    w.str(m.shard_url);
    w.bytes32(m.shard_sha256);
    w.u64(m.shard_size);
    w.u32(static_cast<uint32_t>(m.skip_layers.size()));
    for (uint32_t il : m.skip_layers)
        w.u32(il);
    w.f32(m.dyn_skip);
    w.u32(m.dyn_skip_probe);
    w.u32(static_cast<uint32_t>(m.hot_layers.size()));
    for (uint32_t il : m.hot_layers)
        w.u32(il);
}
void put(WireWriter &w, const WireReady &m) {
    w.u64(m.plan_epoch);
    w.u32(m.layer_first);
    w.u32(m.layer_last);
}
void put(WireWriter &w, const WireShardRequest &m) {
    w.bytes32(m.model_hash);
    w.u32(m.layer_first);
    w.u32(m.layer_last);
    w.u64(m.offset);
}
void put(WireWriter &w, const WireShardChunk &m) {
    w.u64(m.offset);
    w.u64(m.total);
    w.u32(static_cast<uint32_t>(m.bytes.size()));
    w.raw(m.bytes.data(), m.bytes.size());
}
void put(WireWriter &w, const WireShardEnd &m) {
    w.u64(m.total);
    w.bytes32(m.sha256);
}
void put_i32s(WireWriter &w, const std::vector<int32_t> &v) {
    for (int32_t x : v) {
        w.i32(x);
    }
}
void put(WireWriter &w, const WireSeqOptions &o) {
    w.u32(o.n_probs);
    w.i32(o.n_prompt);
    w.str(o.grammar);
    w.boolean(o.lazy);
    w.u32(static_cast<uint32_t>(o.trigger_patterns.size()));
    for (const std::string &p : o.trigger_patterns)
        w.str(p);
    w.u32(static_cast<uint32_t>(o.trigger_tokens.size()));
    put_i32s(w, o.trigger_tokens);
    w.u32(static_cast<uint32_t>(o.prefill_tokens.size()));
    put_i32s(w, o.prefill_tokens);
    w.u8(o.pooling);
    w.i32(o.copy_from);
    w.i32(o.copy_len);
}
void put(WireWriter &w, const WireActivations &m) {
    w.u64(m.plan_epoch);
    w.u8(m.dtype);
    w.u32(m.n_embd);
    w.u32(m.n_tokens);
    w.u32(static_cast<uint32_t>(m.seqs.size()));
    for (const WireSeq &q : m.seqs) {
        w.i32(q.seq_id);
        w.u32(q.n_tokens);
        const WireSampling &s = q.sampling;
        w.f32(s.temperature);
        w.i32(s.top_k);
        w.f32(s.top_p);
        w.f32(s.min_p);
        w.u32(s.seed);
        w.i32(s.penalty_last_n);
        w.f32(s.penalty_repeat);
        w.f32(s.penalty_freq);
        w.f32(s.penalty_present);
        w.u32(s.n_drawn);
        w.boolean(q.has_options);
        if (q.has_options)
            put(w, q.options);
        w.u32(q.n_draft);
    }
    put_i32s(w, m.tokens);
    put_i32s(w, m.pos);
    put_i32s(w, m.seq_id);
    w.u32(static_cast<uint32_t>(m.outputs.size()));
    for (uint32_t i : m.outputs) {
        w.u32(i);
    }
    w.u32(static_cast<uint32_t>(m.data.size()));
    w.raw(m.data.data(), m.data.size());
}
void put(WireWriter &w, const WireTokens &m) {
    w.u64(m.plan_epoch);
    w.u32(static_cast<uint32_t>(m.sampled.size()));
    for (const WireSampled &s : m.sampled) {
        w.i32(s.seq_id);
        w.i32(s.token);
        w.i32(s.pos);
        w.boolean(s.has_logprob);
        if (s.has_logprob) {
            w.f32(s.logprob);
            w.u8(static_cast<uint8_t>(s.top.size()));
            for (const WireTokenProb &t : s.top) {
                w.i32(t.token);
                w.f32(t.logprob);
            }
        }
    }
    w.u32(static_cast<uint32_t>(m.embeddings.size()));
    for (const WireEmbedding &e : m.embeddings) {
        w.i32(e.seq_id);
        w.i32(e.pos);
        w.u32(static_cast<uint32_t>(e.values.size()));
        for (float v : e.values)
            w.f32(v);
    }
}
void put(WireWriter &w, const WireSeqRelease &m) {
    w.u64(m.plan_epoch);
    w.i32(m.seq_id);
    w.i32(m.p0);
}
void put(WireWriter &w, const WireSeqShift &m) {
    w.u64(m.plan_epoch);
    w.i32(m.seq_id);
    w.i32(m.p0);
    w.i32(m.n_discard);
    w.i32(m.n_past);
}
void put(WireWriter &w, const WireError &m) {
    w.u16(error_code_to_wire(m.code));
    w.str(m.message);
}
void put(WireWriter &w, const WireStatus &m) {
    w.str(m.json);
}

// ---- decoders: read in the same order; counts are bounded before allocation ----

void get(WireReader &r, const WireLimits &l, WireJoin &m) {
    m.node_name = r.str("node_name", l.max_string_bytes);
    r.bytes32(m.node_key, "node_key");
    m.software_version = r.str("software_version", l.max_string_bytes);
    m.free_memory_bytes = r.u64("free_memory_bytes");
    m.mem_limit_bytes = r.u64("mem_limit_bytes");
    m.n_threads = r.u32("n_threads");
    m.os = r.str("os", l.max_string_bytes);
    m.arch = r.str("arch", l.max_string_bytes);
    m.backend = r.str("backend", l.max_string_bytes);
    m.data_endpoint = r.str("data_endpoint", l.max_string_bytes);
    m.cached_shards.resize(r.count("n_cached", l.max_cached_shards, 32 + 4 + 4));
    for (WireCachedShard &c : m.cached_shards) {
        r.bytes32(c.model_hash, "cached.model_hash");
        c.layer_first = r.u32("cached.layer_first");
        c.layer_last = r.u32("cached.layer_last");
    }
}
void get(WireReader &r, const WireLimits &, WireJoinAccept &m) {
    m.node_id = r.u32("node_id");
    m.heartbeat_interval_ms = r.u32("heartbeat_interval_ms");
}
void get(WireReader &r, const WireLimits &l, WireJoinReject &m) {
    m.code = error_code_from_wire(r.u16("code"));
    m.reason = r.str("reason", l.max_string_bytes);
}
void get(WireReader &r, const WireLimits &, WireHeartbeat &m) {
    m.timestamp_ns = r.u64("timestamp_ns");
    m.counter = r.u64("counter");
}
WireDtype get_dtype(WireReader &r) {
    const uint8_t v = r.u8("dtype");
    if (v >= WIRE_DTYPE_COUNT) {
        WireReader::fail("unknown dtype " + std::to_string(v));
    }
    return static_cast<WireDtype>(v);
}
void get(WireReader &r, const WireLimits &l, WireAssign &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.layer_first = r.u32("layer_first");
    m.layer_last = r.u32("layer_last");
    r.bytes32(m.model_hash, "model_hash");
    m.n_layer = r.u32("n_layer");
    m.n_embd = r.u32("n_embd");
    m.n_vocab = r.u32("n_vocab");
    m.dtype = get_dtype(r);
    m.n_ctx = r.u32("n_ctx");
    m.n_ubatch = r.u32("n_ubatch");
    m.n_seq_max = r.u32("n_seq_max");
    m.is_last = r.boolean("is_last");
    m.sampling = r.boolean("sampling");
    m.next_endpoint = r.str("next_endpoint", l.max_string_bytes);
    r.bytes32(m.next_key, "next_key");
    r.bytes32(m.prev_key, "prev_key");
    m.shard_url = r.str("shard_url", l.max_string_bytes);
    r.bytes32(m.shard_sha256, "shard_sha256");
    m.shard_size = r.u64("shard_size");
    m.skip_layers.resize(r.count("n_skip_layers", l.max_n_layer, 4));
    for (uint32_t &il : m.skip_layers)
        il = r.u32("skip_layers");
    m.dyn_skip = r.f32("dyn_skip");
    m.dyn_skip_probe = r.u32("dyn_skip_probe");
    m.hot_layers.resize(r.count("n_hot_layers", l.max_n_layer, 4));
    for (uint32_t &il : m.hot_layers)
        il = r.u32("hot_layers");
}
void get(WireReader &r, const WireLimits &, WireReady &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.layer_first = r.u32("layer_first");
    m.layer_last = r.u32("layer_last");
}
void get(WireReader &r, const WireLimits &, WireShardRequest &m) {
    r.bytes32(m.model_hash, "model_hash");
    m.layer_first = r.u32("layer_first");
    m.layer_last = r.u32("layer_last");
    m.offset = r.u64("offset");
}
void get(WireReader &r, const WireLimits &l, WireShardChunk &m) {
    m.offset = r.u64("offset");
    m.total = r.u64("total");
    m.bytes.resize(r.count("n_bytes", l.max_payload_bytes, 1));
    r.raw(m.bytes.data(), m.bytes.size(), "bytes");
}
void get(WireReader &r, const WireLimits &, WireShardEnd &m) {
    m.total = r.u64("total");
    r.bytes32(m.sha256, "sha256");
}
void get_i32s(WireReader &r, std::vector<int32_t> &v, uint32_t n, const char *field) {
    v.resize(n);  // the caller bounded n by the bytes left
    for (int32_t &x : v) {
        x = r.i32(field);
    }
}
void get(WireReader &r, const WireLimits &l, WireSeqOptions &o) {
    o.n_probs = r.u32("n_probs");
    if (o.n_probs > l.max_top_logprobs) {
        WireReader::fail("n_probs = " + std::to_string(o.n_probs) + " exceeds the limit " +
                         std::to_string(l.max_top_logprobs));
    }
    o.n_prompt = r.i32("n_prompt");
    if (o.n_prompt < 0)
        WireReader::fail("n_prompt = " + std::to_string(o.n_prompt) + " is negative");
    o.grammar = r.str("grammar", l.max_grammar_bytes);
    o.lazy = r.boolean("lazy");
    o.trigger_patterns.resize(r.count("n_trigger_patterns", l.max_trigger_patterns, 4));
    for (std::string &p : o.trigger_patterns)
        p = r.str("trigger pattern", l.max_string_bytes);
    const uint32_t n_trig = r.count("n_trigger_tokens", l.max_option_tokens, 4);
    get_i32s(r, o.trigger_tokens, n_trig, "trigger token");
    const uint32_t n_pre = r.count("n_prefill_tokens", l.max_option_tokens, 4);
    get_i32s(r, o.prefill_tokens, n_pre, "prefill token");
    o.pooling = r.u8("pooling");
    if (o.pooling > 3)
        WireReader::fail("pooling = " + std::to_string(o.pooling) + " is not 0..3");
    o.copy_from = r.i32("copy_from");
    o.copy_len = r.i32("copy_len");
    if (o.copy_from < -1 || o.copy_len < 0) {
        WireReader::fail("copy_from " + std::to_string(o.copy_from) + ", copy_len " +
                         std::to_string(o.copy_len) + " out of range");
    }
}
void get(WireReader &r, const WireLimits &l, WireActivations &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.dtype = get_dtype(r);
    m.n_embd = r.u32("n_embd");
    m.n_tokens = r.count("n_tokens", l.max_tokens, kTokenBytes);
    m.seqs.resize(r.count("n_seqs", l.max_tokens, kSeqBytes));
    for (WireSeq &q : m.seqs) {
        q.seq_id = r.i32("seq_id");
        q.n_tokens = r.u32("seq n_tokens");
        WireSampling &s = q.sampling;
        s.temperature = r.f32("temperature");
        s.top_k = r.i32("top_k");
        s.top_p = r.f32("top_p");
        s.min_p = r.f32("min_p");
        s.seed = r.u32("seed");
        s.penalty_last_n = r.i32("penalty_last_n");
        s.penalty_repeat = r.f32("penalty_repeat");
        s.penalty_freq = r.f32("penalty_freq");
        s.penalty_present = r.f32("penalty_present");
        s.n_drawn = r.u32("n_drawn");
        q.has_options = r.boolean("has_options");
        if (q.has_options)
            get(r, l, q.options);
        q.n_draft = r.u32("n_draft");
    }
    get_i32s(r, m.tokens, m.n_tokens, "tokens");
    get_i32s(r, m.pos, m.n_tokens, "pos");
    get_i32s(r, m.seq_id, m.n_tokens, "seq_id");
    m.outputs.resize(r.count("n_outputs", m.n_tokens, 4));
    for (uint32_t &i : m.outputs) {
        i = r.u32("output index");
    }
    m.data.resize(r.count("n_data", l.max_payload_bytes, 1));
    r.raw(m.data.data(), m.data.size(), "data");
}
float get_logprob(WireReader &r) {
    const float v = r.f32("logprob");
    if (!std::isfinite(v) || v > 0.0f)
        WireReader::fail("logprob = " + std::to_string(v) + " is not a finite value <= 0");
    return v;
}
void get(WireReader &r, const WireLimits &l, WireTokens &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.sampled.resize(r.count("n_sampled", l.max_tokens, kSampledBytes));
    for (WireSampled &s : m.sampled) {
        s.seq_id = r.i32("seq_id");
        s.token = r.i32("token");
        s.pos = r.i32("pos");
        s.has_logprob = r.boolean("has_logprob");
        if (!s.has_logprob)
            continue;
        s.logprob = get_logprob(r);
        const uint8_t n_top = r.u8("n_top");
        if (n_top > l.max_top_logprobs) {
            WireReader::fail("n_top = " + std::to_string(n_top) + " exceeds the limit " +
                             std::to_string(l.max_top_logprobs));
        }
        s.top.resize(n_top);
        for (WireTokenProb &t : s.top) {
            t.token = r.i32("top token");
            t.logprob = get_logprob(r);
        }
    }
    m.embeddings.resize(r.count("n_embeddings", l.max_tokens, 12));
    for (WireEmbedding &e : m.embeddings) {
        e.seq_id = r.i32("embedding seq_id");
        e.pos = r.i32("embedding pos");
        e.values.resize(r.count("embedding n_embd", l.max_n_embd, 4));
        for (float &v : e.values) {
            v = r.f32("embedding value");
            if (!std::isfinite(v))
                WireReader::fail("an embedding value is not finite");
        }
    }
}
void get(WireReader &r, const WireLimits &, WireSeqRelease &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.seq_id = r.i32("seq_id");
    m.p0 = r.i32("p0");
}
void get(WireReader &r, const WireLimits &, WireSeqShift &m) {
    m.plan_epoch = r.u64("plan_epoch");
    m.seq_id = r.i32("seq_id");
    m.p0 = r.i32("p0");
    m.n_discard = r.i32("n_discard");
    m.n_past = r.i32("n_past");
}
void get(WireReader &r, const WireLimits &l, WireError &m) {
    m.code = error_code_from_wire(r.u16("code"));
    m.message = r.str("message", l.max_string_bytes);
}
void get(WireReader &r, const WireLimits &l, WireStatus &m) {
    m.json = r.str("json", l.max_status_bytes);
}

// Default-constructs the body alternative of `type` (1 .. COUNT-1).
template <size_t I = 0>
WireBody make_body(size_t index) {
    if constexpr (I < std::variant_size_v<WireBody>) {
        if (index == I) {
            return WireBody(std::in_place_index<I>);
        }
        return make_body<I + 1>(index);
    } else {
        throw Error(ErrorCode::kInternal, "make_body: index out of range");
    }
}

size_t payload_reserve(const WireBody &body) {
    if (const auto *a = std::get_if<WireActivations>(&body)) {
        size_t options = 0;
        for (const WireSeq &q : a->seqs) {
            if (q.has_options) {
                options += 64 + q.options.grammar.size() +
                           4 * (q.options.trigger_tokens.size() + q.options.prefill_tokens.size());
                for (const std::string &p : q.options.trigger_patterns)
                    options += 4 + p.size();
            }
        }
        return 64 + a->seqs.size() * kSeqBytes + a->tokens.size() * kTokenBytes +
               a->outputs.size() * 4 + a->data.size() + options;
    }
    if (const auto *c = std::get_if<WireShardChunk>(&body)) {
        return 64 + c->bytes.size();
    }
    return 256;
}

}  // namespace

const char *wire_type_name(WireType type) {
    switch (type) {
        case WIRE_TYPE_JOIN:
            return "JOIN";
        case WIRE_TYPE_JOIN_ACCEPT:
            return "JOIN_ACCEPT";
        case WIRE_TYPE_JOIN_REJECT:
            return "JOIN_REJECT";
        case WIRE_TYPE_HEARTBEAT:
            return "HEARTBEAT";
        case WIRE_TYPE_ASSIGN:
            return "ASSIGN";
        case WIRE_TYPE_READY:
            return "READY";
        case WIRE_TYPE_SHARD_REQUEST:
            return "SHARD_REQUEST";
        case WIRE_TYPE_SHARD_CHUNK:
            return "SHARD_CHUNK";
        case WIRE_TYPE_SHARD_END:
            return "SHARD_END";
        case WIRE_TYPE_ACTIVATIONS:
            return "ACTIVATIONS";
        case WIRE_TYPE_TOKENS:
            return "TOKENS";
        case WIRE_TYPE_SEQ_RELEASE:
            return "SEQ_RELEASE";
        case WIRE_TYPE_ERROR:
            return "ERROR";
        case WIRE_TYPE_STATUS:
            return "STATUS";
        case WIRE_TYPE_SEQ_SHIFT:
            return "SEQ_SHIFT";
        default:
            return "INVALID";
    }
}

WireType wire_message_type(const WireMessage &msg) {
    return static_cast<WireType>(msg.body.index() + 1);
}

std::vector<uint8_t> wire_encode(const WireMessage &msg, const WireLimits &limits) {
    const WireType type = wire_message_type(msg);
    try {
        wire_detail::check_body(msg.body, limits);
    } catch (const Error &e) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("cannot encode ") + wire_type_name(type) + ": " + e.what());
    }
    std::vector<uint8_t> out;
    out.reserve(kWireHeaderBytes + payload_reserve(msg.body));
    WireWriter w(out);
    w.raw(kWireMagic, sizeof kWireMagic);
    w.u16(kWireVersion);
    w.u16(type);
    w.u32(0);  // flags
    w.u32(msg.sequence);
    w.u64(msg.request_id);
    w.u32(0);  // payload_len, patched below
    w.u32(msg.session);
    std::visit([&](const auto &m) { put(w, m); }, msg.body);
    const uint64_t payload = out.size() - kWireHeaderBytes;
    if (payload > limits.max_payload_bytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("cannot encode ") + wire_type_name(type) + ": payload of " +
                        std::to_string(payload) + " bytes exceeds max_payload_bytes " +
                        std::to_string(limits.max_payload_bytes));
    }
    for (size_t i = 0; i < 4; ++i) {
        out[24 + i] = static_cast<uint8_t>(payload >> (8 * i));
    }
    return out;
}

std::optional<WireHeader> wire_peek_header(std::span<const uint8_t> frame) {
    if (frame.size() < kWireHeaderBytes ||
        std::memcmp(frame.data(), kWireMagic, sizeof kWireMagic) != 0) {
        return std::nullopt;
    }
    WireReader h(frame.data() + 4, kWireHeaderBytes - 4);
    WireHeader out;
    out.version = h.u16("version");
    out.type = h.u16("type");
    out.flags = h.u32("flags");
    out.sequence = h.u32("sequence");
    out.request_id = h.u64("request_id");
    out.payload_len = h.u32("payload_len");
    out.session = h.u32("session");
    return out;
}

WireMessage wire_decode(std::span<const uint8_t> frame, const WireLimits &limits) {
    if (frame.size() < kWireHeaderBytes) {
        WireReader::fail("frame of " + std::to_string(frame.size()) +
                         " bytes is shorter than the 32-byte header");
    }
    if (std::memcmp(frame.data(), kWireMagic, sizeof kWireMagic) != 0) {
        WireReader::fail("bad magic (not a colony message)");
    }
    WireReader h(frame.data() + 4, kWireHeaderBytes - 4);
    const uint16_t version = h.u16("version");
    const uint16_t type = h.u16("type");
    const uint32_t flags = h.u32("flags");
    WireMessage msg;
    msg.sequence = h.u32("sequence");
    msg.request_id = h.u64("request_id");
    const uint32_t payload_len = h.u32("payload_len");
    msg.session = h.u32("session");
    if (version != kWireVersion) {
        WireReader::fail("protocol version " + std::to_string(version) +
                         " is not supported (this build speaks " + std::to_string(kWireVersion) +
                         ")");
    }
    if (type == 0 || type >= WIRE_TYPE_COUNT) {
        WireReader::fail("unknown message type " + std::to_string(type));
    }
    const char *name = wire_type_name(static_cast<WireType>(type));
    if (flags != 0) {
        WireReader::fail(std::string(name) + ": unknown flags");
    }
    if (payload_len > limits.max_payload_bytes) {
        WireReader::fail(std::string(name) + ": payload_len " + std::to_string(payload_len) +
                         " exceeds max_payload_bytes " + std::to_string(limits.max_payload_bytes));
    }
    if (payload_len != frame.size() - kWireHeaderBytes) {
        WireReader::fail(std::string(name) + ": payload_len " + std::to_string(payload_len) +
                         " but the frame carries " +
                         std::to_string(frame.size() - kWireHeaderBytes) + " payload bytes");
    }
    msg.body = make_body(type - 1);
    try {
        WireReader r(frame.data() + kWireHeaderBytes, payload_len);
        std::visit([&](auto &m) { get(r, limits, m); }, msg.body);
        r.expect_end();
        wire_detail::check_body(msg.body, limits);
    } catch (const Error &e) {
        throw Error(ErrorCode::kProtocol, std::string(name) + ": " + e.what());
    }
    return msg;
}

}  // namespace colony
