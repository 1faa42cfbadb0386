// colony's wire protocol, version 9 (DESIGN.md, decision 5). Every message is
// one ZeroMQ frame (a ROUTER socket adds its routing-id frame in front; that
// frame is ZeroMQ's, not ours). The frame is a fixed 32-byte header and a
// typed payload. Everything is little-endian; f32 is IEEE-754 binary32.
//
// Header (kWireHeaderBytes = 32):
//
//   offset size  field        meaning
//    0     4     magic        "CLNY" (0x43 0x4C 0x4E 0x59)
//    4     2     version      u16, kWireVersion; any other value is rejected
//    6     2     type         u16, WireType (values pinned below); unknown is rejected
//    8     4     flags        u32, no flag is defined: must be 0
//   12     4     sequence     u32, the sender's message counter within its session: 1, 2,
//                             3... strictly increasing (gaps allowed); NOT a llama
//                             sequence id. Receivers drop a sequence that is not above
//                             the last one of the same (sender, session) as a replay
//                             (net/message_fence.h)
//   16     8     request_id   u64, the coordinator's request id; 0 when none
//   24     4     payload_len  u32, must equal frame size - 32 and <= limits.max_payload_bytes
//   28     4     session      u32, drawn at random by each sending link (a connection, a
//                             stage's link to the next) when it is made; a restarted or
//                             re-connected sender starts a new session (net/message_fence.h)
//   32     payload_len        payload, laid out per type below
//
// Payload primitives: u8 u16 u32 u64 i32 f32 as above;
//   str  = u32 byte count n, then n bytes (n <= limits.max_string_bytes unless said otherwise)
//   key  = 32 raw bytes (a CURVE public key; all zero = none)
//   hash = 32 raw bytes (SHA-256)
//   bool = u8, 0 or 1 (anything else is rejected)
//   code = u16 error code (ERROR, JOIN_REJECT): 1 invalid_argument, 2 not_found, 3 corrupt,
//          4 unsupported, 5 out_of_range, 6 resource, 7 protocol, 8 unauthorized,
//          9 unavailable, 10 cancelled, 11 internal (colony::ErrorCode; others are rejected)
// A payload must be consumed exactly: trailing bytes are an error.
//
//   type  name          direction              payload
//    1    JOIN          worker -> coordinator  str node_name, key node_key, str software_version,
//                                              u64 free_memory_bytes, u64 mem_limit_bytes,
//                                              u32 n_threads, str os, str arch, str backend,
//                                              str data_endpoint, u32 n_cached (<= limits.
//                                              max_cached_shards), n_cached x (hash model_hash,
//                                              u32 layer_first, u32 layer_last): shards in the
//                                              worker's cache, so a plan can give it a range it has
//    2    JOIN_ACCEPT   coordinator -> worker  u32 node_id, u32 heartbeat_interval_ms
//    3    JOIN_REJECT   coordinator -> worker  u16 code, str reason
//    4    HEARTBEAT     both ways              u64 timestamp_ns, u64 counter
//    5    ASSIGN        coordinator -> worker  u64 plan_epoch, u32 layer_first, u32 layer_last,
//                                              hash model_hash, u32 n_layer, u32 n_embd,
//                                              u32 n_vocab, u8 dtype, u32 n_ctx, u32 n_ubatch,
//                                              u32 n_seq_max, bool is_last, bool sampling,
//                                              str next_endpoint, key next_key, key prev_key,
//                                              str shard_url, hash shard_sha256, u64 shard_size,
//                                              u32 n, n x u32 skip_layers (ascending, inside
//                                              [layer_first, layer_last)), f32 dyn_skip
//                                              (cosine, 0 = off), u32 dyn_skip_probe,
//                                              u32 m, m x u32 hot_layers (ascending, < n_layer)
//    6    READY         worker -> coordinator  u64 plan_epoch, u32 layer_first, u32 layer_last
//    7    SHARD_REQUEST worker -> coordinator  hash model_hash, u32 layer_first, u32 layer_last,
//                                              u64 offset
//    8    SHARD_CHUNK   coordinator -> worker  u64 offset, u64 total, u32 n, n bytes
//    9    SHARD_END     coordinator -> worker  u64 total, hash sha256
//   10    ACTIVATIONS   stage k -> stage k+1   see below
//   11    TOKENS        last stage -> coord.   u64 plan_epoch, u32 n, n x (i32 seq_id, i32 token,
//                                              i32 pos, u8 has_logprob [, f32 logprob,
//                                              u8 n_top, n_top x (i32 token, f32 logprob)]),
//                                              u32 m, m x (i32 seq_id, i32 pos, u32 n, n x f32)
//                                              (embeddings)
//   12    SEQ_RELEASE   coordinator -> stages  u64 plan_epoch, i32 seq_id (-1 = every
//                                              sequence), i32 p0
//   15    SEQ_SHIFT     coordinator -> stages  u64 plan_epoch, i32 seq_id, i32 p0, i32 n_discard,
//                                              i32 n_past: a context shift (runtime/kv_window.h)
//   13    ERROR         any                    u16 code, str message (to a worker that has
//                                              sent JOIN, code unauthorized means "pairing
//                                              pending": repeat JOIN until a person approves)
//   14    STATUS        worker -> coordinator  str json (n <= limits.max_status_bytes)
//
// ACTIVATIONS payload (one ubatch; one token belongs to exactly one sequence):
//   u64 plan_epoch
//   u8  dtype                  WireDtype of the hidden state
//   u32 n_embd                 0 = no hidden state: token ids only (the input of stage 0)
//   u32 n_tokens               1 .. limits.max_tokens
//   u32 n_seqs                 1 .. n_tokens
//   n_seqs x { i32 seq_id, u32 n_tokens, sampling, u8 has_options [, options], u32 n_draft }
//                              where sampling is 40 bytes:
//                              f32 temperature, i32 top_k, f32 top_p, f32 min_p, u32 seed,
//                              i32 penalty_last_n, f32 penalty_repeat, f32 penalty_freq,
//                              f32 penalty_present, u32 n_drawn
//                              and options: u32 n_probs, i32 n_prompt, str grammar,
//                              bool lazy, u32 n, n x str pattern, u32 n, n x i32 trigger
//                              token, u32 n, n x i32 prefill token, u8 pooling,
//                              i32 copy_from, i32 copy_len
//                              n_draft < n_tokens: the sequence's last n_draft rows are
//                              drafts to verify (runtime/speculative.h); its last
//                              n_draft + 1 rows must be outputs, with known tokens
//   n_tokens x i32 token       input token id of each position (-1 = unknown, allowed only
//                              when n_embd > 0); the last stage feeds them to the penalties
//   n_tokens x i32 pos         0 <= pos < limits.max_pos, strictly increasing per sequence
//   n_tokens x i32 seq_id      each one listed in the sequences, counts matching n_tokens
//   u32 n_outputs, n_outputs x u32 token index   strictly ascending, < n_tokens: the tokens
//                              whose hidden state gives logits (sampled at the last stage)
//   u32 n_data, n_data bytes   hidden state, dtype [n_embd, n_tokens] row-major (token t's
//                              row at t*row_bytes); n_data == n_tokens*wire_dtype_row_bytes
//
// wire_decode checks, in this order: header size, magic, version, type, flags,
// reserved, payload_len against the frame and the limit; then each field as it
// is read: every count against its limit and against the bytes left BEFORE
// anything is allocated (64-bit arithmetic, no overflow), enums and bools,
// shapes (bytes == n_embd*n_tokens*dtype size, one pos and seq_id per token),
// and no trailing bytes. Checks that need the plan (n_embd of the model, the
// context size, the plan epoch, known sequence ids) are the receiver's:
// wire_check_activations does the shape ones, MessageFence (net/message_fence.h)
// the plan epoch, the (session, sequence) and the request id.
//
// All functions here are pure and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "net/wire_dtype.h"
#include "util/error.h"

