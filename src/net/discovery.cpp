#include "net/discovery.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

bool valid_name(const std::string &s, size_t max) {
    if (s.empty() || s.size() > max)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
}

bool valid_fingerprint(const std::string &s) {
    return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

void check(const Beacon &b, ErrorCode code) {
    if (!valid_name(b.cluster, 64))
        throw Error(code, "beacon: invalid cluster name");
    if (!valid_fingerprint(b.fingerprint))
        throw Error(code, "beacon: fingerprint must be 16 lowercase hex digits");
    if (b.port == 0)
        throw Error(code, "beacon: control port is 0");
    if (b.node.size() > 64)
        throw Error(code, "beacon: node name longer than 64 bytes");
}

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0)
            ::close(fd);
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
};

}  // namespace

std::string beacon_encode(const Beacon &b) {
    check(b, ErrorCode::kInvalidArgument);
    nlohmann::json j = {{"colony", 1},    {"cluster", b.cluster},   {"fp", b.fingerprint},
                        {"port", b.port}, {"api_port", b.api_port}, {"node", b.node}};
    return j.dump();
}

Beacon beacon_decode(std::string_view datagram) {
    if (datagram.size() > kBeaconMaxBytes)
        throw Error(ErrorCode::kProtocol, "beacon: datagram too long");
    nlohmann::json j = nlohmann::json::parse(datagram, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw Error(ErrorCode::kProtocol, "beacon: not a JSON object");
    auto field = [&](const char *k, nlohmann::json::value_t t) -> const nlohmann::json & {
        auto it = j.find(k);
        if (it == j.end())
            throw Error(ErrorCode::kProtocol, std::string("beacon: missing field '") + k + "'");
        const bool ok = t == nlohmann::json::value_t::number_unsigned ? it->is_number_unsigned()
                                                                      : it->type() == t;
        if (!ok)
            throw Error(ErrorCode::kProtocol,
                        std::string("beacon: field '") + k + "' has the wrong type");
        return *it;
    };
    if (field("colony", nlohmann::json::value_t::number_unsigned).get<uint64_t>() != 1) {
        throw Error(ErrorCode::kProtocol, "beacon: unknown version");
    }
    Beacon b;
    b.cluster = field("cluster", nlohmann::json::value_t::string).get<std::string>();
    b.fingerprint = field("fp", nlohmann::json::value_t::string).get<std::string>();
    const uint64_t port = field("port", nlohmann::json::value_t::number_unsigned).get<uint64_t>();
    const uint64_t api =
        field("api_port", nlohmann::json::value_t::number_unsigned).get<uint64_t>();
    if (port > 65535 || api > 65535)
        throw Error(ErrorCode::kProtocol, "beacon: port out of range");
    b.port = static_cast<uint16_t>(port);
    b.api_port = static_cast<uint16_t>(api);
    b.node = field("node", nlohmann::json::value_t::string).get<std::string>();
    check(b, ErrorCode::kProtocol);
    return b;
}

bool is_virtual_interface(std::string_view n) {
    static const char *kPrefixes[] = {"docker", "br-",     "veth", "virbr",    "lxcbr",   "lxdbr",
                                      "cni",    "flannel", "cali", "vmnet",    "vboxnet", "podman",
                                      "tun",    "tap",     "zt",   "tailscale"};
    for (const char *p : kPrefixes) {
        if (n.rfind(p, 0) == 0)
            return true;
    }
    return false;
}

std::vector<NetInterface> list_interfaces(bool include_virtual) {
    std::vector<NetInterface> out;
    ifaddrs *list = nullptr;
    if (getifaddrs(&list) != 0)
        return out;
    for (ifaddrs *a = list; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET)
            continue;
        if (!(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK))
            continue;
        NetInterface nif;
        nif.name = a->ifa_name;
        nif.is_virtual = is_virtual_interface(nif.name);
        if (nif.is_virtual && !include_virtual)
            continue;
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(a->ifa_addr)->sin_addr, buf,
                  sizeof(buf));
        nif.address = buf;
        if ((a->ifa_flags & IFF_BROADCAST) && a->ifa_broadaddr) {
            inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(a->ifa_broadaddr)->sin_addr, buf,
                      sizeof(buf));
            nif.broadcast = buf;
        }
        out.push_back(std::move(nif));
    }
    freeifaddrs(list);
    return out;
}

