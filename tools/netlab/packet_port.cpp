#include "packet_port.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace colony::netlab {
namespace {

// struct virtio_net_hdr of linux/virtio_net.h (virtio spec 1.2, 5.1.6, the
// legacy 10-byte form in host byte order that PACKET_VNET_HDR uses). The
// kernel header itself does not compile as C++ (a field named "class").
struct VnetHeader {
    uint8_t flags;
    uint8_t gso_type;  // 0 = VIRTIO_NET_HDR_GSO_NONE
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};
static_assert(sizeof(VnetHeader) == kVnetHeaderBytes, "virtio_net_hdr layout");
constexpr uint8_t kGsoNone = 0;

// Largest frame we accept: a 64 KiB GSO super-frame plus headers.
constexpr size_t kMaxFrameBytes = kVnetHeaderBytes + 65536 + 256;
constexpr size_t kEtherHeaderBytes = 14;

[[noreturn]] void throw_errno(const std::string &what) {
    throw Error(ErrorCode::kResource, what + ": " + std::strerror(errno));
}

int interface_index(const std::string &ifname) {
    const unsigned index = if_nametoindex(ifname.c_str());
    if (index == 0)
        throw Error(ErrorCode::kNotFound, "no network interface '" + ifname + "'");
    return static_cast<int>(index);
}

}  // namespace

int64_t Frame::wire_bytes() const {
    const auto size = static_cast<int64_t>(ether_size());
    VnetHeader hdr;
    std::memcpy(&hdr, bytes.data(), sizeof(hdr));
    if (hdr.gso_type == kGsoNone || hdr.gso_size == 0)
        return size;
    // A GSO super-frame leaves the receiver as ceil(payload / gso_size) frames,
    // each with its own copy of the headers.
    const int64_t headers = hdr.hdr_len > 0 ? hdr.hdr_len : 54;  // Ethernet + IPv4 + TCP
    const int64_t payload = std::max<int64_t>(size - headers, 0);
    const int64_t segments = (payload + hdr.gso_size - 1) / hdr.gso_size;
    return size + std::max<int64_t>(segments - 1, 0) * headers;
}

PacketPort::PacketPort(int id, const std::string &ifname) : id_(id), ifname_(ifname) {
    ifindex_ = interface_index(ifname);
    fd_ = UniqueFd(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (!fd_.valid())
        throw_errno("socket(AF_PACKET) for " + ifname);
    const int one = 1;
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) {
        throw_errno("PACKET_VNET_HDR on " + ifname);
    }
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0) {
        throw_errno("PACKET_IGNORE_OUTGOING on " + ifname);
    }
    const int buffer = 4 << 20;
    if (setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer)) < 0) {
        COLONY_LOG_WARN("SO_RCVBUFFORCE on %s: %s", ifname.c_str(), std::strerror(errno));
    }
    if (setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof(buffer)) < 0) {
        COLONY_LOG_WARN("SO_SNDBUFFORCE on %s: %s", ifname.c_str(), std::strerror(errno));
    }
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = ifindex_;
    if (bind(fd_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) < 0)
        throw_errno("bind to " + ifname);
    packet_mreq mreq{};
    mreq.mr_ifindex = ifindex_;
    mreq.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0) {
        throw_errno("promiscuous mode on " + ifname);
    }
    scratch_.resize(kMaxFrameBytes);
}

bool PacketPort::receive(Frame &frame) {
    for (;;) {
        const ssize_t n = recv(fd_.get(), scratch_.data(), scratch_.size(), MSG_TRUNC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return false;
            if (errno == EINTR)
                continue;
            throw_errno("recv on " + ifname_);
        }
        const auto size = static_cast<size_t>(n);
        if (size > scratch_.size() || size < kVnetHeaderBytes + kEtherHeaderBytes) {
            ++bad_frames_;
            continue;
        }
        frame.bytes.assign(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(size));
        return true;
    }
}

bool PacketPort::send(const Frame &frame) {
    for (;;) {
        const ssize_t n = ::send(fd_.get(), frame.bytes.data(), frame.bytes.size(), MSG_DONTWAIT);
        if (n >= 0)
            return true;
        if (errno == EINTR)
            continue;
        return false;
    }
}

void disable_offloads(const std::string &ifname) {
    interface_index(ifname);  // throws for an unknown interface
    const UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        throw_errno("socket for SIOCETHTOOL");
    // Legacy per-feature ethtool commands (linux/ethtool.h); the kernel maps
    // them onto the netdev feature bits.
    const struct {
        uint32_t cmd;
        const char *name;
    } features[] = {{ETHTOOL_STSO, "tso"}, {ETHTOOL_SGSO, "gso"}, {ETHTOOL_SGRO, "gro"}};
    for (const auto &feature : features) {
        ethtool_value value{};
        value.cmd = feature.cmd;
        value.data = 0;
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
        ifr.ifr_data = reinterpret_cast<char *>(&value);
        if (ioctl(fd.get(), SIOCETHTOOL, &ifr) < 0 && errno != EOPNOTSUPP) {
            COLONY_LOG_WARN("%s off on %s: %s", feature.name, ifname.c_str(), std::strerror(errno));
        }
    }
}

}  // namespace colony::netlab
