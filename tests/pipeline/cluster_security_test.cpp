// Security: admission by join token, revocation, plaintext peers, hostile
// frames on the control and data sockets, and shard verification.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <zmq.hpp>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "curve_test_socket.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/admission.h"
#include "net/hash.h"
#include "net/keys.h"
#include "net/message_fence.h"
#include "net/tokens.h"
#include "net/transport.h"
#include "net/zap.h"
#include "pipeline/endpoint.h"
#include "pipeline/shard_service.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";

std::string model() {
    return model_path("stories260K-f32.gguf");
}

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

/// Connects a raw TCP socket to 127.0.0.1:port and writes random bytes.
void send_tcp_garbage(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
        std::mt19937 rng(port);
        std::vector<uint8_t> junk(4096);
        for (auto &b : junk)
            b = static_cast<uint8_t>(rng());
        (void)::write(fd, junk.data(), junk.size());
    }
    ::close(fd);
}

void send_raw(zmq::socket_t &s, const std::vector<uint8_t> &frame) {
    ASSERT_TRUE(s.send(zmq::buffer(frame), zmq::send_flags::none));
}

std::vector<uint8_t> encode(WireBody body) {
    WireMessage m;
    m.body = std::move(body);
    return wire_encode(m);
}

/// Frames that every receiver must drop: garbage, a short header, a bad
/// magic, another version, an unknown type, a lying length, a truncated
/// payload, and a count that claims more bytes than the frame holds.
std::vector<std::vector<uint8_t>> malformed_frames() {
    std::vector<std::vector<uint8_t>> out;
    std::mt19937 rng(7);
    std::vector<uint8_t> junk(100);
    for (auto &b : junk)
        b = static_cast<uint8_t>(rng());
    out.push_back(junk);
    const std::vector<uint8_t> hb = encode(WireHeartbeat{1, 2});
    out.emplace_back(hb.begin(), hb.begin() + 31);
    auto bad_magic = hb;
    bad_magic[0] = 'X';
    out.push_back(bad_magic);
    auto bad_version = hb;
    bad_version[4] = 9;
    out.push_back(bad_version);
    auto bad_type = hb;
    bad_type[6] = 99;
    out.push_back(bad_type);
    auto long_len = hb;
    long_len[24] = 0xFF;
    out.push_back(long_len);
    WireJoin j;
    j.node_name = "mallory";
    j.node_key = curve_key_from_z85(curve_keypair_generate().public_z85);
    j.data_endpoint = "tcp://*:1";
    const std::vector<uint8_t> join = encode(j);
    out.emplace_back(join.begin(), join.end() - 5);
    auto huge_count = join;  // node_name's byte count (payload offset 0) = 4 GiB
    for (int i = 0; i < 4; ++i)
        huge_count[32 + i] = 0xFF;
    out.push_back(huge_count);
    return out;
}

TEST(PipelineSecurity, WrongTokensAreRefused) {
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model(), 1);
    JoinToken forged = join_token_parse(serve.token());
    forged.join_keys = curve_keypair_generate();  // a join key this coordinator never issued
    JoinProcess bad(dir.file("bad"), serve.coordinator(), join_token_format(forged),
                    {"--join-timeout", "10"});
    ASSERT_TRUE(bad.process().wait(15000)) << bad.log();
    EXPECT_NE(bad.process().exit_code(), 0);
    EXPECT_TRUE(contains(bad.log(), "refused the join token")) << bad.log();

    // A token of another coordinator: its key does not match, nothing answers.
    JoinToken other = forged;
    other.coordinator_public_z85 = curve_keypair_generate().public_z85;
    JoinProcess lost(dir.file("lost"), serve.coordinator(), join_token_format(other),
                     {"--join-timeout", "2"});
    ASSERT_TRUE(lost.process().wait(10000)) << lost.log();
    EXPECT_NE(lost.process().exit_code(), 0);
    EXPECT_TRUE(contains(lost.log(), "no answer from the coordinator")) << lost.log();

    const HttpReply h = http_get(serve.api_port(), "/health");
    EXPECT_EQ(h.status, 503);
    EXPECT_EQ(h.body.value("status", ""), "no workers");
    EXPECT_TRUE(h.body["workers"].empty());
    EXPECT_TRUE(contains(serve.log(), "zap: denied CURVE key")) << serve.log();
}

