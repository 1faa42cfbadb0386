// Hostile input for wire_decode: every truncation, a named list of forged
// fields (E11 style), and random mutations. Each must give Error(kProtocol)
// with a reason, never a crash, and never an allocation bigger than the frame
// (operator new is instrumented below).
#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <random>

#include "net/wire.h"
#include "wire_samples.h"

namespace {
std::atomic<bool> g_track{false};
std::atomic<size_t> g_max_alloc{0};

void *tracked_alloc(size_t n) {
    if (g_track.load(std::memory_order_relaxed)) {
        size_t prev = g_max_alloc.load(std::memory_order_relaxed);
        while (n > prev && !g_max_alloc.compare_exchange_weak(prev, n)) {
        }
    }
    void *p = std::malloc(n != 0 ? n : 1);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}
}  // namespace

void *operator new(size_t n) {
    return tracked_alloc(n);
}
void *operator new[](size_t n) {
    return tracked_alloc(n);
}
void operator delete(void *p) noexcept {
    std::free(p);
}
void operator delete[](void *p) noexcept {
    std::free(p);
}
void operator delete(void *p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void *p, size_t) noexcept {
    std::free(p);
}

namespace colony {
namespace {

using frame_t = std::vector<uint8_t>;

// Payload offsets of test::sample_activations() (see the layout in wire.h).
constexpr size_t H = kWireHeaderBytes;
constexpr size_t kActDtype = H + 8;
constexpr size_t kActNEmbd = H + 9;
constexpr size_t kActNTokens = H + 13;
constexpr size_t kActNSeqs = H + 17;
constexpr size_t kActSeq0 = H + 21;  // seq_id, n_tokens, temperature, ...
// 4 + 4 + 40 bytes of sampling + has_options + n_draft
constexpr size_t kActSeq1 = kActSeq0 + 53;
constexpr size_t kActTokens = kActSeq1 + 53;
constexpr size_t kActPos = kActTokens + 12;
constexpr size_t kActSeqId = kActPos + 12;
constexpr size_t kActNOutputs = kActSeqId + 12;
constexpr size_t kActOutputs = kActNOutputs + 4;
constexpr size_t kActNData = kActOutputs + 8;

void put_u32(frame_t &f, size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        f[off + i] = static_cast<uint8_t>(v >> (8 * i));
    }
}
void put_u16(frame_t &f, size_t off, uint16_t v) {
    f[off] = static_cast<uint8_t>(v);
    f[off + 1] = static_cast<uint8_t>(v >> 8);
}
void fix_payload_len(frame_t &f) {
    put_u32(f, 24, static_cast<uint32_t>(f.size() - H));
}

frame_t encode(WireBody body);

/// A valid SEQ_SHIFT (sequence 1: drop [4, 129), move [129, 255) down)
/// with the u32 at payload offset `at` replaced by `v`.
frame_t shift_with(size_t at, uint32_t v);

frame_t encode(WireBody body) {
    WireMessage m;
    m.body = std::move(body);
    return wire_encode(m);
}

frame_t shift_with(size_t at, uint32_t v) {
    frame_t f = encode(WireSeqShift{7, 1, 4, 125, 255});
    put_u32(f, H + at, v);
    return f;
}

// Decodes with allocation tracking; returns the error (or fails the test).
Error decode_error(const frame_t &f, size_t *max_alloc = nullptr) {
    g_max_alloc = 0;
    g_track = true;
    try {
        (void)wire_decode(f);
        g_track = false;
    } catch (const Error &e) {
        g_track = false;
        if (max_alloc != nullptr) {
            *max_alloc = g_max_alloc;
        }
        return e;
    }
    ADD_FAILURE() << "decoded a frame that should have been rejected";
    return Error(ErrorCode::kInternal, "no error");
}

struct hostile_case {
    const char *name;
    std::function<frame_t()> make;
    const char *reason;  // substring of the expected error message
};

frame_t activations_with(const std::function<void(frame_t &)> &mutate) {
    frame_t f = encode(test::sample_activations());
    mutate(f);
    return f;
}

std::vector<hostile_case> hostile_cases() {
    return {
        {"SHORT_HEADER", [] { return frame_t(31, 0); }, "shorter than the 32-byte header"},
        {"BAD_MAGIC", [] { return activations_with([](frame_t &f) { f[0] = 'X'; }); }, "bad magic"},
        {"VERSION_11", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 11); }); },
         "protocol version 11"},
        {"VERSION_8", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 8); }); },
         "protocol version 8"},
        {"VERSION_7", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 7); }); },
         "protocol version 7"},
        {"VERSION_6", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 6); }); },
         "protocol version 6"},
        {"VERSION_5", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 5); }); },
         "protocol version 5"},
        {"VERSION_4", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 4); }); },
         "protocol version 4"},
        {"VERSION_3", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 3); }); },
         "protocol version 3"},
        {"VERSION_2", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 2); }); },
         "protocol version 2"},
        {"VERSION_1", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 1); }); },
         "protocol version 1"},
        {"VERSION_0", [] { return activations_with([](frame_t &f) { put_u16(f, 4, 0); }); },
         "protocol version 0"},
        {"TYPE_ZERO", [] { return activations_with([](frame_t &f) { put_u16(f, 6, 0); }); },
         "unknown message type 0"},
        {"TYPE_COUNT", [] { return activations_with([](frame_t &f) { put_u16(f, 6, 16); }); },
         "unknown message type 16"},
        {"TYPE_FFFF", [] { return activations_with([](frame_t &f) { put_u16(f, 6, 0xFFFF); }); },
         "unknown message type 65535"},
        {"FLAGS_SET", [] { return activations_with([](frame_t &f) { f[8] = 1; }); },
         "unknown flags"},
        {"PAYLOAD_LEN_LONGER_THAN_FRAME",
         [] { return activations_with([](frame_t &f) { put_u32(f, 24, f.size() - H + 1); }); },
         "but the frame carries"},
        {"PAYLOAD_LEN_OVER_LIMIT",
         [] { return activations_with([](frame_t &f) { put_u32(f, 24, 0xFFFFFFFFu); }); },
         "exceeds max_payload_bytes"},
        {"TRAILING_BYTE",
         [] {
             return activations_with([](frame_t &f) {
                 f.push_back(0);
                 fix_payload_len(f);
             });
         },
         "trailing bytes"},
        {"N_TOKENS_FFFFFFFF",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNTokens, 0xFFFFFFFFu); }); },
         "n_tokens = 4294967295 exceeds the limit"},
        {"N_TOKENS_BEYOND_BYTES",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNTokens, 4000); }); },
         "n_tokens = 4000 needs"},
        {"N_SEQS_FFFFFFFF",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNSeqs, 0xFFFFFFFFu); }); },
         "n_seqs"},
        {"N_SEQS_ZERO",
         [] {
             // a consistent frame without its two sequence entries
             return activations_with([](frame_t &f) {
                 put_u32(f, kActNSeqs, 0);
                 f.erase(f.begin() + kActSeq0, f.begin() + kActTokens);
                 fix_payload_len(f);
             });
         },
         "n_seqs = 0 is outside [1, 3]"},
        {"N_OUTPUTS_ABOVE_N_TOKENS",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNOutputs, 4); }); },
         "n_outputs = 4 exceeds the limit 3"},
        {"N_DATA_FFFFFFFF",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNData, 0xFFFFFFFFu); }); },
         "n_data"},
        {"N_DATA_SHORT",
         [] {
             return activations_with([](frame_t &f) {
                 put_u32(f, kActNData, 3 * 64 * 2 - 2);
                 f.resize(f.size() - 2);
                 fix_payload_len(f);
             });
         },
         "needs 384 bytes, got 382"},
        {"N_EMBD_NOT_MATCHING_DATA",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNEmbd, 65); }); },
         "[65, 3] needs 390 bytes, got 384"},
        {"N_EMBD_HUGE",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActNEmbd, 0x7FFFFFFF); }); },
         "n_embd = 2147483647"},
        {"DTYPE_UNKNOWN", [] { return activations_with([](frame_t &f) { f[kActDtype] = 3; }); },
         "unknown dtype 3"},
        {"DTYPE_Q8_0_SHAPE",
         [] { return activations_with([](frame_t &f) { f[kActDtype] = WIRE_DTYPE_Q8_0; }); },
         "q8_0 [64, 3] needs 204 bytes, got 384"},
        {"SEQ_LISTED_TWICE",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq1, 3); }); },
         "listed twice"},
        {"SEQ_NEGATIVE",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq1, 0xFFFFFFFFu); }); },
         "seq id -1 outside"},
        {"SEQ_COUNT_MISMATCH",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 4, 1); }); },
         "declares 1 tokens, the ubatch has 2"},
        {"TEMPERATURE_NAN",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 8, 0x7FC00000u); }); },
         "temperature is not finite"},
        // found by fuzz_stage_frames: a penalty window of ~2e9 tokens made the
        // last stage allocate 7.9 GB; ~4e9 draws to skip made it hang
        {"PENALTY_WINDOW_HUGE",
         [] {
             return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 28, 0x75757575u); });
         },
         "penalty_last_n 1970632053 outside [-1, 1048576]"},
        {"N_DRAWN_HUGE",
         [] {
             return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 44, 0xFFFFFFFFu); });
         },
         "n_drawn 4294967295 exceeds"},
        {"DRAFTS_AS_MANY_AS_ROWS",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 49, 2); }); },
         "has 2 drafts in 2 rows"},
        {"DRAFT_WITHOUT_TOKEN",  // seq 3's second row has token -1
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeq0 + 49, 1); }); },
         "has no token"},
        {"TOKEN_BELOW_MINUS_ONE",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActTokens, 0xFFFFFFFEu); }); },
         "invalid id -2"},
        {"POS_NEGATIVE",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActPos + 4, 0x80000000u); }); },
         "position -2147483648"},
        {"POS_NOT_INCREASING",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActPos + 8, 10); }); },
         "not strictly increasing"},
        {"SEQ_ID_NOT_LISTED",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActSeqId + 4, 8); }); },
         "seq 8, which is not in the sequence list"},
        {"OUTPUTS_NOT_ASCENDING",
         [] { return activations_with([](frame_t &f) { put_u32(f, kActOutputs + 4, 1); }); },
         "ascending"},
        {"JOIN_NAME_LENGTH_FFFFFFFF",
         [] {
             frame_t f = encode(std::get<WireJoin>(test::sample_messages()[0].body));
             put_u32(f, H, 0xFFFFFFFFu);
             return f;
         },
         "node_name = 4294967295 exceeds the limit"},
        {"JOIN_NAME_LENGTH_BEYOND_BYTES",
         [] {
             frame_t f = encode(std::get<WireJoin>(test::sample_messages()[0].body));
             put_u32(f, H, 4000);
             return f;
         },
         "node_name = 4000 needs"},
        {"JOIN_CACHED_COUNT_OVER_LIMIT",
         [] {
             // the sample JOIN ends with n_cached = 2 and two 40-byte entries
             frame_t f = encode(std::get<WireJoin>(test::sample_messages()[0].body));
             put_u32(f, f.size() - 2 * 40 - 4, 257);
             return f;
         },
         "n_cached = 257 exceeds the limit"},
        {"JOIN_CACHED_RANGE_EMPTY",
         [] {
             frame_t f = encode(std::get<WireJoin>(test::sample_messages()[0].body));
             put_u32(f, f.size() - 4, 0);  // the last entry becomes [0, 0)
             return f;
         },
         "layer range [0, 0) is empty"},
        {"ASSIGN_BOOL_2",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             // is_last: after 8+4+4+32+4+4+4+1+4+4+4 = 73 payload bytes
             f[H + 73] = 2;
             return f;
         },
         "is_last must be 0 or 1"},
        {"ASSIGN_SHARD_URL_NOT_HTTP",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             const std::string url = "https://";  // the sample's shard_url starts so
             auto at = std::search(f.begin() + H, f.end(), url.begin(), url.end());
             const std::string other = "file:///";
             std::copy(other.begin(), other.end(), at);
             return f;
         },
         "shard_url is not an http(s) URL"},
        {"ASSIGN_SHARD_URL_WITHOUT_HASH",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             // the payload ends with shard_sha256 (32 bytes), shard_size (8),
             // the sample's skip_layers {5, 6} (4 + 2 x 4), dyn_skip and its
             // probe (4 + 4) and hot_layers {0, 11} (4 + 2 x 4)
             std::fill(f.end() - 72, f.end() - 40, 0);
             return f;
         },
         "shard_url without the shard's hash"},
        {"ASSIGN_SKIP_OUTSIDE_RANGE",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 24, 8);  // skip_layers {5, 8} of layers [4, 8)
             return f;
         },
         "skip_layers names block 8 outside the stage's layers [4,8)"},
        {"ASSIGN_SKIP_NOT_ASCENDING",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 24, 5);  // skip_layers {5, 5}
             return f;
         },
         "skip_layers is not ascending"},
        {"ASSIGN_SKIP_COUNT_PAST_PAYLOAD",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 32, 3);  // 3 blocks, 2 present: reads into dyn_skip
             f.resize(f.size() - 20);        // ... and the payload ends there
             fix_payload_len(f);
             return f;
         },
         "n_skip_layers = 3 needs 12 bytes"},
        {"ASSIGN_DYN_SKIP_NAN",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 20, 0x7FC00000u);  // dyn_skip = NaN
             return f;
         },
         "dyn_skip is not a cosine in [0, 1]"},
        {"ASSIGN_DYN_SKIP_WITHOUT_PROBE",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 16, 0);  // dyn_skip_probe = 0
             return f;
         },
         "dyn_skip without a probe interval"},
        {"ASSIGN_HOT_OUTSIDE_MODEL",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 4, 12);  // hot_layers {0, 12} of 12 blocks
             return f;
         },
         "hot_layers names block 12 of a model of 12 blocks"},
        {"ASSIGN_HOT_NOT_ASCENDING",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, f.size() - 4, 0);  // hot_layers {0, 0}
             return f;
         },
         "hot_layers is not ascending"},
        {"ASSIGN_EMPTY_RANGE",
         [] {
             frame_t f = encode(std::get<WireAssign>(test::sample_messages()[4].body));
             put_u32(f, H + 12, 4);  // layer_last = layer_first
             return f;
         },
         "layer range [4, 4)"},
        {"ERROR_CODE_UNKNOWN",
         [] {
             frame_t f = encode(WireError{ErrorCode::kInternal, "x"});
             put_u16(f, H, 99);
             return f;
         },
         "unknown error code 99"},
        {"SHARD_CHUNK_PAST_TOTAL",
         [] {
             frame_t f = encode(WireShardChunk{0, 10, std::vector<uint8_t>(10, 1)});
             put_u32(f, H, 1);  // offset 1 + 10 bytes > total 10
             return f;
         },
         "runs past total"},
        {"SHARD_CHUNK_OFFSET_OVERFLOW",
         [] {
             frame_t f = encode(WireShardChunk{0, 10, std::vector<uint8_t>(10, 1)});
             for (int i = 0; i < 8; ++i) {
                 f[H + i] = 0xFF;  // offset = 2^64-1: offset + size wraps around
             }
             return f;
         },
         "runs past total"},
        {"TOKENS_COUNT_FFFFFFFF",
         [] {
             frame_t f = encode(wire_tokens(1, {{0, 1, 2}}));
             put_u32(f, H + 8, 0xFFFFFFFFu);
             return f;
         },
         "n_sampled = 4294967295 exceeds the limit"},
        {"SEQ_RELEASE_BELOW_MINUS_ONE",
         [] {
             frame_t f = encode(WireSeqRelease{1, 0, 7});
             put_u32(f, H + 8, 0xFFFFFFFEu);  // after the plan epoch
             return f;
         },
         "seq_id -2"},
        // SEQ_SHIFT: u64 plan_epoch, then i32 seq_id, p0, n_discard, n_past
        {"SEQ_SHIFT_OF_EVERY_SEQUENCE",  // a shift names one sequence
         [] { return shift_with(8, 0xFFFFFFFFu); }, "seq_id -1"},
        {"SEQ_SHIFT_DISCARDING_NOTHING", [] { return shift_with(16, 0); }, "n_discard 0"},
        {"SEQ_SHIFT_PAST_ITS_END", [] { return shift_with(16, 251); }, "n_past 255"},
        {"SEQ_SHIFT_OVERFLOWING_P0_PLUS_N_DISCARD",  // 2^31 - 1 + 2^31 - 1 wraps in 32 bits
         [] {
             frame_t f = shift_with(12, 0x7FFFFFFFu);
             put_u32(f, H + 16, 0x7FFFFFFFu);
             return f;
         },
         "p0 2147483647"},
    };
}