namespace colony {

// Version 2 added JOIN's cached-shard list; version 3 the sampling's n_drawn
// (recovery); version 4 a sequence's options (grammar, logprobs) and the
// logprobs of TOKENS; version 5 the header's session (the reserved field
// before) and SEQ_RELEASE's plan epoch, for fencing stale and replayed
// messages; version 6 SEQ_SHIFT (a peer that did not apply it would give
// wrong text, so older peers are refused); version 7 a sequence's n_draft
// (speculative decoding: drafts verified at the last stage); version 8
// ASSIGN's shard source (a hub URL, the shard's hash and size); version 9
// ASSIGN's skipped blocks (--skip-layers: an older worker would compute
// them and give other text); version 10 ASSIGN's dynamic skipping
// (--dynamic-skip, --hot-layers, --skip-probe: likewise). Peers of other
// versions are refused.
constexpr uint16_t kWireVersion = 10;
constexpr size_t kWireHeaderBytes = 32;
constexpr uint8_t kWireMagic[4] = {'C', 'L', 'N', 'Y'};
static_assert(kWireVersion == 10, "changing the wire layout needs a new kWireVersion");

/// Message type (header offset 6). Values are part of the protocol: never renumber.
enum WireType : uint16_t {
    WIRE_TYPE_JOIN = 1,
    WIRE_TYPE_JOIN_ACCEPT = 2,
    WIRE_TYPE_JOIN_REJECT = 3,
    WIRE_TYPE_HEARTBEAT = 4,
    WIRE_TYPE_ASSIGN = 5,
    WIRE_TYPE_READY = 6,
    WIRE_TYPE_SHARD_REQUEST = 7,
    WIRE_TYPE_SHARD_CHUNK = 8,
    WIRE_TYPE_SHARD_END = 9,
    WIRE_TYPE_ACTIVATIONS = 10,
    WIRE_TYPE_TOKENS = 11,
    WIRE_TYPE_SEQ_RELEASE = 12,
    WIRE_TYPE_ERROR = 13,
    WIRE_TYPE_STATUS = 14,
    WIRE_TYPE_SEQ_SHIFT = 15,
    WIRE_TYPE_COUNT = 16,  // one past the last; not a type
};
static_assert(WIRE_TYPE_JOIN == 1, "WIRE_TYPE_JOIN must always be 1");
static_assert(WIRE_TYPE_ACTIVATIONS == 10, "WIRE_TYPE_ACTIVATIONS must always be 10");
static_assert(WIRE_TYPE_STATUS == 14, "WIRE_TYPE_STATUS must always be 14");

/// "JOIN", "ACTIVATIONS", ...; "INVALID" for unknown values.
const char *wire_type_name(WireType type);

/// Largest penalty window (sampling's penalty_last_n, in tokens) a message may
/// ask for: the last stage allocates it per sequence. The API's bound on
/// repeat_last_n is the same (request_parse.cpp).
constexpr int32_t kWireMaxPenaltyLastN = 1 << 20;
/// Largest sampling n_drawn (the random draws a replayed sequence skips, one
/// per generated token): the default max_pos. wire_check_activations also
/// holds it to the stage's context size.
constexpr uint32_t kWireMaxDrawn = 1u << 24;

/// Bounds that every decoded message must respect; the sender checks the same
/// ones (wire_encode). Both ends should use the same values.
struct WireLimits {
    uint32_t max_payload_bytes = 256u << 20;  // bytes after the header; a ubatch of 2048
                                              // tokens x n_embd 16384 in f32 is 128 MiB
    uint32_t max_tokens = 4096;               // tokens per ubatch, entries per TOKENS message
    uint32_t max_n_embd = 65536;              // hidden size
    uint32_t max_string_bytes = 4096;         // names, endpoints, error texts
    uint32_t max_status_bytes = 256u << 10;   // STATUS json
    int32_t max_pos = 1 << 24;                // positions are in [0, max_pos)
    uint32_t max_n_layer = 4096;
    uint32_t max_n_vocab = 1u << 24;
    uint32_t max_n_ctx = 1u << 24;
    uint32_t max_n_seq = 4096;              // n_seq_max of a plan; seq ids are in [0, max_n_seq)
    uint32_t max_cached_shards = 256;       // entries of JOIN's cached-shard list
    uint32_t max_grammar_bytes = 1u << 20;  // a sequence's GBNF grammar
    uint32_t max_trigger_patterns = 64;     // lazy grammar trigger regexes per sequence
    uint32_t max_option_tokens = 1024;      // trigger and prefill token ids per sequence
    uint32_t max_top_logprobs = 20;         // alternatives per sampled token (OpenAI's limit)

