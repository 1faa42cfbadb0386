// CURVE admission over tcp://127.0.0.1 with ephemeral ports: valid, wrong,
// revoked and plaintext clients; pinned server key; ZMQ_MAXMSGSIZE; forged
// frames from an authenticated peer; insecure mode.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "net/admission.h"
#include "net/transport.h"
#include "net_test_util.h"
#include "util/error.h"

namespace colony {
namespace {

using namespace std::chrono_literals;

constexpr int kPositiveTimeoutMs = 5000;  // a message that should arrive
constexpr int kNegativeTimeoutMs = 800;   // a message that should not

WireMessage heartbeat(uint64_t counter) {
    WireMessage m;
    m.sequence = static_cast<uint32_t>(counter);
    m.body = WireHeartbeat{123, counter};
    return m;
}

// Waits until pred() holds or timeout; returns pred().
template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

// A coordinator-like ROUTER: CURVE server on 127.0.0.1:<ephemeral> in the
// control domain, admission driven by a token store in a temp dir.
class CurveServer : public ::testing::Test {
  protected:
    void SetUp() override {
        limits_.max_payload_bytes = 64 << 10;
        options_.max_message_bytes = int64_t(limits_.max_message_bytes());
        server_keys_ = curve_keypair_generate();
        store_ = std::make_unique<TokenStore>(tmp_.path());
        admission_ = std::make_unique<AdmissionControl>(*store_, zap_, server_keys_.public_z85);
        router_ = bind_server(kZapDomainControl);
    }

    zmq::socket_t bind_server(const char *domain) {
        zmq::socket_t s(server_ctx_, zmq::socket_type::router);
        configure_socket(s, options_);
        configure_curve_server(s, zap_, domain, server_keys_);
        s.set(zmq::sockopt::rcvtimeo, kPositiveTimeoutMs);
        s.bind("tcp://127.0.0.1:*");
        return s;
    }

    zmq::socket_t connect_client(const zmq::socket_t &server, const CurveKeypair *client_keys,
                                 const std::string *server_key = nullptr) {
        zmq::socket_t s(client_ctx_, zmq::socket_type::dealer);
        configure_socket(s, options_);
        if (client_keys != nullptr) {
            configure_curve_client(s, server_key ? *server_key : server_keys_.public_z85,
                                   *client_keys);
        }
        s.set(zmq::sockopt::rcvtimeo, kPositiveTimeoutMs);
        s.set(zmq::sockopt::sndtimeo, 1000);
        s.connect(socket_last_endpoint(server));
        return s;
    }

    ReceivedMessage recv_within(zmq::socket_t &s, int timeout_ms) {
        s.set(zmq::sockopt::rcvtimeo, timeout_ms);
        return recv_message(s, limits_);
    }

    // Sends from a client that must NOT get through; asserts that nothing
    // arrives and that the ZAP handler (or the mechanism) refused it.
    void expect_nothing_arrives(zmq::socket_t &client, zmq::socket_t &server) {
        (void)send_message(client, heartbeat(1), limits_, {}, zmq::send_flags::dontwait);
        const ReceivedMessage r = recv_within(server, kNegativeTimeoutMs);
        EXPECT_EQ(r.status, RECV_STATUS_TIMEOUT);
    }

