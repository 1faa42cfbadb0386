// LinkWatch: whether the TCP connection behind a connecting ZeroMQ socket is
// up, from libzmq's socket monitor (zmq_socket_monitor, ZMQ_EVENT_*). A stage
// watches its data link to the next stage with it: a killed peer closes the
// connection at once (the kernel resets it), and a silent one (stopped,
// partitioned, a one-way cut) misses the ZMTP heartbeats the link runs
// (kDataLinkTransport), so a lost next stage is seen on the data plane
// itself, not only by the coordinator's heartbeats (docs/reliability.md).
//
// A link is down from a disconnect after it was up (a handshake succeeded),
// or when no handshake succeeded within kHandshakeBudgetMs of connecting (a
// next stage that is alive for the coordinator but unreachable from here).
// Not thread-safe: the thread that owns the socket polls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "net/transport.h"

namespace colony {

/// Socket options of a data link: ZMTP heartbeats every 250 ms, the
/// connection dead after 1500 ms without an answer (TransportOptions).
TransportOptions data_link_transport();

class LinkWatch {
  public:
    /// Starts monitoring `socket` (call before connect; the socket must
    /// outlive the watch). ctx: the socket's context. Throws zmq::error_t
    /// when libzmq refuses the monitor.
    LinkWatch(zmq::context_t &ctx, zmq::socket_t &socket);
    ~LinkWatch();
    LinkWatch(const LinkWatch &) = delete;
    LinkWatch &operator=(const LinkWatch &) = delete;

    /// Whoever connects the socket says so: the budget for the first
    /// handshake starts (again, when called again before one succeeded).
    void connecting();
    /// Reads the monitor's pending events (never blocks). Returns how long
    /// the link has been down, ms, or nullopt while it is up (or still within
    /// its first handshake's budget, or not connected yet).
    std::optional<int64_t> down_ms();
    static constexpr int64_t kHandshakeBudgetMs = 3000;
    /// Whether a handshake ever succeeded on the link.
    bool was_up() const { return was_up_; }

  private:
    zmq::socket_t &socket_;
    zmq::socket_t events_;  // PAIR connected to the monitor's inproc endpoint
    bool was_up_ = false;
    std::optional<std::chrono::steady_clock::time_point> down_since_;
    std::optional<std::chrono::steady_clock::time_point> connect_at_;
};

}  // namespace colony
