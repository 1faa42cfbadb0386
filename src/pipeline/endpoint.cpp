#include "pipeline/endpoint.h"

#include <charconv>

#include "util/error.h"

namespace colony {

namespace {

uint16_t parse_port(std::string_view s, std::string_view whole, bool allow_zero) {
    uint32_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535 ||
        (v == 0 && !allow_zero)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + std::string(whole) + "': the port must be a number in 1..65535");
    }
    return static_cast<uint16_t>(v);
}

}  // namespace

HostPort parse_host_port(std::string_view text, uint16_t default_port) {
    HostPort hp;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {  // [v6]:port
        const size_t close = text.find(']');
        if (close == std::string_view::npos) {
            throw Error(ErrorCode::kInvalidArgument, "'" + std::string(text) + "': missing ']'");
        }
        hp.host = std::string(text.substr(1, close - 1));
        rest = text.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') {
            throw Error(ErrorCode::kInvalidArgument,
                        "'" + std::string(text) + "': expected ':' after ']'");
        }
        if (!rest.empty())
            rest.remove_prefix(1);
    } else {
        const size_t colon = text.rfind(':');
        const bool one_colon = colon != std::string_view::npos && text.find(':') == colon;
        hp.host = std::string(one_colon ? text.substr(0, colon) : text);
        if (one_colon)
            rest = text.substr(colon + 1);
    }
    if (hp.host.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + std::string(text) + "': expected HOST:PORT (e.g. 192.168.1.20:7411)");
    }
    hp.port = rest.empty() ? default_port : parse_port(rest, text, false);
    return hp;
}

std::string tcp_endpoint(const std::string &host, uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" +
           (port == 0 ? std::string("*") : std::to_string(port));
}

HostPort parse_tcp_endpoint(std::string_view endpoint) {
    constexpr std::string_view kScheme = "tcp://";
    if (endpoint.substr(0, kScheme.size()) != kScheme) {
        throw Error(ErrorCode::kInvalidArgument,
                    "endpoint '" + std::string(endpoint) + "' is not tcp://HOST:PORT");
    }
    const std::string_view rest = endpoint.substr(kScheme.size());
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    "endpoint '" + std::string(endpoint) + "' is not tcp://HOST:PORT");
    }
    HostPort hp;
    std::string_view host = rest.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    hp.host = std::string(host);
    hp.port = parse_port(rest.substr(colon + 1), endpoint, false);
    return hp;
}

bool is_wildcard_host(std::string_view host) {
    return host == "*" || host == "0.0.0.0" || host == "::";
}

std::string announced_endpoint(std::string_view bound_endpoint) {
    const HostPort hp = parse_tcp_endpoint(bound_endpoint);
    return tcp_endpoint(is_wildcard_host(hp.host) ? "*" : hp.host, hp.port);
}

std::string resolve_endpoint(std::string_view endpoint, const std::string &peer_host) {
    const HostPort hp = parse_tcp_endpoint(endpoint);
    if (!is_wildcard_host(hp.host))
        return std::string(endpoint);
    return tcp_endpoint(peer_host, hp.port);
}

}  // namespace colony
