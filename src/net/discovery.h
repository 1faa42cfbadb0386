// LAN discovery: coordinators announce themselves with UDP beacons; workers
// and `colony discover` listen. A beacon carries no secret: only the cluster
// name, the coordinator key's fingerprint (keys.h key_fingerprint) and its ports,
// so a worker joins the coordinator whose fingerprint matches its join token.
//
// Beacon (one UDP datagram, UTF-8 JSON, at most kBeaconMaxBytes):
//   {"colony":1,"cluster":"<name>","fp":"<16 hex>","port":<control port>,
//    "api_port":<http port>,"node":"<coordinator name>"}
// Sent every interval to each eligible interface's IPv4 broadcast address and
// to the multicast group kBeaconGroup, on UDP port kBeaconPort (default).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace colony {

constexpr uint16_t kBeaconPort = 7410;
constexpr const char *kBeaconGroup = "239.255.74.11";
constexpr size_t kBeaconMaxBytes = 512;

struct Beacon {
    std::string cluster;      // cluster name, [A-Za-z0-9._-]{1,64}
    std::string fingerprint;  // coordinator key fingerprint, 16 lowercase hex
    uint16_t port = 0;        // control port (ZeroMQ, CURVE)
    uint16_t api_port = 0;    // HTTP API port, 0 = none
    std::string node;         // coordinator's node name, <= 64 bytes

    bool operator==(const Beacon &) const = default;
};

/// Encodes a beacon. Error(kInvalidArgument) when a field breaks the rules above.
std::string beacon_encode(const Beacon &b);
/// Decodes and validates a datagram. Error(kProtocol, reason) for anything
/// malformed: not JSON, wrong version, missing or ill-typed field, bad
/// fingerprint, port 0, too long.
Beacon beacon_decode(std::string_view datagram);

/// An IPv4 interface that beacons go out on / are heard from.
struct NetInterface {
    std::string name;
    std::string address;      // dotted quad
    std::string broadcast;    // dotted quad, empty when the interface has none
    bool is_virtual = false;  // docker*, br-*, veth*, virbr*, ... (see is_virtual_interface)
};

/// Up, non-loopback IPv4 interfaces; virtual bridges only when include_virtual.
std::vector<NetInterface> list_interfaces(bool include_virtual);
/// Whether an interface name looks like container/VM plumbing rather than a LAN.
bool is_virtual_interface(std::string_view name);

/// Sends a beacon periodically from a background thread until destroyed.
class BeaconSender {
  public:
    BeaconSender(Beacon beacon, uint16_t udp_port = kBeaconPort,
                 std::chrono::milliseconds interval = std::chrono::milliseconds(1000),
                 bool include_virtual = false);
    ~BeaconSender();
    BeaconSender(const BeaconSender &) = delete;
    BeaconSender &operator=(const BeaconSender &) = delete;
    uint64_t sent() const { return sent_; }

  private:
    void run(Beacon beacon, uint16_t udp_port, std::chrono::milliseconds interval,
             bool include_virtual);
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> sent_{0};
    std::thread thread_;
};

/// A coordinator heard on the network.
struct HeardCoordinator {
    Beacon beacon;
    std::string address;  // source IPv4 of the beacon
};

/// Listens for `duration` and returns the distinct coordinators heard (by
/// fingerprint and address). Invalid datagrams are logged at debug level and
/// ignored. Error(kResource) when the UDP port cannot be bound.
std::vector<HeardCoordinator> listen_for_coordinators(std::chrono::milliseconds duration,
                                                      uint16_t udp_port = kBeaconPort,
                                                      bool include_virtual = false);

/// Picks the coordinator whose fingerprint equals `fingerprint`: exactly one
/// match is returned; none or several is Error(kNotFound / kInvalidArgument)
/// listing what was heard.
HeardCoordinator choose_coordinator(const std::vector<HeardCoordinator> &heard,
                                    const std::string &fingerprint);

}  // namespace colony
