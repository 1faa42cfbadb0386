#include "net/link_watch.h"

#include <atomic>
#include <cstring>

#include "util/log.h"

namespace colony {

namespace {

std::atomic<uint64_t> g_next_watch{1};

}  // namespace

TransportOptions data_link_transport() {
    TransportOptions o;
    o.heartbeat_ivl_ms = 250;
    o.heartbeat_timeout_ms = 1500;
    o.heartbeat_ttl_ms = 3000;
    return o;
}

LinkWatch::LinkWatch(zmq::context_t &ctx, zmq::socket_t &socket)
    : socket_(socket), events_(ctx, zmq::socket_type::pair) {
    const std::string endpoint = "inproc://colony-link-watch-" + std::to_string(g_next_watch++);
    const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor(socket_.handle(), endpoint.c_str(), events) != 0)
        throw zmq::error_t();
    events_.set(zmq::sockopt::linger, 0);
    events_.connect(endpoint);
}

LinkWatch::~LinkWatch() {
    zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

void LinkWatch::connecting() {
    connect_at_ = std::chrono::steady_clock::now();
}

std::optional<int64_t> LinkWatch::down_ms() {
    for (;;) {
        zmq::message_t head;
        if (!events_.recv(head, zmq::recv_flags::dontwait))
            break;
        zmq::message_t address;  // the second frame: the endpoint
        if (head.more())
            (void)events_.recv(address, zmq::recv_flags::dontwait);
        if (head.size() < sizeof(uint16_t))
            continue;
        uint16_t event = 0;
        std::memcpy(&event, head.data(), sizeof event);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            was_up_ = true;
            down_since_.reset();
        } else if (event == ZMQ_EVENT_DISCONNECTED && was_up_ && !down_since_) {
            down_since_ = std::chrono::steady_clock::now();
            COLONY_LOG_DEBUG(
                "link watch: %s disconnected",
                std::string(static_cast<const char *>(address.data()), address.size()).c_str());
        }
    }
    const auto now = std::chrono::steady_clock::now();
    auto ms = [&](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
    };
    if (down_since_)
        return ms(*down_since_);
    if (!was_up_ && connect_at_ && ms(*connect_at_) > kHandshakeBudgetMs)
        return ms(*connect_at_) - kHandshakeBudgetMs;
    return std::nullopt;
}

}  // namespace colony