TEST(PipelineSecurity, RevokedTokenDropsItsWorkersAndAdmitsNoMore) {
    const std::string ref = reference_greedy(model(), kPrompt, 8);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model(), 1);
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();

    const std::string id = join_token_parse(serve.token()).id();
    int rc = -1;
    run_colony({"token", "revoke", id, "--config-dir", serve.config_dir().string()}, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(w1.process().wait(10000)) << w1.log();
    EXPECT_NE(w1.process().exit_code(), 0);
    EXPECT_TRUE(contains(w1.log(), "token revoked")) << w1.log();
    EXPECT_TRUE(wait_health(serve.api_port(), "no workers", 5000));

    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token(), {"--join-timeout", "10"});
    ASSERT_TRUE(w2.process().wait(15000)) << w2.log();
    EXPECT_NE(w2.process().exit_code(), 0);
    EXPECT_TRUE(contains(w2.log(), "refused the join token")) << w2.log();

    // A new token works without restarting the coordinator.
    std::string fresh =
        run_colony({"token", "create", "--config-dir", serve.config_dir().string()}, &rc);
    ASSERT_EQ(rc, 0);
    fresh.erase(fresh.find_last_not_of(" \n") + 1);
    JoinProcess w3(dir.file("w3"), serve.coordinator(), fresh);
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log() << w3.log();
    // the new worker serves: the single-process greedy text
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, 8) + "\n", ref);
    const std::string list =
        run_colony({"token", "list", "--config-dir", serve.config_dir().string()}, &rc);
    EXPECT_TRUE(contains(list, id + " ")) << list;
    EXPECT_TRUE(contains(list, "revoked")) << list;
    EXPECT_TRUE(contains(list, "active")) << list;
}

TEST(PipelineSecurity, PlaintextPeersCannotTalkToCurvePeers) {
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model(), 1);
    JoinProcess plain(dir.file("plain"), serve.coordinator(), "",
                      {"--insecure", "--join-timeout", "10"});
    ASSERT_TRUE(plain.process().wait(15000)) << plain.log();
    EXPECT_NE(plain.process().exit_code(), 0);
    EXPECT_TRUE(contains(plain.log(), "handshake with the coordinator")) << plain.log();
    EXPECT_EQ(http_get(serve.api_port(), "/health").body.value("status", ""), "no workers");

    // And the other way round: a CURVE worker meets a plaintext coordinator.
    ServeProcess insecure(dir.file("insecure"), model(), 1, {"--insecure"});
    JoinToken t = join_token_parse(serve.token());
    JoinProcess curve(dir.file("curve"), insecure.coordinator(), join_token_format(t),
                      {"--join-timeout", "10"});
    ASSERT_TRUE(curve.process().wait(15000)) << curve.log();
    EXPECT_NE(curve.process().exit_code(), 0);
    EXPECT_EQ(http_get(insecure.api_port(), "/health").body.value("status", ""), "no workers");
}

/// The JOIN_REJECT reason a coordinator answers to a JOIN naming arch.
std::string join_refusal(const ServeProcess &serve, const std::string &arch) {
    zmq::context_t ctx(1);
    const JoinToken token = join_token_parse(serve.token());
    zmq::socket_t c =
        curve_socket(ctx, zmq::socket_type::dealer, tcp_endpoint("127.0.0.1", serve.control_port()),
                     token.coordinator_public_z85, token.join_keys);
    c.set(zmq::sockopt::rcvtimeo, 10000);
    WireJoin j;
    j.node_name = "foreign-" + arch;
    j.node_key = curve_key_from_z85(curve_keypair_generate().public_z85);
    j.os = "Linux";
    j.arch = arch;
    j.data_endpoint = "tcp://*:1";
    send_raw(c, encode(j));
    zmq::message_t reply;
    if (!c.recv(reply))
        return "(no answer)";
    const WireMessage m = wire_decode(
        std::span<const uint8_t>(static_cast<const uint8_t *>(reply.data()), reply.size()));
    const auto *r = std::get_if<WireJoinReject>(&m.body);
    return r ? r->reason : "(answered " + std::string(wire_type_name(wire_message_type(m))) + ")";
}

TEST(PipelineSecurity, BigEndianAndUnknownMachinesAreRefusedAtJoin) {
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model(), 1);
    EXPECT_TRUE(contains(join_refusal(serve, "s390x"), "s390x is big-endian"));
    EXPECT_TRUE(contains(join_refusal(serve, "aarch64_be"), "aarch64_be is big-endian"));
    EXPECT_TRUE(contains(join_refusal(serve, "vax"), "(vax) is unknown to this coordinator"));
    EXPECT_TRUE(contains(serve.log(), "refused JOIN of 'foreign-s390x'")) << serve.log();
    // A little-endian worker still joins and serves.
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    EXPECT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
}

