// Fencing (docs/security.md, "Fencing", net/message_fence.h): an authenticated
// peer that sends a message again, or sends one of another plan, is dropped
// and counted, and the request that runs meanwhile keeps its exact text.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <vector>

#include <cpp-httplib/httplib.h>
#include <zmq.hpp>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "curve_test_socket.h"
#include "net/keys.h"
#include "net/tokens.h"
#include "net/transport.h"
#include "pipeline/endpoint.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 64;

std::string model() {
    return model_path("stories260K-f32.gguf");
}

/// One frame with the given header ids.
std::vector<uint8_t> frame(WireBody body, uint32_t session, uint32_t sequence,
                           uint64_t request_id = 0) {
    WireMessage m;
    m.session = session;
    m.sequence = sequence;
    m.request_id = request_id;
    m.body = std::move(body);
    return wire_encode(m);
}

void send_raw(zmq::socket_t &s, const std::vector<uint8_t> &f) {
    ASSERT_TRUE(s.send(zmq::buffer(f), zmq::send_flags::none));
}

/// A ubatch of one token of sequence `seq` at position 0 with an all-zero
/// f32 hidden state of n_embd, for the last stage to sample.
WireActivations one_token(uint64_t epoch, int32_t seq, uint32_t n_embd) {
    WireActivations act;
    act.plan_epoch = epoch;
    act.dtype = WIRE_DTYPE_F32;
    act.n_embd = n_embd;
    act.n_tokens = 1;
    act.seqs = {wire_seq(seq, 1)};
    act.tokens = {1};
    act.pos = {0};
    act.seq_id = {seq};
    act.outputs = {0};
    act.data.assign(n_embd * 4, 0);
    return act;
}

/// The messages_dropped object of the node named `name` in /v1/cluster.
nlohmann::json dropped_of(uint16_t api_port, const std::string &name) {
    for (const auto &n :
         http_get(api_port, "/v1/cluster").body.value("nodes", nlohmann::json::array())) {
        if (n.value("name", "") == name)
            return n.value("messages_dropped", nlohmann::json());
    }
    return nullptr;
}

bool counts_are(const nlohmann::json &d, uint64_t stale, uint64_t future, uint64_t replayed,
                uint64_t unknown) {
    return d.is_object() && d.value("stale_epoch", 0u) == stale &&
           d.value("future_epoch", 0u) == future && d.value("replayed", 0u) == replayed &&
           d.value("unknown_request", 0u) == unknown;
}