    /// Largest whole frame (header + payload) in bytes: the value for ZMQ_MAXMSGSIZE.
    uint64_t max_message_bytes() const { return kWireHeaderBytes + uint64_t(max_payload_bytes); }
};

using WireKey = std::array<uint8_t, 32>;   // CURVE public key, raw (not z85)
using WireHash = std::array<uint8_t, 32>;  // SHA-256 digest

/// A shard a worker holds in its cache: layers [layer_first, layer_last) of
/// the model whose GGUF file has SHA-256 model_hash.
struct WireCachedShard {
    WireHash model_hash{};
    uint32_t layer_first = 0;
    uint32_t layer_last = 0;

    friend bool operator==(const WireCachedShard &, const WireCachedShard &) = default;
};

struct WireJoin {
    std::string node_name;
    WireKey node_key{};            // the worker's long-term CURVE public key
    std::string software_version;  // e.g. "0.1.0"
    uint64_t free_memory_bytes = 0;
    uint64_t mem_limit_bytes = 0;  // --mem-limit; 0 = none given
    uint32_t n_threads = 0;
    std::string os;             // "linux", "android", ...
    std::string arch;           // "x86_64", "aarch64", ...
    std::string backend;        // "cpu", "vulkan", ...
    std::string data_endpoint;  // where the worker's data socket listens, e.g. "tcp://*:7412"
                                // (the coordinator replaces a wildcard host by the peer's address)
    std::vector<WireCachedShard> cached_shards;  // newest first, any model

