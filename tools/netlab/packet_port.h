// One switch port: an AF_PACKET raw socket bound to one network interface
// (the switch-side end of a host's veth pair), in promiscuous mode.
//
// Frames are read and written with a virtio_net_hdr in front
// (PACKET_VNET_HDR, linux/virtio_net.h), so checksum-offload state
// (CHECKSUM_PARTIAL) and any GSO super-frame survive the trip through user
// space unchanged; without it a frame whose checksum the sender left to
// "hardware" would arrive with a wrong checksum and be dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace colony::netlab {

/// Size of the virtio_net_hdr in front of every frame read or written.
constexpr size_t kVnetHeaderBytes = 10;

/// A frame as read from a port: virtio_net_hdr (kVnetHeaderBytes) + Ethernet frame.
struct Frame {
    std::vector<uint8_t> bytes;

    /// The Ethernet frame (after the virtio_net_hdr).
    const uint8_t *ether() const { return bytes.data() + kVnetHeaderBytes; }
    size_t ether_size() const { return bytes.size() - kVnetHeaderBytes; }

    /// Bytes this frame occupies on the emulated wire: the Ethernet frame, plus
    /// one copy of the headers per extra segment when it is a GSO super-frame.
    int64_t wire_bytes() const;
};

/// An AF_PACKET port. Owns its socket; move-only.
class PacketPort {
  public:
    /// Opens a non-blocking AF_PACKET socket on interface `ifname`, sets
    /// PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING (frames we send are not read
    /// back), promiscuous membership and a 4 MiB receive buffer, and binds it.
    /// Throws colony::Error(kNotFound) for an unknown interface and
    /// colony::Error(kResource) when a socket call fails (e.g. not root).
    PacketPort(int id, const std::string &ifname);

    int id() const { return id_; }
    const std::string &ifname() const { return ifname_; }
    int fd() const { return fd_.get(); }

    /// Reads one frame into `frame` without blocking. Returns false when no
    /// frame is waiting. Truncated and runt frames are skipped (counted in
    /// bad_frames()). Throws colony::Error(kResource) on a socket error.
    bool receive(Frame &frame);

    /// Writes one frame (virtio_net_hdr + Ethernet frame). Returns false when
    /// the kernel refused it (ENOBUFS, EAGAIN, ...), which the caller counts as
    /// a drop.
    bool send(const Frame &frame);

    uint64_t bad_frames() const { return bad_frames_; }

  private:
    int id_;
    std::string ifname_;
    UniqueFd fd_;
    int ifindex_ = 0;
    uint64_t bad_frames_ = 0;
    std::vector<uint8_t> scratch_;
};

/// Turns off TSO, GSO and GRO on interface `ifname` in the caller's network
/// namespace, through the SIOCETHTOOL ioctl (what `ethtool -K IF tso off gso
/// off gro off` does), so that every frame on the emulated wire is at most one
/// MTU and loss and rate apply per real packet. Features the driver cannot
/// change are left alone. Throws colony::Error(kNotFound) for an unknown
/// interface.
void disable_offloads(const std::string &ifname);

}  // namespace colony::netlab