TEST(PipelineSecurity, ReplayedAndStaleEpochMessagesFromAnAuthenticatedPeerAreDropped) {
    const std::string ref = reference_greedy(model(), kPrompt, kTokens);
    TempDir dir;
    // --parallel 3: the running request takes sequence 0, the injected
    // frames use sequence 2, so nothing they did could change its text.
    ServeProcess serve(dir.file("coordinator"), model(), 1,
                       {"--parallel", "3", "--wire-type", "f32"});
    // slower, so that the request still runs while the frames arrive
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token(), {"--debug-slowdown", "200"});
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << w.log();
    const HttpReply health = http_get(serve.api_port(), "/health");
    const uint64_t epoch = health.body["plan_epoch"];
    ASSERT_GE(epoch, 1u);
    const std::string worker_ep = health.body["stages"][1]["endpoint"];
    const CurveKeypair coord_keys = load_key_file(serve.config_dir() / "node.key");
    const CurveKeypair worker_keys = load_key_file(w.config_dir() / "node.key");
    const JoinToken token = join_token_parse(serve.token());
    std::string coordinator_name;
    const HttpReply cluster = http_get(serve.api_port(), "/v1/cluster");
    for (const auto &n : cluster.body.value("nodes", nlohmann::json::array())) {
        if (n.value("role", "") == "coordinator")
            coordinator_name = n.value("name", "");
    }
    ASSERT_FALSE(coordinator_name.empty());

    std::atomic<int> running_after{-1};
    auto replay = [&] {
        zmq::context_t ctx(1);
        {
            // The worker's data socket, as the coordinator (stage 0's key).
            zmq::socket_t wd = curve_socket(ctx, zmq::socket_type::push, worker_ep,
                                            worker_keys.public_z85, coord_keys);
            const uint32_t s = 0x5EED0001;
            const auto f = frame(one_token(epoch, 2, 64), s, 1, 999999);
            send_raw(wd, f);  // new: computed; its TOKENS name a request that does not run
            send_raw(wd, f);  // the same bytes again: replayed
            send_raw(wd, frame(one_token(epoch - 1, 2, 64), s, 2));      // an ended plan
            send_raw(wd, frame(one_token(epoch + 5, 2, 64), s, 3));      // a plan not made yet
            send_raw(wd, frame(WireSeqRelease{2, 0, epoch - 1}, s, 4));  // stale release
            send_raw(wd, frame(WireSeqRelease{2, 0, epoch}, s, 5));      // frees sequence 2

            // The coordinator's TOKENS socket, as the last stage (the worker's key).
            zmq::socket_t d = curve_socket(ctx, zmq::socket_type::push, serve.data_endpoint(),
                                           coord_keys.public_z85, worker_keys);
            const uint32_t t = 0x5EED0002;
            const auto tok = frame(wire_tokens(epoch, {{2, 5, 0}}), t, 1);
            send_raw(d, tok);  // new: no sequence expects it (the scheduler's own check)
            send_raw(d, tok);  // replayed
            send_raw(d, frame(wire_tokens(epoch - 1, {{0, 5, 3}}), t, 2));  // stale
            send_raw(d, frame(wire_tokens(epoch + 3, {{0, 5, 3}}), t, 3));  // future

            // The control socket, with the join key: one HEARTBEAT twice.
            zmq::socket_t c = curve_socket(ctx, zmq::socket_type::dealer,
                                           tcp_endpoint("127.0.0.1", serve.control_port()),
                                           token.coordinator_public_z85, token.join_keys);
            const auto hb = frame(WireHeartbeat{1, 1}, 0x5EED0003, 1);
            send_raw(c, hb);
            send_raw(c, hb);  // replayed

            // Every receiver counted its drops (the worker's come with its
            // next STATUS); the sockets stay open until then.
            EXPECT_TRUE(eventually(
                [&] {
                    return counts_are(dropped_of(serve.api_port(), coordinator_name), 1, 1, 2, 1) &&
                           counts_are(dropped_of(serve.api_port(), "w1"), 2, 1, 1, 0);
                },
                30000))
                << "coordinator: " << dropped_of(serve.api_port(), coordinator_name).dump()
                << "\nw1: " << dropped_of(serve.api_port(), "w1").dump() << "\n"
                << serve.log() << w.log();
            running_after =
                http_get(serve.api_port(), "/v1/cluster").body["requests"].value("running", -1);
        }
        ctx.shutdown();
    };

    std::promise<void> reached;
    bool fired = false;
    auto done = std::async(std::launch::async, [&, f = reached.get_future()]() mutable {
        if (f.wait_for(std::chrono::seconds(60)) == std::future_status::ready)
            replay();
    });
    const StreamReply r = http_stream(
        serve.api_port(), {{"prompt", kPrompt}, {"max_tokens", kTokens}, {"temperature", 0}}, 120,
        [&](int n) {
            if (!fired && n >= 4) {
                fired = true;
                reached.set_value();
            }
        });
    if (!fired)
        reached.set_value();
    done.wait();

    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(kPrompt + r.text + "\n", ref) << "the replays changed the running request's text";
    EXPECT_EQ(running_after.load(), 1) << "the request ended before the replays were counted";

    // The same counts in Prometheus' exposition.
    const std::string metrics = http_get_text(serve.api_port(), "/metrics");
    for (const std::string &line : std::vector<std::string>{
             "colony_messages_dropped_total{node=\"w1\",reason=\"replayed\"} 1",
             "colony_messages_dropped_total{node=\"w1\",reason=\"stale_epoch\"} 2",
             "colony_messages_dropped_total{node=\"w1\",reason=\"future_epoch\"} 1",
             "colony_messages_dropped_total{node=\"" + coordinator_name +
                 "\",reason=\"replayed\"} 2",
             "colony_messages_dropped_total{node=\"" + coordinator_name +
                 "\",reason=\"unknown_request\"} 1"}) {
        EXPECT_NE(metrics.find(line), std::string::npos) << line << " not in\n" << metrics;
    }
    EXPECT_TRUE(serve.process().running());
    EXPECT_TRUE(w.process().running());
}

}  // namespace
}  // namespace colony::test