    test::temp_dir tmp_;
    WireLimits limits_;
    TransportOptions options_;
    zmq::context_t server_ctx_;
    zmq::context_t client_ctx_;
    ZapHandler zap_{server_ctx_};
    CurveKeypair server_keys_;
    std::unique_ptr<TokenStore> store_;
    std::unique_ptr<AdmissionControl> admission_;
    zmq::socket_t router_;
};

TEST_F(CurveServer, ValidTokenClientExchangesMessages) {
    const TokenRecord t = admission_->create_token();
    const JoinToken token =
        join_token_parse(join_token_format(JoinToken{server_keys_.public_z85, t.join_keys}));
    zmq::socket_t client = connect_client(router_, &token.join_keys, &token.coordinator_public_z85);
    ASSERT_TRUE(send_message(client, heartbeat(7), limits_));

    const ReceivedMessage r = recv_message(router_, limits_);
    ASSERT_EQ(r.status, RECV_STATUS_OK) << r.drop_reason;
    EXPECT_EQ(r.user_id, t.id);  // the ZAP User-Id names the token
    EXPECT_EQ(r.peer_address, "127.0.0.1");
    EXPECT_FALSE(r.routing_id.empty());
    EXPECT_TRUE(r.message == heartbeat(7));

    ASSERT_TRUE(send_message(router_, heartbeat(8), limits_, r.routing_id));
    const ReceivedMessage back = recv_message(client, limits_);
    ASSERT_EQ(back.status, RECV_STATUS_OK);
    EXPECT_TRUE(back.message == heartbeat(8));
    EXPECT_GE(zap_.n_admitted(), 1u);
}

TEST_F(CurveServer, WrongKeyClientGetsNothingThrough) {
    admission_->create_token();
    const CurveKeypair stranger = curve_keypair_generate();
    zmq::socket_t client = connect_client(router_, &stranger);
    expect_nothing_arrives(client, router_);
    EXPECT_TRUE(wait_for([&] { return zap_.n_denied() >= 1; }, 2000ms));
    EXPECT_EQ(zap_.n_admitted(), 0u);
}

TEST_F(CurveServer, RevokedTokenGetsNothingThrough) {
    const TokenRecord t = admission_->create_token();
    admission_->revoke_token(t.id);
    zmq::socket_t client = connect_client(router_, &t.join_keys);
    expect_nothing_arrives(client, router_);
    EXPECT_TRUE(wait_for([&] { return zap_.n_denied() >= 1; }, 2000ms));

    // A token created after it still works on the same server.
    const TokenRecord t2 = admission_->create_token();
    zmq::socket_t good = connect_client(router_, &t2.join_keys);
    ASSERT_TRUE(send_message(good, heartbeat(2), limits_));
    const ReceivedMessage r = recv_message(router_, limits_);
    ASSERT_EQ(r.status, RECV_STATUS_OK);
    EXPECT_EQ(r.user_id, t2.id);
}

TEST_F(CurveServer, PlaintextClientCannotTalkToCurveServer) {
    zmq::socket_t client = connect_client(router_, nullptr);  // NULL mechanism
    expect_nothing_arrives(client, router_);
    EXPECT_EQ(zap_.n_admitted(), 0u);
}

TEST_F(CurveServer, ClientRefusesServerWithAnotherKey) {
    const TokenRecord t = admission_->create_token();
    const std::string impostor_key = curve_keypair_generate().public_z85;
    zmq::socket_t client = connect_client(router_, &t.join_keys, &impostor_key);
    expect_nothing_arrives(client, router_);
    EXPECT_EQ(zap_.n_admitted(), 0u);  // the handshake fails before ZAP is asked
}

TEST_F(CurveServer, OversizedMessageIsDroppedAndServerKeepsWorking) {
    const TokenRecord t = admission_->create_token();
    zmq::socket_t client = connect_client(router_, &t.join_keys);
    ASSERT_TRUE(send_message(client, heartbeat(1), limits_));
    ASSERT_EQ(recv_message(router_, limits_).status, RECV_STATUS_OK);

    // A frame one byte over ZMQ_MAXMSGSIZE never reaches colony's code.
    const std::vector<uint8_t> huge(limits_.max_message_bytes() + 1, 0x5a);
    ASSERT_TRUE(client.send(zmq::buffer(huge), zmq::send_flags::none));
    EXPECT_EQ(recv_within(router_, kNegativeTimeoutMs).status, RECV_STATUS_TIMEOUT);

    // libzmq dropped that connection; the client reconnects and gets through again.
    bool through = false;
    for (int i = 0; i < 20 && !through; ++i) {
        (void)send_message(client, heartbeat(100 + i), limits_, {}, zmq::send_flags::dontwait);
        through = recv_within(router_, 250).status == RECV_STATUS_OK;
    }
    EXPECT_TRUE(through) << "the server did not recover after an oversized message";

    // A frame of exactly the largest valid size still passes under CURVE.
    WireMessage big;
    big.body = WireShardChunk{0, 1 << 20, {}};
    const size_t fixed = kWireHeaderBytes + 8 + 8 + 4;
    std::get<WireShardChunk>(big.body).bytes.resize(limits_.max_message_bytes() - fixed, 7);
    ASSERT_EQ(wire_encode(big, limits_).size(), limits_.max_message_bytes());
    zmq::socket_t client2 = connect_client(router_, &t.join_keys);
    ASSERT_TRUE(send_message(client2, big, limits_));
    const ReceivedMessage r = recv_within(router_, kPositiveTimeoutMs);
    ASSERT_EQ(r.status, RECV_STATUS_OK) << r.drop_reason;
    EXPECT_TRUE(r.message == big);
}

TEST_F(CurveServer, ForgedFrameFromAuthenticatedPeerIsDropped) {
    const TokenRecord t = admission_->create_token();
    zmq::socket_t client = connect_client(router_, &t.join_keys);
    std::vector<uint8_t> forged = wire_encode(heartbeat(1), limits_);
    forged[6] = 99;  // unknown type
    ASSERT_TRUE(client.send(zmq::buffer(forged), zmq::send_flags::none));
    const ReceivedMessage bad = recv_message(router_, limits_);
    EXPECT_EQ(bad.status, RECV_STATUS_DROPPED);
    EXPECT_NE(bad.drop_reason.find("unknown message type 99"), std::string::npos)
        << bad.drop_reason;
    EXPECT_EQ(bad.user_id, t.id);

    const std::string three[] = {"a", "b", "c"};  // too many frames
    client.send(zmq::buffer(three[0]), zmq::send_flags::sndmore);
    client.send(zmq::buffer(three[1]), zmq::send_flags::sndmore);
    client.send(zmq::buffer(three[2]), zmq::send_flags::none);
    EXPECT_EQ(recv_message(router_, limits_).status, RECV_STATUS_DROPPED);

    ASSERT_TRUE(send_message(client, heartbeat(2), limits_));
    const ReceivedMessage good = recv_message(router_, limits_);
    ASSERT_EQ(good.status, RECV_STATUS_OK);
    EXPECT_TRUE(good.message == heartbeat(2));
}

TEST_F(CurveServer, DataPlaneAdmitsOnlyMembers) {
    zmq::socket_t data = bind_server(kZapDomainData);
    const TokenRecord t = admission_->create_token();
    const CurveKeypair node = curve_keypair_generate();

    // The join key opens the control socket but not the data plane.
    zmq::socket_t as_token = connect_client(data, &t.join_keys);
    expect_nothing_arrives(as_token, data);
    // Nor does the node key before JOIN made it a member.
    zmq::socket_t early = connect_client(data, &node);
    expect_nothing_arrives(early, data);

    admission_->admit_member(t.id, node.public_z85);
    zmq::socket_t member = connect_client(data, &node);
    ASSERT_TRUE(send_message(member, heartbeat(3), limits_));
    const ReceivedMessage r = recv_message(data, limits_);
    ASSERT_EQ(r.status, RECV_STATUS_OK);
    EXPECT_EQ(r.user_id, key_fingerprint(node.public_z85));

    // Revoking the token removes the member: a new connection is refused.
    admission_->revoke_token(t.id);
    zmq::socket_t after = connect_client(data, &node);
    expect_nothing_arrives(after, data);
}

TEST(Transport, InsecureModeWorksAndWarnsEachTime) {
    zmq::context_t ctx;
    ZapHandler zap(ctx);  // a NULL-mechanism socket without a ZAP domain never asks it
    WireLimits limits;
    zmq::socket_t server(ctx, zmq::socket_type::router);
    zmq::socket_t client(ctx, zmq::socket_type::dealer);
    testing::internal::CaptureStderr();
    configure_socket(server);
    configure_insecure(server, "test server");
    configure_socket(client);
    configure_insecure(client, "test client");
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("INSECURE: test server"), std::string::npos) << log;
    EXPECT_NE(log.find("INSECURE: test client"), std::string::npos) << log;
    server.bind("tcp://127.0.0.1:*");
    const std::string endpoint = socket_last_endpoint(server);
    EXPECT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
    EXPECT_NE(endpoint, "tcp://127.0.0.1:*");
    client.connect(endpoint);
    server.set(zmq::sockopt::rcvtimeo, kPositiveTimeoutMs);
    ASSERT_TRUE(send_message(client, heartbeat(5), limits));
    const ReceivedMessage r = recv_message(server, limits);
    ASSERT_EQ(r.status, RECV_STATUS_OK);
    EXPECT_TRUE(r.user_id.empty());
    EXPECT_EQ(zap.n_admitted() + zap.n_denied(), 0u);
}

TEST(Transport, OneZapHandlerPerContext) {
    zmq::context_t ctx;
    ZapHandler first(ctx);
    try {
        ZapHandler second(ctx);
        FAIL() << "a second ZAP handler bound in the same context";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInternal);
    }
}

TEST(Transport, SendRejectsInvalidMessage) {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    WireMessage m;
    m.body = WireActivations{};  // n_tokens = 0
    try {
        send_message(s, m, WireLimits{});
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
}

}  // namespace
}  // namespace colony
