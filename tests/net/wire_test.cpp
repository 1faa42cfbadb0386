// Round trips of every wire message type and the pinned frame layout.
#include <gtest/gtest.h>

#include <cmath>

#include "net/wire.h"
#include "wire_samples.h"

namespace colony {
namespace {

TEST(WireProtocol, RoundTripsEveryMessageType) {
    const std::vector<WireMessage> samples = test::sample_messages();
    ASSERT_EQ(samples.size(), size_t(WIRE_TYPE_COUNT - 1));
    for (const WireMessage &m : samples) {
        SCOPED_TRACE(wire_type_name(wire_message_type(m)));
        const std::vector<uint8_t> frame = wire_encode(m);
        const WireMessage back = wire_decode(frame);
        EXPECT_EQ(wire_message_type(back), wire_message_type(m));
        EXPECT_EQ(back.sequence, m.sequence);
        EXPECT_EQ(back.request_id, m.request_id);
        EXPECT_EQ(back.session, m.session);
        EXPECT_TRUE(back == m);
        EXPECT_EQ(wire_encode(back), frame);  // canonical: re-encoding gives the same bytes
    }
}

TEST(WireProtocol, HeaderLayoutIsPinned) {
    WireMessage m;
    m.sequence = 0x11223344;
    m.request_id = 0x0102030405060708ull;
    m.session = 0xA1B2C3D4;
    m.body = WireHeartbeat{1, 2};
    const std::vector<uint8_t> f = wire_encode(m);
    ASSERT_EQ(f.size(), kWireHeaderBytes + 16);
    const std::vector<uint8_t> header(f.begin(), f.begin() + kWireHeaderBytes);
    const std::vector<uint8_t> expected = {
        'C',  'L',  'N',  'Y',                           // magic
        10,   0,                                         // version 10
        4,    0,                                         // type HEARTBEAT
        0,    0,    0,    0,                             // flags
        0x44, 0x33, 0x22, 0x11,                          // sequence
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // request_id
        16,   0,    0,    0,                             // payload_len
        0xD4, 0xC3, 0xB2, 0xA1,                          // session
    };
    EXPECT_EQ(header, expected);
    EXPECT_EQ(f[kWireHeaderBytes], 1);      // timestamp_ns, little-endian
    EXPECT_EQ(f[kWireHeaderBytes + 8], 2);  // counter
}

TEST(WireProtocol, ErrorCodesArePinned) {
    const ErrorCode codes[] = {
        ErrorCode::kInvalidArgument, ErrorCode::kNotFound,     ErrorCode::kCorrupt,
        ErrorCode::kUnsupported,     ErrorCode::kOutOfRange,   ErrorCode::kResource,
        ErrorCode::kProtocol,        ErrorCode::kUnauthorized, ErrorCode::kUnavailable,
        ErrorCode::kCancelled,       ErrorCode::kInternal,
    };
    for (size_t i = 0; i < std::size(codes); ++i) {
        WireMessage m;
        m.body = WireError{codes[i], error_code_name(codes[i])};
        const std::vector<uint8_t> f = wire_encode(m);
        EXPECT_EQ(f[kWireHeaderBytes], i + 1) << error_code_name(codes[i]);
        EXPECT_EQ(f[kWireHeaderBytes + 1], 0);
        EXPECT_TRUE(wire_decode(f) == m);
    }
}

TEST(WireProtocol, PeeksHeaderOfAnotherVersion) {
    std::vector<uint8_t> f = wire_encode(test::sample_messages()[0]);
    f[4] = 11;  // a JOIN from a future protocol version
    EXPECT_THROW(wire_decode(f), Error);
    const std::optional<WireHeader> h = wire_peek_header(f);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->version, 11);
    EXPECT_EQ(h->type, WIRE_TYPE_JOIN);
    EXPECT_EQ(h->payload_len, f.size() - kWireHeaderBytes);
    EXPECT_EQ(h->session, test::sample_messages()[0].session);
    f[0] = 'X';
    EXPECT_FALSE(wire_peek_header(f).has_value());
    EXPECT_FALSE(wire_peek_header(std::span<const uint8_t>(f.data(), 31)).has_value());
}

TEST(WireProtocol, TypeNamesAndIndicesAgree) {
    for (uint16_t t = 1; t < WIRE_TYPE_COUNT; ++t) {
        EXPECT_STRNE(wire_type_name(static_cast<WireType>(t)), "INVALID");
    }
    EXPECT_STREQ(wire_type_name(WIRE_TYPE_COUNT), "INVALID");
    WireMessage m;
    m.body = WireActivations{};
    EXPECT_EQ(wire_message_type(m), WIRE_TYPE_ACTIVATIONS);
    m.body = WireStatus{};
    EXPECT_EQ(wire_message_type(m), WIRE_TYPE_STATUS);
}

TEST(WireProtocol, TokenOnlyActivationsForStageZero) {
    WireActivations a = test::sample_activations();
    a.n_embd = 0;
    a.data.clear();
    a.tokens = {100, 200, 300};
    WireMessage m;
    m.body = a;
    EXPECT_TRUE(wire_decode(wire_encode(m)) == m);
    a.tokens[2] = -1;  // stage 0 needs every token id
    m.body = a;
    EXPECT_THROW(wire_encode(m), Error);
}

TEST(WireProtocol, EncodeRejectsInvalidMessages) {
    WireActivations a = test::sample_activations();
    a.data.pop_back();
    WireMessage m;
    m.body = a;
    try {
        wire_encode(m);
        FAIL() << "expected an error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("hidden state"), std::string::npos) << e.what();
    }
    WireAssign as;  // n_layer = 0 etc.
    m.body = as;
    EXPECT_THROW(wire_encode(m), Error);
}

// Speculative decoding: a sequence's drafts travel as its last n_draft rows,
// each an output with a known token; anything else is refused at encode and
// decode.
TEST(WireProtocol, DraftRowsRoundTripAndBadOnesAreRefused) {
    WireActivations a = test::sample_activations();
    a.tokens = {100, 200, 300};
    a.outputs = {0, 1, 2};  // seq 3: rows 0 and 2, the second a draft
    a.seqs[0].n_draft = 1;
    WireMessage m;
    m.body = a;
    const WireMessage back = wire_decode(wire_encode(m));
    EXPECT_EQ(std::get<WireActivations>(back.body), a);
    auto refused = [&](WireActivations bad, const std::string &what) {
        WireMessage b;
        b.body = std::move(bad);
        try {
            wire_encode(b);
            ADD_FAILURE() << "accepted: " << what;
        } catch (const Error &e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    WireActivations bad = a;
    bad.seqs[0].n_draft = 2;  // as many drafts as rows
    refused(bad, "drafts in");
    bad = a;
    bad.outputs = {1, 2};  // the decode row is no output
    refused(bad, "is not an output");
    bad = a;
    bad.tokens[2] = -1;  // a draft without its token
    refused(bad, "has no token");
}

TEST(WireProtocol, ChecksActivationsAgainstThePlan) {
    const WireActivations a = test::sample_activations();
    WirePlanShape plan{42, 64, 4096, 32000, 512, 8};
    EXPECT_NO_THROW(wire_check_activations(a, plan));

    auto code_of = [&](WirePlanShape p) {
        try {
            wire_check_activations(a, p);
        } catch (const Error &e) {
            return e.code();
        }
        return ErrorCode::kInternal;  // "no error" marker for the test
    };
    WirePlanShape p = plan;
    p.plan_epoch = 43;
    EXPECT_EQ(code_of(p), ErrorCode::kOutOfRange);
    p = plan;
    p.n_embd = 128;
    EXPECT_EQ(code_of(p), ErrorCode::kProtocol);
    p = plan;
    p.n_ctx = 11;  // position 11 is out of the context
    EXPECT_EQ(code_of(p), ErrorCode::kOutOfRange);
    p = plan;
    p.n_seq_max = 7;  // seq 7 does not exist
    EXPECT_EQ(code_of(p), ErrorCode::kProtocol);
    p = plan;
    p.n_vocab = 200;  // token 200 is out of the vocabulary
    EXPECT_EQ(code_of(p), ErrorCode::kProtocol);
    p = plan;
    p.n_ubatch = 2;
    EXPECT_EQ(code_of(p), ErrorCode::kProtocol);
    p = plan;
    p.n_ctx = 16;  // positions 10, 11 fit, but sequence 3 claims 17 draws to skip
    EXPECT_EQ(code_of(p), ErrorCode::kProtocol);
}

}  // namespace
}  // namespace colony

namespace colony {
namespace {

WireMessage tokens_message(WireTokens t) {
    WireMessage m;
    m.body = std::move(t);
    return m;
}

TEST(WireProtocol, RefusesOversizedOptionsAndBadLogprobsOrEmbeddings) {
    WireActivations a = test::sample_activations_with_options();
    a.seqs[1].options.n_probs = 21;  // OpenAI's limit is 20
    WireMessage m;
    m.body = a;
    EXPECT_THROW(wire_encode(m), Error);
    a = test::sample_activations_with_options();
    a.seqs[1].options.grammar.assign((1u << 20) + 1, 'x');
    m.body = a;
    EXPECT_THROW(wire_encode(m), Error);
    a = test::sample_activations_with_options();
    a.seqs[1].options.grammar.clear();  // grammar options without a grammar
    m.body = a;
    EXPECT_THROW(wire_encode(m), Error);

    WireTokens t{42, {{7, 29, 0, true, 0.5f, {}}}, {}};  // a positive logprob
    EXPECT_THROW(wire_encode(tokens_message(t)), Error);
    t = WireTokens{42, {{7, 29, 0, true, -0.5f, std::vector<WireTokenProb>(21, {1, -1.0f})}}, {}};
    EXPECT_THROW(wire_encode(tokens_message(t)), Error);
    t = WireTokens{42, {}, {{5, 9, {0.5f, std::nanf("")}}}};
    EXPECT_THROW(wire_encode(tokens_message(t)), Error);

    // a forged frame: the top-logprobs count says 200 where the limit is 20
    t = WireTokens{42, {{7, 29, 0, true, -0.5f, {{1, -1.0f}}}}, {}};
    std::vector<uint8_t> frame = wire_encode(tokens_message(t));
    const size_t n_top_at = kWireHeaderBytes + 8 + 4 + 12 + 1 + 4;
    ASSERT_EQ(frame[n_top_at], 1);
    frame[n_top_at] = 200;
    EXPECT_THROW(wire_decode(frame), Error);
}

TEST(WireProtocol, ChecksOptionTokensAgainstTheVocabulary) {
    WireActivations a = test::sample_activations_with_options();
    WirePlanShape plan{42, 64, 4096, 151936, 512, 8};
    EXPECT_NO_THROW(wire_check_activations(a, plan));
    plan.n_vocab = 32000;  // the trigger token 151657 is outside it
    EXPECT_THROW(wire_check_activations(a, plan), Error);
}

}  // namespace
}  // namespace colony