BeaconSender::BeaconSender(Beacon beacon, uint16_t udp_port, std::chrono::milliseconds interval,
                           bool include_virtual) {
    beacon_encode(beacon);  // validate now, in the caller's thread
    thread_ = std::thread([this, beacon = std::move(beacon), udp_port, interval, include_virtual] {
        run(beacon, udp_port, interval, include_virtual);
    });
}

BeaconSender::~BeaconSender() {
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
}

void BeaconSender::run(Beacon beacon, uint16_t udp_port, std::chrono::milliseconds interval,
                       bool include_virtual) {
    const std::string payload = beacon_encode(beacon);
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0) {
        COLONY_LOG_WARN("discovery: cannot open a UDP socket: %s", std::strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
    while (!stop_) {
        for (const NetInterface &nif : list_interfaces(include_virtual)) {
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(udp_port);
            if (!nif.broadcast.empty() &&
                inet_pton(AF_INET, nif.broadcast.c_str(), &to.sin_addr) == 1) {
                if (::sendto(s.fd, payload.data(), payload.size(), 0,
                             reinterpret_cast<sockaddr *>(&to), sizeof(to)) > 0) {
                    ++sent_;
                }
            }
            in_addr ifaddr{};
            inet_pton(AF_INET, nif.address.c_str(), &ifaddr);
            setsockopt(s.fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr));
            inet_pton(AF_INET, kBeaconGroup, &to.sin_addr);
            if (::sendto(s.fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr *>(&to),
                         sizeof(to)) > 0) {
                ++sent_;
            }
        }
        for (auto waited = std::chrono::milliseconds(0); waited < interval && !stop_;
             waited += std::chrono::milliseconds(50)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
}

std::vector<HeardCoordinator> listen_for_coordinators(std::chrono::milliseconds duration,
                                                      uint16_t udp_port, bool include_virtual) {
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0)
        throw Error(ErrorCode::kResource,
                    std::string("cannot open a UDP socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(udp_port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(s.fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
        throw Error(ErrorCode::kResource, "cannot listen for beacons on UDP port " +
                                              std::to_string(udp_port) + ": " +
                                              std::strerror(errno));
    }
    for (const NetInterface &nif : list_interfaces(include_virtual)) {
        ip_mreq mreq{};
        inet_pton(AF_INET, kBeaconGroup, &mreq.imr_multiaddr);
        inet_pton(AF_INET, nif.address.c_str(), &mreq.imr_interface);
        setsockopt(s.fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
    }
    std::vector<HeardCoordinator> heard;
    const auto end = std::chrono::steady_clock::now() + duration;
    char buf[kBeaconMaxBytes + 1];
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        pollfd p{s.fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            continue;
        sockaddr_in from{};
        socklen_t len = sizeof(from);
        const ssize_t n =
            ::recvfrom(s.fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr *>(&from), &len);
        if (n <= 0)
            continue;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
        try {
            HeardCoordinator h{beacon_decode(std::string_view(buf, static_cast<size_t>(n))), ip};
            const bool seen =
                std::any_of(heard.begin(), heard.end(), [&](const HeardCoordinator &o) {
                    return o.beacon.fingerprint == h.beacon.fingerprint && o.address == h.address;
                });
            if (!seen)
                heard.push_back(std::move(h));
        } catch (const Error &e) {
            COLONY_LOG_DEBUG("discovery: ignored a datagram from %s: %s", ip, e.what());
        }
    }
    return heard;
}

HeardCoordinator choose_coordinator(const std::vector<HeardCoordinator> &heard,
                                    const std::string &fingerprint) {
    std::vector<const HeardCoordinator *> match;
    std::string all;
    for (const auto &h : heard) {
        all += (all.empty() ? "" : ", ") + h.beacon.cluster + " (" + h.beacon.fingerprint +
               ") at " + h.address + ":" + std::to_string(h.beacon.port);
        if (h.beacon.fingerprint == fingerprint)
            match.push_back(&h);
    }
    if (match.empty()) {
        throw Error(
            ErrorCode::kNotFound,
            "no coordinator with key fingerprint " + fingerprint + " heard" +
                (all.empty() ? " (none at all; pass --coordinator HOST:PORT)" : "; heard: " + all));
    }
    // one coordinator heard on several interfaces is still one coordinator
    for (const auto *m : match) {
        if (m->address != match.front()->address) {
            throw Error(ErrorCode::kInvalidArgument, "several coordinators match fingerprint " +
                                                         fingerprint + ": " + all +
                                                         "; pass --coordinator HOST:PORT");
        }
    }
    return *match.front();
}

}  // namespace colony