    friend bool operator==(const WireJoin &, const WireJoin &) = default;
};

struct WireJoinAccept {
    uint32_t node_id = 0;
    uint32_t heartbeat_interval_ms = 0;

    friend bool operator==(const WireJoinAccept &, const WireJoinAccept &) = default;
};

struct WireJoinReject {
    ErrorCode code = ErrorCode::kUnauthorized;
    std::string reason;

    friend bool operator==(const WireJoinReject &, const WireJoinReject &) = default;
};

struct WireHeartbeat {
    uint64_t timestamp_ns = 0;  // sender's clock (steady or system; only compared to itself)
    uint64_t counter = 0;

    friend bool operator==(const WireHeartbeat &, const WireHeartbeat &) = default;
};

/// The plan's part for one stage: its layer range [layer_first, layer_last)
/// of a model with n_layer blocks, and where to send its output.
struct WireAssign {
    uint64_t plan_epoch = 0;
    uint32_t layer_first = 0;
    uint32_t layer_last = 0;
    WireHash model_hash{};
    uint32_t n_layer = 0;
    uint32_t n_embd = 0;
    uint32_t n_vocab = 0;
    WireDtype dtype = WIRE_DTYPE_F16;  // of the hidden states this stage sends
    uint32_t n_ctx = 0;                // context size (positions) per sequence
    uint32_t n_ubatch = 0;             // max tokens per ACTIVATIONS message
    uint32_t n_seq_max = 0;            // sequences the KV cache holds at once
    bool is_last = false;              // owns output norm + LM head, sends TOKENS
    bool sampling = false;             // last stage samples (else: greedy only)
    std::string next_endpoint;         // next stage's data socket, or the coordinator's
    WireKey next_key{};                // CURVE server key of next_endpoint
    WireKey prev_key{};                // the only node key this stage's data socket admits
                                       // besides the coordinator's (zero: coordinator only)
    // Where else the shard can come from: the model's resolve URL on a hub
    // ("" = only from the coordinator), and the shard's SHA-256 and size as
    // the coordinator wrote it (zero when it has not), which a shard built
    // from the hub's byte ranges must match (docs/models.md).
    std::string shard_url;
    WireHash shard_sha256{};
    uint64_t shard_size = 0;
    // Blocks of [layer_first, layer_last) the stage skips (model/layer_skip.h),
    // ascending; their weights are not loaded.
    std::vector<uint32_t> skip_layers;
    // Dynamic skipping (runtime/dynamic_skip.h), the same for every stage:
    // the cosine threshold (0 = off), the probe interval, and the blocks of
    // the whole model never skipped, ascending.
    float dyn_skip = 0;
    uint32_t dyn_skip_probe = 0;
    std::vector<uint32_t> hot_layers;