TEST(PipelineSecurity, HostileFramesAreDroppedAndServingGoesOn) {
    const std::string ref = reference_greedy(model(), kPrompt, 32);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model(), 1);
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
    const HttpReply health = http_get(serve.api_port(), "/health");
    const uint64_t epoch = health.body["plan_epoch"];
    const std::string worker_ep = health.body["stages"][1]["endpoint"];
    const uint16_t coord_data_port = parse_tcp_endpoint(serve.data_endpoint()).port;
    const uint16_t worker_data_port = parse_tcp_endpoint(worker_ep).port;

    // Plain TCP garbage at every port.
    for (uint16_t port : {serve.control_port(), coord_data_port, worker_data_port}) {
        send_tcp_garbage(port);
    }

    zmq::context_t ctx(1);
    const JoinToken token = join_token_parse(serve.token());
    const CurveKeypair coord_keys = load_key_file(serve.config_dir() / "node.key");
    const CurveKeypair worker_keys = load_key_file(w.config_dir() / "node.key");
    {
        // Control socket, authenticated with a valid join key.
        zmq::socket_t c = curve_socket(ctx, zmq::socket_type::dealer,
                                       tcp_endpoint("127.0.0.1", serve.control_port()),
                                       token.coordinator_public_z85, token.join_keys);
        for (const auto &f : malformed_frames())
            send_raw(c, f);
        send_raw(c, encode(WireReady{epoch, 1, 5}));  // valid, from no member
        send_raw(c, encode(WireShardRequest{{}, 0, 5, 0}));
        zmq::message_t a(std::string("part 1")), b(std::string("part 2"));
        c.send(a, zmq::send_flags::sndmore);
        c.send(b, zmq::send_flags::none);
        // One byte over the largest frame: libzmq drops the connection.
        std::vector<uint8_t> oversized(WireLimits{}.max_message_bytes() + 1, 0);
        send_raw(c, oversized);

        // The coordinator's data socket, authenticated with the worker's key.
        zmq::socket_t d = curve_socket(ctx, zmq::socket_type::push, serve.data_endpoint(),
                                       coord_keys.public_z85, worker_keys);
        for (const auto &f : malformed_frames())
            send_raw(d, f);
        send_raw(d, encode(wire_tokens(epoch, {{0, 5, 3}})));      // no sequence expects it
        send_raw(d, encode(wire_tokens(epoch + 7, {{0, 5, 3}})));  // another plan
        send_raw(d, encode(WireSeqRelease{0, 0, epoch}));          // not for this socket
        // The same socket with the coordinator's own key: not the last stage.
        zmq::socket_t d2 = curve_socket(ctx, zmq::socket_type::push, serve.data_endpoint(),
                                        coord_keys.public_z85, coord_keys);
        send_raw(d2, encode(wire_tokens(epoch, {{0, 5, 3}})));

        // The worker's data socket, authenticated with the coordinator's key.
        zmq::socket_t wd = curve_socket(ctx, zmq::socket_type::push, worker_ep,
                                        worker_keys.public_z85, coord_keys);
        for (const auto &f : malformed_frames())
            send_raw(wd, f);
        WireActivations act;
        act.plan_epoch = epoch;
        act.dtype = WIRE_DTYPE_F32;
        act.n_embd = 32;  // the model's is 64
        act.n_tokens = 1;
        act.seqs = {wire_seq(0, 1)};
        act.tokens = {1};
        act.pos = {0};
        act.seq_id = {0};
        act.outputs = {0};
        act.data.assign(32 * 4, 0);
        send_raw(wd, encode(act));
        act.n_embd = 64;
        act.data.assign(64 * 4, 0);
        act.pos = {1 << 20};  // beyond the context
        send_raw(wd, encode(act));
        act.pos = {0};
        act.plan_epoch = epoch + 3;  // another plan
        send_raw(wd, encode(act));
        act.plan_epoch = epoch;
        act.seqs = {wire_seq(9, 1)};  // seq id beyond --parallel
        act.seq_id = {9};
        send_raw(wd, encode(act));
        const auto frame = encode(act);
        send_raw(wd, std::vector<uint8_t>(frame.begin(), frame.end() - 9));  // truncated

        // A CURVE client whose key is on no list is refused by ZAP.
        zmq::socket_t stranger = curve_socket(ctx, zmq::socket_type::push, worker_ep,
                                              worker_keys.public_z85, curve_keypair_generate());
        send_raw(stranger, encode(WireSeqRelease{-1, 0, epoch}));

        // Each receiver logs what it dropped; wait for every line (the
        // sockets stay open meanwhile, so nothing sent is discarded).
        const std::vector<std::string> serve_lines = {
            "net: dropped a message", "not the last stage", "no running sequence expects"};
        const std::vector<std::string> worker_lines = {"dropped invalid ACTIVATIONS",
                                                       "zap: denied CURVE key"};
        auto all_in = [](const std::string &log, const std::vector<std::string> &lines) {
            return std::all_of(lines.begin(), lines.end(),
                               [&](const std::string &l) { return contains(log, l); });
        };
        const bool logged = eventually(
            [&] { return all_in(serve.log(), serve_lines) && all_in(w.log(), worker_lines); },
            30000);
        const std::string slog = serve.log(), wlog = w.log();
        for (const std::string &l : serve_lines)
            EXPECT_TRUE(contains(slog, l)) << "'" << l << "' not in the coordinator's log:\n"
                                           << slog;
        for (const std::string &l : worker_lines)
            EXPECT_TRUE(contains(wlog, l)) << "'" << l << "' not in the worker's log:\n" << wlog;
        EXPECT_TRUE(logged);
    }
    ctx.shutdown();

    EXPECT_TRUE(serve.process().running());
    EXPECT_TRUE(w.process().running());
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, 32) + "\n", ref);
}

