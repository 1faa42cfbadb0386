#include "net/transport.h"

#include <vector>

#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr size_t kMaxParts = 2;  // [routing id,] frame

void check_keypair(const CurveKeypair &keys) {
    if (curve_public_from_secret(keys.secret_z85) != keys.public_z85) {
        throw Error(ErrorCode::kInvalidArgument, "CURVE public key does not match the secret key");
    }
}

std::string message_property(zmq::message_t &m, const char *name) {
    const char *v = zmq_msg_gets(m.handle(), name);
    return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

void configure_socket(zmq::socket_t &socket, const TransportOptions &o) {
    socket.set(zmq::sockopt::heartbeat_ivl, o.heartbeat_ivl_ms);
    socket.set(zmq::sockopt::heartbeat_timeout, o.heartbeat_timeout_ms);
    socket.set(zmq::sockopt::heartbeat_ttl, o.heartbeat_ttl_ms);
    socket.set(zmq::sockopt::tcp_keepalive, 1);
    socket.set(zmq::sockopt::tcp_keepalive_idle, o.tcp_keepalive_idle_s);
    socket.set(zmq::sockopt::tcp_keepalive_intvl, o.tcp_keepalive_intvl_s);
    socket.set(zmq::sockopt::tcp_keepalive_cnt, o.tcp_keepalive_cnt);
    socket.set(zmq::sockopt::maxmsgsize, o.max_message_bytes + kCurveMessageOverheadBytes);
    socket.set(zmq::sockopt::linger, o.linger_ms);
    socket.set(zmq::sockopt::handshake_ivl, o.handshake_ivl_ms);
    socket.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
    socket.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
}

void configure_curve_server(zmq::socket_t &socket, const ZapHandler &, const std::string &domain,
                            const CurveKeypair &server_keys) {
    check_keypair(server_keys);
    socket.set(zmq::sockopt::zap_domain, domain);
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, server_keys.secret_z85);
}

void configure_curve_client(zmq::socket_t &socket, const std::string &server_public_z85,
                            const CurveKeypair &client_keys) {
    check_keypair(client_keys);
    (void)curve_key_from_z85(server_public_z85);  // validates
    socket.set(zmq::sockopt::curve_serverkey, server_public_z85);
    socket.set(zmq::sockopt::curve_publickey, client_keys.public_z85);
    socket.set(zmq::sockopt::curve_secretkey, client_keys.secret_z85);
}

void configure_insecure(zmq::socket_t &socket, std::string_view role) {
    socket.set(zmq::sockopt::curve_server, false);
    COLONY_LOG_WARN(
        "INSECURE: %.*s uses plaintext with no authentication (--insecure); anyone "
        "who can reach it can read and inject traffic",
        static_cast<int>(role.size()), role.data());
}

std::string socket_last_endpoint(const zmq::socket_t &socket) {
    return socket.get(zmq::sockopt::last_endpoint);
}

bool send_message(zmq::socket_t &socket, const WireMessage &msg, const WireLimits &limits,
                  std::string_view routing_id, zmq::send_flags flags) {
    const std::vector<uint8_t> frame = wire_encode(msg, limits);
    try {
        if (!routing_id.empty()) {
            if (!socket.send(zmq::buffer(routing_id.data(), routing_id.size()),
                             flags | zmq::send_flags::sndmore)) {
                return false;
            }
        }
        return socket.send(zmq::buffer(frame), flags).has_value();
    } catch (const zmq::error_t &e) {
        throw Error(
            ErrorCode::kUnavailable,
            std::string("send ") + wire_type_name(wire_message_type(msg)) + ": " + e.what());
    }
}

ReceivedMessage recv_message(zmq::socket_t &socket, const WireLimits &limits,
                             zmq::recv_flags flags) {
    ReceivedMessage out;
    std::vector<zmq::message_t> parts;
    try {
        zmq::message_t first;
        if (!socket.recv(first, flags)) {
            return out;  // RECV_STATUS_TIMEOUT
        }
        parts.push_back(std::move(first));
        bool more = parts.back().more();
        while (more) {  // the rest of a multipart message is already queued
            zmq::message_t part;
            (void)socket.recv(part, zmq::recv_flags::none);
            more = part.more();
            if (parts.size() <= kMaxParts) {
                parts.push_back(std::move(part));
            }
        }
    } catch (const zmq::error_t &e) {
        throw Error(ErrorCode::kUnavailable, std::string("receive: ") + e.what());
    }
    zmq::message_t &frame = parts.back();
    out.user_id = message_property(frame, "User-Id");
    out.peer_address = message_property(frame, "Peer-Address");
    if (parts.size() == 2) {
        out.routing_id = parts[0].to_string();
    }
    try {
        if (parts.size() > kMaxParts) {
            throw Error(ErrorCode::kProtocol, "message has more than 2 frames");
        }
        out.message = wire_decode({frame.data<uint8_t>(), frame.size()}, limits);
        out.status = RECV_STATUS_OK;
    } catch (const Error &e) {
        out.status = RECV_STATUS_DROPPED;
        out.drop_reason = e.what();
        COLONY_LOG_WARN("net: dropped a message from %s (key %s): %s",
                        out.peer_address.empty() ? "?" : out.peer_address.c_str(),
                        out.user_id.empty() ? "-" : out.user_id.c_str(), e.what());
    }
    return out;
}

}  // namespace colony
