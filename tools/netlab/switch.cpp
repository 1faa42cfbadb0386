#include "switch.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace colony::netlab {
namespace {

uint64_t mac_at(const uint8_t *p) {
    uint64_t mac = 0;
    for (int i = 0; i < 6; ++i)
        mac = (mac << 8) | p[i];
    return mac;
}

// The group bit (least significant bit of the first octet, IEEE 802-2014 8.2)
// marks broadcast and multicast addresses.
bool is_group(const uint8_t *mac) {
    return (mac[0] & 1) != 0;
}

}  // namespace

Switch::Switch(std::vector<int> port_ids, uint64_t seed)
    : port_ids_(std::move(port_ids)), rng_(seed) {
    if (port_ids_.size() < 2)
        throw Error(ErrorCode::kInvalidArgument, "a switch needs at least two ports");
    auto sorted = port_ids_;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        throw Error(ErrorCode::kInvalidArgument, "switch port ids must be distinct");
    }
    const size_t n = port_ids_.size();
    directions_.resize(n * n);
    queues_.resize(n * n);
}

size_t Switch::port_index(int id) const {
    for (size_t i = 0; i < port_ids_.size(); ++i) {
        if (port_ids_[i] == id)
            return i;
    }
    std::string ids;
    for (int p : port_ids_)
        ids += (ids.empty() ? "" : " ") + std::to_string(p);
    throw Error(ErrorCode::kInvalidArgument,
                "no host " + std::to_string(id) + " (hosts: " + ids + ")");
}

LinkDirection &Switch::direction(size_t from, size_t to) {
    if (from >= port_count() || to >= port_count() || from == to) {
        throw Error(ErrorCode::kInvalidArgument,
                    "no link direction " + std::to_string(from) + "->" + std::to_string(to));
    }
    return directions_[dir_index(from, to)];
}

const LinkDirection &Switch::direction(size_t from, size_t to) const {
    return const_cast<Switch *>(this)->direction(from, to);
}

void Switch::on_frame(size_t from, Frame frame, int64_t now_ns, FrameSink &sink) {
    const uint8_t *eth = frame.ether();
    const uint8_t *dst = eth;
    const uint8_t *src = eth + 6;
    if (!is_group(src))
        mac_to_port_[mac_at(src)] = from;
    if (!is_group(dst)) {
        const auto it = mac_to_port_.find(mac_at(dst));
        if (it != mac_to_port_.end()) {
            if (it->second != from)
                forward(from, it->second, std::move(frame), now_ns, sink);
            return;  // a frame for a MAC behind its own port goes nowhere
        }
    }
    for (size_t to = 0; to < port_count(); ++to) {
        if (to != from)
            forward(from, to, frame, now_ns, sink);  // a copy per port
    }
}

void Switch::forward(size_t from, size_t to, Frame frame, int64_t now_ns, FrameSink &sink) {
    const size_t dir = dir_index(from, to);
    const int64_t wire_bytes = frame.wire_bytes();
    const Verdict verdict = directions_[dir].admit(now_ns, wire_bytes, rng_);
    if (!verdict.depart_ns)
        return;
    if (*verdict.depart_ns <= now_ns && queues_[dir].empty()) {
        depart(dir, to, frame, wire_bytes, sink);
        return;
    }
    queues_[dir].push_back(Pending{*verdict.depart_ns, wire_bytes, std::move(frame)});
    due_.push(Due{*verdict.depart_ns, next_seq_++, dir});
    ++queued_;
}

void Switch::depart(size_t dir, size_t to, const Frame &frame, int64_t wire_bytes,
                    FrameSink &sink) {
    LinkDirection &link = directions_[dir];
    if (link.cut()) {
        link.on_dropped_at_departure(DropReason::kCut);
    } else if (sink.send(to, frame)) {
        link.on_sent(wire_bytes);
    } else {
        link.on_dropped_at_departure(DropReason::kSend);
    }
}

std::optional<int64_t> Switch::run_due(int64_t now_ns, FrameSink &sink) {
    while (!due_.empty() && due_.top().depart_ns <= now_ns) {
        const size_t dir = due_.top().dir;
        due_.pop();
        // Departure times within one direction never decrease and ties leave in
        // sequence order, so the entry just popped is this queue's head.
        Pending pending = std::move(queues_[dir].front());
        queues_[dir].pop_front();
        --queued_;
        depart(dir, dir % port_count(), pending.frame, pending.wire_bytes, sink);
    }
    if (due_.empty())
        return std::nullopt;
    return due_.top().depart_ns;
}

std::string Switch::report() const {
    std::string out;
    for (size_t from = 0; from < port_count(); ++from) {
        for (size_t to = 0; to < port_count(); ++to) {
            if (from == to)
                continue;
            const LinkDirection &link = direction(from, to);
            const LinkCounters &c = link.counters();
            out += std::to_string(port_ids_[from]) + "->" + std::to_string(port_ids_[to]) + " " +
                   describe(link.params()) + " cut=" + (link.cut() ? "1" : "0") +
                   " frames_in=" + std::to_string(c.frames_in) +
                   " frames_out=" + std::to_string(c.frames_out) +
                   " bytes_out=" + std::to_string(c.bytes_out) +
                   " dropped_cut=" + std::to_string(c.dropped_cut) +
                   " dropped_queue=" + std::to_string(c.dropped_queue) +
                   " dropped_loss=" + std::to_string(c.dropped_loss) +
                   " dropped_send=" + std::to_string(c.dropped_send) +
                   " queued=" + std::to_string(queues_[dir_index(from, to)].size()) + "\n";
        }
    }
    return out;
}

}  // namespace colony::netlab