TEST(PipelineSecurity, ACorruptedShardIsNeverAccepted) {
    // A coordinator played by the test: it streams a shard with one flipped
    // byte and announces the true hash.
    TempDir dir;
    const auto file = GgufFile::open(model());
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    const std::string hash = sha256_file_hex(model());
    const std::string shard_path = dir.file("2-5.gguf");
    write_shard(*file, hp, {2, 5}, hash, shard_path);
    std::vector<uint8_t> bytes;
    {
        std::ifstream in(shard_path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const WireHash true_hash = sha256(bytes);
    bytes[bytes.size() - 100] ^= 0x01;

    zmq::context_t ctx(1);
    ZapHandler zap(ctx);
    TokenStore tokens(dir.file("fake-config"));
    const CurveKeypair coord = curve_keypair_generate();
    AdmissionControl admission(tokens, zap, coord.public_z85);
    const TokenRecord rec = admission.create_token();
    zmq::socket_t router(ctx, zmq::socket_type::router);
    configure_socket(router);
    configure_curve_server(router, zap, kZapDomainControl, coord);
    router.bind("tcp://127.0.0.1:*");
    const uint16_t port = parse_tcp_endpoint(socket_last_endpoint(router)).port;

    JoinProcess w(dir.file("w"), "127.0.0.1:" + std::to_string(port),
                  join_token_format({coord.public_z85, rec.join_keys}), {"--join-timeout", "20"});
    bool got_error = false;
    bool got_ready = false;
    WireSender sender;  // numbered like a real coordinator's, or the worker's fence drops them
    router.set(zmq::sockopt::rcvtimeo, 200);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!got_error && std::chrono::steady_clock::now() < end) {
        ReceivedMessage rm = recv_message(router, {});
        if (rm.status != RECV_STATUS_OK)
            continue;
        auto reply = [&](WireBody b) {
            WireMessage m;
            std::tie(m.session, m.sequence) = sender.next();
            m.body = std::move(b);
            send_message(router, m, {}, rm.routing_id);
        };
        switch (wire_message_type(rm.message)) {
            case WIRE_TYPE_JOIN: {
                reply(WireJoinAccept{1, 1000});
                WireAssign a;
                a.plan_epoch = 1;
                a.layer_first = 2;
                a.layer_last = 5;
                a.model_hash = hash_from_hex(hash);
                a.n_layer = hp.n_layer;
                a.n_embd = hp.n_embd;
                a.n_vocab = hp.n_vocab;
                a.n_ctx = 64;
                a.n_ubatch = 8;
                a.n_seq_max = 1;
                a.is_last = true;
                a.sampling = true;
                a.next_endpoint = "tcp://127.0.0.1:9";
                a.next_key = curve_key_from_z85(coord.public_z85);
                reply(a);
                break;
            }
            case WIRE_TYPE_SHARD_REQUEST:
                reply(WireShardChunk{0, bytes.size(), bytes});
                reply(WireShardEnd{bytes.size(), true_hash});
                break;
            case WIRE_TYPE_READY:
                got_ready = true;
                break;
            case WIRE_TYPE_ERROR:
                got_error = true;
                EXPECT_TRUE(
                    contains(std::get<WireError>(rm.message.body).message, "hash mismatch"));
                break;
            default:
                break;
        }
    }
    EXPECT_TRUE(got_error) << w.log();
    EXPECT_FALSE(got_ready);
    ASSERT_TRUE(w.process().wait(10000)) << w.log();
    EXPECT_NE(w.process().exit_code(), 0);
    EXPECT_TRUE(contains(w.log(), "hash mismatch")) << w.log();
    size_t files = 0;
    if (std::filesystem::exists(w.cache_dir())) {
        for (const auto &e : std::filesystem::recursive_directory_iterator(w.cache_dir())) {
            files += e.is_regular_file() ? 1 : 0;
        }
    }
    EXPECT_EQ(files, 0u) << "the corrupted shard (or its part file) was kept";
    router.close();
}

}  // namespace
}  // namespace colony::test