TEST(WireProtocol, RejectsEachHandcraftedBadInput) {
    for (const hostile_case &c : hostile_cases()) {
        SCOPED_TRACE(c.name);
        // "" is in every message: a case that names no reason checks nothing
        ASSERT_STRNE(c.reason, "");
        const frame_t f = c.make();
        size_t max_alloc = 0;
        const Error e = decode_error(f, &max_alloc);
        EXPECT_EQ(e.code(), ErrorCode::kProtocol);
        EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos)
            << "error was: " << e.what();
        EXPECT_LE(max_alloc, 4 * f.size() + 1024) << "allocated more than the frame holds";
    }
    // The decoder keeps no state: a good frame still decodes after all that.
    EXPECT_NO_THROW(wire_decode(encode(test::sample_activations())));
}

TEST(WireProtocol, RejectsTruncationAtEveryLength) {
    for (const WireMessage &m : test::sample_messages()) {
        SCOPED_TRACE(wire_type_name(wire_message_type(m)));
        const frame_t full = wire_encode(m);
        for (size_t len = 0; len < full.size(); ++len) {
            frame_t cut(full.begin(), full.begin() + len);
            EXPECT_EQ(decode_error(cut).code(), ErrorCode::kProtocol) << "len " << len;
            if (len >= H) {  // a consistent header, so the field reader meets the end
                fix_payload_len(cut);
                size_t max_alloc = 0;
                EXPECT_EQ(decode_error(cut, &max_alloc).code(), ErrorCode::kProtocol)
                    << "len " << len;
                EXPECT_LE(max_alloc, 4 * full.size() + 1024);
            }
        }
    }
}