    friend bool operator==(const WireAssign &, const WireAssign &) = default;
};

struct WireReady {
    uint64_t plan_epoch = 0;
    uint32_t layer_first = 0;
    uint32_t layer_last = 0;

    friend bool operator==(const WireReady &, const WireReady &) = default;
};

struct WireShardRequest {
    WireHash model_hash{};
    uint32_t layer_first = 0;
    uint32_t layer_last = 0;
    uint64_t offset = 0;  // resume from this byte of the shard; 0 = from the start

    friend bool operator==(const WireShardRequest &, const WireShardRequest &) = default;
};

struct WireShardChunk {
    uint64_t offset = 0;  // of bytes[0] in the shard file
    uint64_t total = 0;   // shard file size; offset + bytes.size() <= total
    std::vector<uint8_t> bytes;

    friend bool operator==(const WireShardChunk &, const WireShardChunk &) = default;
};

struct WireShardEnd {
    uint64_t total = 0;
    WireHash sha256{};  // of the whole shard file

    friend bool operator==(const WireShardEnd &, const WireShardEnd &) = default;
};

/// Per-sequence sampling parameters (libllama's sampler chain; the last stage
/// builds it). Decode checks: finite, temperature >= 0, 0 <= top_p, min_p <= 1,
/// penalty_last_n >= -1, penalty_repeat > 0.
struct WireSampling {
    float temperature = 0.0f;  // 0 = greedy
    int32_t top_k = 0;         // <= 0: off
    float top_p = 1.0f;
    float min_p = 0.0f;
    uint32_t seed = 0xFFFFFFFFu;  // LLAMA_DEFAULT_SEED: random
    int32_t penalty_last_n = 0;   // 0: off, -1: whole context
    float penalty_repeat = 1.0f;
    float penalty_freq = 0.0f;
    float penalty_present = 0.0f;
    // Tokens the sequence drew before this ubatch's history was sent: a
    // sampler made for a replayed sequence (recovery) skips that many draws
    // of its seed's stream (Sampler::skip_draws). 0 for a new sequence.
    uint32_t n_drawn = 0;

    friend bool operator==(const WireSampling &, const WireSampling &) = default;
};

/// What a sequence asks of the last stage beyond its sampling parameters
/// (runtime/sampler.h: SequenceOptions); sent with the ubatch holding the
/// sequence's position 0, where the last stage creates its sampler.
struct WireSeqOptions {
    uint32_t n_probs = 0;  // <= limits.max_top_logprobs; > 0: TOKENS carry logprobs
    int32_t n_prompt = 0;  // >= 0: positions below are the prompt (not fed to the grammar)
    std::string grammar;   // GBNF (root rule "root"), <= limits.max_grammar_bytes; empty: none
    bool lazy = false;     // grammar waits for a trigger
    std::vector<std::string> trigger_patterns;  // regexes, each <= limits.max_string_bytes
    std::vector<int32_t> trigger_tokens;        // token ids < n_vocab (receiver's check)
    std::vector<int32_t> prefill_tokens;        // accepted by the grammar at creation
    uint8_t pooling = 0;  // 0: generate; 1 mean, 2 cls, 3 last: an embedding (llama_pooling_type)
    // Before this ubatch, every stage copies positions [0, copy_len) of
    // sequence copy_from into this one (a prompt prefilled once for n
    // choices); -1: nothing to copy. Sent with the sequence's first ubatch.
    int32_t copy_from = -1;  // -1 or a sequence id < n_seq_max, not this one
    int32_t copy_len = 0;    // >= 0

