// colony_hop_bench: the cost of one pipeline hop on this machine (not a test).
// A hidden state F32 [n_embd, n_tokens] is packed to the wire dtype, sent as
// an ACTIVATIONS message over ZeroMQ (CURVE, or plaintext for comparison) on
// loopback TCP, received, decoded, validated and unpacked; the receiver sends
// it straight back and the round trip is halved. Prints a table.
//
//   colony_hop_bench [n_embd (2048)] [iterations at 1 token (300)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "net/keys.h"
#include "net/transport.h"
#include "net/wire.h"
#include "net/wire_dtype.h"
#include "net/zap.h"

namespace colony {
namespace {

using clock_type = std::chrono::steady_clock;

double us_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

WireActivations make_act(uint32_t n_embd, uint32_t n_tokens, WireDtype dtype,
                         const std::vector<float> &hidden) {
    WireActivations a;
    a.plan_epoch = 1;
    a.dtype = dtype;
    a.n_embd = n_embd;
    a.n_tokens = n_tokens;
    a.seqs = {wire_seq(0, n_tokens)};
    for (uint32_t t = 0; t < n_tokens; ++t) {
        a.tokens.push_back(1);
        a.pos.push_back(static_cast<int32_t>(t));
        a.seq_id.push_back(0);
    }
    a.outputs = {n_tokens - 1};
    a.data = wire_pack_hidden(hidden, n_embd, dtype);
    return a;
}

struct HopResult {
    double pack_us, unpack_us, hop_us;
    size_t frame_bytes;
};

/// One side echoes every message back; the other times round trips.
HopResult measure(uint32_t n_embd, uint32_t n_tokens, WireDtype dtype, bool curve, int iters) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> hidden(size_t(n_embd) * n_tokens);
    for (float &x : hidden)
        x = nd(rng);

    zmq::context_t ctx_a(1), ctx_b(1);
    const CurveKeypair ka = curve_keypair_generate(), kb = curve_keypair_generate();
    ZapHandler zap_a(ctx_a), zap_b(ctx_b);
    zap_a.allow(kZapDomainData, kb.public_z85);
    zap_b.allow(kZapDomainData, ka.public_z85);
    zmq::socket_t a_in(ctx_a, zmq::socket_type::pull), a_out(ctx_a, zmq::socket_type::push);
    zmq::socket_t b_in(ctx_b, zmq::socket_type::pull), b_out(ctx_b, zmq::socket_type::push);
    for (zmq::socket_t *s : {&a_in, &a_out, &b_in, &b_out})
        configure_socket(*s);
    if (curve) {
        configure_curve_server(a_in, zap_a, kZapDomainData, ka);
        configure_curve_server(b_in, zap_b, kZapDomainData, kb);
        configure_curve_client(a_out, kb.public_z85, ka);
        configure_curve_client(b_out, ka.public_z85, kb);
    }
    a_in.bind("tcp://127.0.0.1:*");
    b_in.bind("tcp://127.0.0.1:*");
    a_out.connect(socket_last_endpoint(b_in));
    b_out.connect(socket_last_endpoint(a_in));

    std::thread echo([&] {
        for (int i = 0; i < iters + 1; ++i) {
            ReceivedMessage rm = recv_message(b_in, {});
            const auto &act = std::get<WireActivations>(rm.message.body);
            std::vector<float> out(size_t(act.n_embd) * act.n_tokens);
            wire_unpack_hidden(act.data, act.dtype, act.n_embd, out);
            WireMessage back;
            back.body = make_act(act.n_embd, act.n_tokens, act.dtype, out);
            send_message(b_out, back, {});
        }
    });

    HopResult r{};
    std::vector<double> pack, unpack, hop;
    std::vector<float> out(hidden.size());
    for (int i = 0; i < iters + 1; ++i) {  // the first round trip warms up the connection
        const auto t0 = clock_type::now();
        WireMessage msg;
        msg.body = make_act(n_embd, n_tokens, dtype, hidden);
        const auto t1 = clock_type::now();
        send_message(a_out, msg, {});
        ReceivedMessage rm = recv_message(a_in, {});
        const auto t2 = clock_type::now();
        const auto &act = std::get<WireActivations>(rm.message.body);
        wire_check_activations(act, {1, n_embd, 1u << 20, 1u << 20, 4096, 1});
        wire_unpack_hidden(act.data, act.dtype, act.n_embd, out);
        const auto t3 = clock_type::now();
        if (i == 0) {
            r.frame_bytes = wire_encode(msg).size();
            continue;
        }
        pack.push_back(us_between(t0, t1));
        unpack.push_back(us_between(t2, t3));
        // the round trip holds two hops, each with a pack (sender) and an unpack (receiver)
        hop.push_back((us_between(t0, t3)) / 2.0);
    }
    echo.join();
    r.pack_us = median(pack);
    r.unpack_us = median(unpack);
    r.hop_us = median(hop);
    return r;
}

}  // namespace
}  // namespace colony

int main(int argc, char **argv) {
    using namespace colony;
    const uint32_t n_embd = argc > 1 ? static_cast<uint32_t>(std::atoi(argv[1])) : 2048;
    const int iters = argc > 2 ? std::atoi(argv[2]) : 300;
    std::printf(
        "one pipeline hop on loopback: pack -> ACTIVATIONS -> ZeroMQ -> decode -> check "
        "-> unpack (median)\n");
    std::printf("%-6s %-5s %7s %12s %9s %10s %10s\n", "mode", "dtype", "tokens", "frame bytes",
                "pack us", "unpack us", "hop us");
    for (bool curve : {true, false}) {
        for (WireDtype d : {WIRE_DTYPE_F16, WIRE_DTYPE_F32, WIRE_DTYPE_Q8_0}) {
            for (uint32_t n_tokens : {1u, 512u}) {
                const HopResult r = measure(n_embd, n_tokens, d, curve, n_tokens == 1 ? iters : 20);
                std::printf("%-6s %-5s %7u %12zu %9.1f %10.1f %10.1f\n", curve ? "curve" : "plain",
                            wire_dtype_name(d), n_tokens, r.frame_bytes, r.pack_us, r.unpack_us,
                            r.hop_us);
            }
        }
    }
    return 0;
}