TEST(WireProtocol, SurvivesRandomMutations) {
    std::mt19937 rng(12345);
    size_t n_accepted = 0;
    size_t n_rejected = 0;
    for (const WireMessage &m : test::sample_messages()) {
        const frame_t good = wire_encode(m);
        for (int iter = 0; iter < 2000; ++iter) {
            frame_t f = good;
            const int n_flips = 1 + int(rng() % 4);
            for (int k = 0; k < n_flips; ++k) {
                f[rng() % f.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
            }
            if (rng() % 2 == 0 && f.size() > H) {
                fix_payload_len(f);
            }
            g_max_alloc = 0;
            g_track = true;
            try {
                (void)wire_decode(f);
                ++n_accepted;
            } catch (const Error &e) {
                EXPECT_EQ(e.code(), ErrorCode::kProtocol);
                ++n_rejected;
            }
            g_track = false;
            ASSERT_LE(g_max_alloc.load(), 4 * f.size() + 1024);
        }
    }
    EXPECT_GT(n_rejected, 0u);
    // Flips inside payload data (hidden-state bytes, names) are valid messages.
    EXPECT_GT(n_accepted, 0u);
}

TEST(WireProtocol, SmallerLimitsRejectWhatDefaultsAccept) {
    WireLimits tight;
    tight.max_tokens = 2;
    const frame_t f = encode(test::sample_activations());  // 3 tokens
    EXPECT_NO_THROW(wire_decode(f));
    try {
        wire_decode(f, tight);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kProtocol);
        EXPECT_NE(std::string(e.what()).find("n_tokens = 3 exceeds the limit 2"), std::string::npos)
            << e.what();
    }
    WireLimits tiny;
    tiny.max_payload_bytes = 100;
    EXPECT_THROW(wire_decode(f, tiny), Error);
    WireMessage m;
    m.body = test::sample_activations();
    EXPECT_THROW(wire_encode(m, tiny), Error);
}

}  // namespace
}  // namespace colony