    friend bool operator==(const WireSeqOptions &, const WireSeqOptions &) = default;
};

/// One sequence with tokens in an ubatch.
struct WireSeq {
    int32_t seq_id = 0;     // >= 0
    uint32_t n_tokens = 0;  // tokens of this sequence in the ubatch, >= 1
    WireSampling sampling;
    bool has_options = false;  // options follow on the wire (u8 flag)
    WireSeqOptions options;
    /// Speculative decoding: the last n_draft rows of this sequence are
    /// drafts. The last stage samples the sequence's output rows in order and
    /// stops after the first token that differs from the next row's input
    /// (runtime/speculative.h, verify_drafts); every stage first forgets the
    /// sequence's positions from its first row on (the drafts an earlier
    /// verification rejected).
    uint32_t n_draft = 0;

    friend bool operator==(const WireSeq &, const WireSeq &) = default;
};

/// One ubatch travelling from stage k to stage k+1 (see the layout above).
struct WireActivations {
    uint64_t plan_epoch = 0;
    WireDtype dtype = WIRE_DTYPE_F16;
    uint32_t n_embd = 0;  // 0: token ids only, data empty
    uint32_t n_tokens = 0;
    std::vector<WireSeq> seqs;
    std::vector<int32_t> tokens;    // [n_tokens] input token ids, -1 = unknown
    std::vector<int32_t> pos;       // [n_tokens]
    std::vector<int32_t> seq_id;    // [n_tokens]
    std::vector<uint32_t> outputs;  // token indices that produce logits, ascending
    std::vector<uint8_t> data;      // dtype [n_embd, n_tokens]

    friend bool operator==(const WireActivations &, const WireActivations &) = default;
};

/// A token and its log-probability (natural log).
struct WireTokenProb {
    int32_t token = 0;
    float logprob = 0.0f;  // finite, <= 0

    friend bool operator==(const WireTokenProb &, const WireTokenProb &) = default;
};

struct WireSampled {
    int32_t seq_id = 0;
    int32_t token = 0;
    int32_t pos = 0;                 // position of the token that was sampled from
    bool has_logprob = false;        // the sequence asked for logprobs (u8 flag)
    float logprob = 0.0f;            // of token; finite, <= 0
    std::vector<WireTokenProb> top;  // <= limits.max_top_logprobs, most likely first

    friend bool operator==(const WireSampled &, const WireSampled &) = default;
};

/// A pooled, L2-normalized embedding of a sequence's prompt; pos is its
/// last prompt position (the row that completed it).
struct WireEmbedding {
    int32_t seq_id = 0;
    int32_t pos = 0;
    std::vector<float> values;  // [n_embd], finite, n_embd <= limits.max_n_embd

    friend bool operator==(const WireEmbedding &, const WireEmbedding &) = default;
};

struct WireTokens {
    uint64_t plan_epoch = 0;
    std::vector<WireSampled> sampled;
    std::vector<WireEmbedding> embeddings;  // <= limits.max_tokens

    friend bool operator==(const WireTokens &, const WireTokens &) = default;
};

/// A sequence entry of an ACTIVATIONS ubatch without options.
inline WireSeq wire_seq(int32_t seq_id, uint32_t n_tokens, const WireSampling &sampling = {}) {
    WireSeq q;
    q.seq_id = seq_id;
    q.n_tokens = n_tokens;
    q.sampling = sampling;
    return q;
}

/// TOKENS of plan `epoch` with (seq_id, token, pos) entries and no logprobs.
inline WireTokens wire_tokens(uint64_t epoch,
                              std::initializer_list<std::array<int32_t, 3>> sampled) {
    WireTokens t;
    t.plan_epoch = epoch;
    for (const auto &[seq, token, pos] : sampled) {
        WireSampled s;
        s.seq_id = seq;
        s.token = token;
        s.pos = pos;
        t.sampled.push_back(s);
    }
    return t;
}

/// Remove KV cache cells of seq_id with position >= p0 on every stage:
/// p0 = 0 frees the sequence, p0 > 0 trims it; seq_id = -1 means all sequences.
struct WireSeqRelease {
    int32_t seq_id = 0;
    int32_t p0 = 0;
    uint64_t plan_epoch = 0;  // the plan the release belongs to (stages drop others)

