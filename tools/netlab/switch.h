// The emulated switch: learns which port each MAC address sits behind,
// forwards every frame to its destination port (flooding broadcast,
// multicast and unknown destinations), and holds each frame back per the
// link model of its direction (source port -> destination port).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "link_model.h"
#include "packet_port.h"

namespace colony::netlab {

/// Where a frame goes: an abstract sink so the switch logic is testable
/// without sockets. PacketPort-backed in colony-netem.
class FrameSink {
  public:
    virtual ~FrameSink() = default;
    /// Sends `frame` out of port index `port`; false when it could not be sent.
    virtual bool send(size_t port, const Frame &frame) = 0;
};

/// A learning switch with one LinkDirection per ordered pair of ports.
/// Ports are named by their id (the lab's host number, 1..N); internally they
/// are indexed 0..N-1 in the order given. Not thread-safe.
class Switch {
  public:
    /// `port_ids`: distinct ids, at least two; `seed` seeds the jitter and loss
    /// random generator. Throws colony::Error(kInvalidArgument) otherwise.
    Switch(std::vector<int> port_ids, uint64_t seed);

    size_t port_count() const { return port_ids_.size(); }
    int port_id(size_t index) const { return port_ids_[index]; }

    /// Index of the port with id `id`; throws colony::Error(kInvalidArgument)
    /// naming the valid ids when there is none.
    size_t port_index(int id) const;

    /// The direction from port index `from` to port index `to` (from != to).
    LinkDirection &direction(size_t from, size_t to);
    const LinkDirection &direction(size_t from, size_t to) const;

    /// Handles a frame read from port index `from` at `now_ns`: learns its
    /// source MAC, picks destination ports, runs each copy through its
    /// direction's model, and sends it at once through `sink` when it is due
    /// and nothing is queued before it; otherwise queues it.
    void on_frame(size_t from, Frame frame, int64_t now_ns, FrameSink &sink);

    /// Sends every queued frame due at or before `now_ns`, in order. Returns
    /// the departure time of the next queued frame, if any.
    std::optional<int64_t> run_due(int64_t now_ns, FrameSink &sink);

    /// Frames queued in all directions (waiting for their departure time).
    size_t queued() const { return queued_; }

    /// Text report: one line per direction, "A->B <params> cut=0|1 <counters>".
    std::string report() const;

  private:
    struct Pending {
        int64_t depart_ns;
        int64_t wire_bytes;
        Frame frame;
    };
    struct Due {
        int64_t depart_ns;
        uint64_t seq;  // breaks ties so equal times leave in arrival order
        size_t dir;
        bool operator>(const Due &other) const {
            return depart_ns != other.depart_ns ? depart_ns > other.depart_ns : seq > other.seq;
        }
    };

    size_t dir_index(size_t from, size_t to) const { return from * port_ids_.size() + to; }
    void forward(size_t from, size_t to, Frame frame, int64_t now_ns, FrameSink &sink);
    void depart(size_t dir, size_t to, const Frame &frame, int64_t wire_bytes, FrameSink &sink);

    std::vector<int> port_ids_;
    std::vector<LinkDirection> directions_;  // [from * N + to]
    std::vector<std::deque<Pending>> queues_;
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
    std::unordered_map<uint64_t, size_t> mac_to_port_;
    std::mt19937_64 rng_;
    uint64_t next_seq_ = 0;
    size_t queued_ = 0;
};

}  // namespace colony::netlab
