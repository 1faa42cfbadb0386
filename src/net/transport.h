// ZeroMQ socket set-up and framed send/receive of wire messages (DESIGN.md,
// decision 5). Sockets are cppzmq's owning zmq::socket_t; these helpers only
// set options, so they work for any socket type (ROUTER, DEALER, PUSH, PULL).
//
// Security modes:
//   CURVE server: configure_curve_server(). Needs a ZapHandler in the same
//     context (started BEFORE bind): without one libzmq would admit any CURVE
//     client. A CURVE server refuses peers that use the NULL mechanism
//     (plaintext) or PLAIN: the handshake fails before any message passes.
//   CURVE client: configure_curve_client() with the server's public key pinned.
//   Insecure (NULL mechanism, plaintext, no authentication): configure_insecure(),
//     only behind an explicit --insecure flag; it logs a warning each time.
//
// Limits: ZMQ_MAXMSGSIZE is set on every socket to the largest valid frame
// (WireLimits::max_message_bytes()) plus kCurveMessageOverheadBytes, because
// under CURVE libzmq applies the limit to the encrypted MESSAGE command.
// libzmq checks a frame's length field before it allocates, and drops the
// connection of a peer that sends more (the peer reconnects; other peers are
// not affected). The test OversizedMessageIsDroppedAndServerKeepsWorking pins
// both edges: max_message_bytes passes, one byte more is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "net/keys.h"
#include "net/wire.h"
#include "net/zap.h"

namespace colony {

/// Bytes CURVE adds to each message frame: the command name "\x07MESSAGE" (8),
/// the short nonce (8), the Poly1305 tag (16) and the flags byte (1).
/// ref: rfc.zeromq.org/spec/26 (CurveZMQ), MESSAGE command.
constexpr int64_t kCurveMessageOverheadBytes = 33;

/// Socket options common to every colony socket. Defaults suit a LAN or Wi-Fi.
struct TransportOptions {
    int heartbeat_ivl_ms = 1000;      // ZMTP PING every second
    int heartbeat_timeout_ms = 5000;  // no traffic for 5 s after a PING: connection dead
    int heartbeat_ttl_ms = 10000;     // the peer may drop us after 10 s without traffic
    int tcp_keepalive_idle_s = 30;    // TCP keepalive (SO_KEEPALIVE) for dead NAT paths
    int tcp_keepalive_intvl_s = 10;
    int tcp_keepalive_cnt = 3;
    int linger_ms = 100;           // pending messages are kept this long after close
    int handshake_ivl_ms = 10000;  // a peer that does not finish the handshake is dropped
    int reconnect_ivl_ms = 100;
    int reconnect_ivl_max_ms = 2000;
    // largest frame accepted; ZMQ_MAXMSGSIZE = this + kCurveMessageOverheadBytes
    int64_t max_message_bytes = int64_t(WireLimits{}.max_message_bytes());
};

/// Sets heartbeats, TCP keepalive, ZMQ_MAXMSGSIZE, linger, handshake and
/// reconnect intervals. Call before bind/connect. Throws zmq::error_t on an
/// invalid option value.
void configure_socket(zmq::socket_t &socket, const TransportOptions &options = {});

/// Makes socket a CURVE server with server_keys in ZAP domain `domain` of zap
/// (kZapDomainControl or kZapDomainData). zap must run in the socket's context.
/// Call before bind. Throws Error(kInvalidArgument) on malformed keys.
void configure_curve_server(zmq::socket_t &socket, const ZapHandler &zap, const std::string &domain,
                            const CurveKeypair &server_keys);

/// Makes socket a CURVE client that only talks to the server holding
/// server_public_z85, authenticating with client_keys. Call before connect.
/// Throws Error(kInvalidArgument) on malformed keys.
void configure_curve_client(zmq::socket_t &socket, const std::string &server_public_z85,
                            const CurveKeypair &client_keys);

/// Leaves socket on the NULL mechanism (plaintext, anyone may connect) and
/// logs a warning naming `role` ("control server", "data client", ...).
void configure_insecure(zmq::socket_t &socket, std::string_view role);

/// The endpoint a socket is bound to (ZMQ_LAST_ENDPOINT), e.g.
/// "tcp://127.0.0.1:40123" after binding "tcp://127.0.0.1:*".
std::string socket_last_endpoint(const zmq::socket_t &socket);

/// Encodes msg and sends it as one frame, preceded by a routing-id frame when
/// routing_id is non-empty (ROUTER sockets). Returns false when the send would
/// block (ZMQ_SNDTIMEO elapsed, or send_flags::dontwait and the queue is full).
/// Throws Error(kInvalidArgument) when msg does not encode (wire_encode),
/// Error(kUnavailable) when the peer is unknown to a ROUTER with
/// ZMQ_ROUTER_MANDATORY or the socket fails.
bool send_message(zmq::socket_t &socket, const WireMessage &msg, const WireLimits &limits,
                  std::string_view routing_id = {}, zmq::send_flags flags = zmq::send_flags::none);

enum RecvStatus {
    RECV_STATUS_OK,       // message holds a valid, decoded message
    RECV_STATUS_TIMEOUT,  // nothing arrived (ZMQ_RCVTIMEO elapsed or dontwait)
    RECV_STATUS_DROPPED,  // something arrived and was invalid: logged and dropped
};

struct ReceivedMessage {
    RecvStatus status = RECV_STATUS_TIMEOUT;
    std::string routing_id;    // ROUTER: the peer's routing id frame; else empty
    std::string user_id;       // ZAP User-Id: fingerprint of the peer's CURVE key ("" if none)
    std::string peer_address;  // "Peer-Address" (IP) when libzmq knows it
    WireMessage message;       // valid when status == RECV_STATUS_OK
    std::string drop_reason;   // why, when status == RECV_STATUS_DROPPED
};

/// Receives one message: [routing id,] frame. A message with more frames, or a
/// frame that wire_decode rejects, is consumed, logged (warning with the
/// reason, user id and peer address) and returned as RECV_STATUS_DROPPED; the
/// caller goes on with the next one. Throws Error(kUnavailable) only when the
/// socket itself fails (e.g. the context was terminated).
ReceivedMessage recv_message(zmq::socket_t &socket, const WireLimits &limits,
                             zmq::recv_flags flags = zmq::recv_flags::none);

}  // namespace colony