    friend bool operator==(const WireSeqRelease &, const WireSeqRelease &) = default;
};

/// A context shift of one sequence on every stage (kv_window.h, KvShift):
/// drop positions [p0, p0 + n_discard), then move [p0 + n_discard, n_past)
/// down by n_discard, re-rotating their keys. It travels the ACTIVATIONS'
/// path ahead of the sequence's next ubatch.
struct WireSeqShift {
    uint64_t plan_epoch = 0;
    int32_t seq_id = 0;
    int32_t p0 = 0;
    int32_t n_discard = 0;
    int32_t n_past = 0;

    friend bool operator==(const WireSeqShift &, const WireSeqShift &) = default;
};

struct WireError {
    ErrorCode code = ErrorCode::kInternal;
    std::string message;

    friend bool operator==(const WireError &, const WireError &) = default;
};

/// A worker's status/profile as JSON text (the cluster code defines the schema).
struct WireStatus {
    std::string json;

    friend bool operator==(const WireStatus &, const WireStatus &) = default;
};

/// Alternatives in WireType order: index i holds type i + 1.
using WireBody =
    std::variant<WireJoin, WireJoinAccept, WireJoinReject, WireHeartbeat, WireAssign, WireReady,
                 WireShardRequest, WireShardChunk, WireShardEnd, WireActivations, WireTokens,
                 WireSeqRelease, WireError, WireStatus, WireSeqShift>;
static_assert(std::variant_size_v<WireBody> == WIRE_TYPE_COUNT - 1,
              "one WireBody alternative per WireType");

/// A decoded message: the header's ids and the typed payload.
struct WireMessage {
    uint32_t sequence = 0;  // the sender's counter in `session` (WireSender)
    uint64_t request_id = 0;
    uint32_t session = 0;  // the sending link's random session id (WireSender)
    WireBody body;

    friend bool operator==(const WireMessage &, const WireMessage &) = default;
};

/// The type of a message's body.
WireType wire_message_type(const WireMessage &msg);

/// Encodes msg as one frame (header + payload). Runs the same checks as
/// wire_decode, so a message that encodes also decodes with the same limits.
/// Throws Error(kInvalidArgument, reason) when a field breaks a limit or a
/// shape rule.
std::vector<uint8_t> wire_encode(const WireMessage &msg, const WireLimits &limits = {});

/// The fixed header's fields, as found in a frame.
struct WireHeader {
    uint16_t version = 0;
    uint16_t type = 0;  // not checked against WireType
    uint32_t flags = 0;
    uint32_t sequence = 0;
    uint64_t request_id = 0;
    uint32_t payload_len = 0;
    uint32_t session = 0;
};

/// Reads the header without validating anything past the magic, e.g. to answer
/// a JOIN of another protocol version with a JOIN_REJECT that says so.
/// Returns nullopt when the frame is shorter than 32 bytes or the magic is wrong.
std::optional<WireHeader> wire_peek_header(std::span<const uint8_t> frame);

/// Decodes one frame. Never reads outside `frame` and never allocates more than
/// the counts that fit in the bytes actually present.
/// Throws Error(kProtocol, reason) for anything malformed, truncated, oversized,
/// of another version, of an unknown type, or with inconsistent shapes; the
/// reason names the field and the values found.
WireMessage wire_decode(std::span<const uint8_t> frame, const WireLimits &limits = {});

/// What a stage expects of an ACTIVATIONS message under the current plan.
struct WirePlanShape {
    uint64_t plan_epoch = 0;
    uint32_t n_embd = 0;     // 0: the stage is stage 0 and takes token ids
    uint32_t n_ctx = 0;      // positions must be < n_ctx
    uint32_t n_vocab = 0;    // token ids must be < n_vocab
    uint32_t n_ubatch = 0;   // n_tokens <= n_ubatch
    uint32_t n_seq_max = 0;  // seq ids < n_seq_max
};

/// Checks a decoded ACTIVATIONS message against the receiving stage's plan.
/// Throws Error(kOutOfRange) for another plan epoch (a stale message: drop it)
/// or a position >= n_ctx (context overflow); Error(kProtocol, "expected X,
/// got Y") for n_embd != plan, n_tokens > n_ubatch, seq id >= n_seq_max, a
/// token id >= n_vocab (or -1 when the stage needs token ids) or a sampling
/// n_drawn > n_ctx.
void wire_check_activations(const WireActivations &act, const WirePlanShape &plan);

}  // namespace colony
