// ZeroMQ TCP endpoints as colony passes them around: "tcp://HOST:PORT".
// A node that binds to all interfaces announces its endpoint with the host
// "*"; the receiver substitutes the address it reaches that node at (the
// coordinator: the worker's Peer-Address; a worker: the coordinator's host).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace colony {

struct HostPort {
    std::string host;  // name, IPv4 address, or IPv6 address without brackets
    uint16_t port = 0;
};

/// Parses "HOST:PORT", "[V6]:PORT", or "HOST" (then default_port). Throws
/// Error(kInvalidArgument) on an empty host or a port outside 1..65535.
HostPort parse_host_port(std::string_view text, uint16_t default_port);

/// "tcp://HOST:PORT"; port 0 gives "tcp://HOST:*" (an ephemeral port to bind).
/// An IPv6 host is put in brackets.
std::string tcp_endpoint(const std::string &host, uint16_t port);

/// Splits "tcp://HOST:PORT" into its parts. Throws Error(kInvalidArgument)
/// when it is no tcp endpoint with a numeric port.
HostPort parse_tcp_endpoint(std::string_view endpoint);

/// True for the hosts that mean "every interface": "*", "0.0.0.0", "::".
bool is_wildcard_host(std::string_view host);

/// The endpoint as a peer announces it: a wildcard host becomes "*".
std::string announced_endpoint(std::string_view bound_endpoint);

/// The endpoint to connect to: a wildcard host in `endpoint` is replaced by
/// peer_host; anything else is returned as it is. Throws like
/// parse_tcp_endpoint.
std::string resolve_endpoint(std::string_view endpoint, const std::string &peer_host);

}  // namespace colony
