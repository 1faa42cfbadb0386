// URLs of a model hub and of the servers it redirects to: http and https,
// host (a DNS name, an IPv4 address or a bracketed IPv6 literal), port, and a
// target (path and query). RFC 3986's generic syntax, the parts a download needs.
#pragma once

#include <string>

namespace colony {

struct Url {
    std::string scheme;  // "http" or "https"
    std::string host;    // without the brackets of an IPv6 literal
    int port = 0;
    std::string target = "/";  // path and query, always starting with '/'

    /// "scheme://host:port", the form httplib::Client takes; also what decides
    /// whether credentials go with a request (same origin only).
    std::string origin() const;
    /// The whole URL.
    std::string str() const;
};

/// Parses an absolute http(s) URL. Userinfo ("user:pass@") is refused: tokens
/// travel in headers. Error(kInvalidArgument) naming what is wrong.
Url parse_url(const std::string &text);

/// The URL a Location header names, relative to `base` (an absolute URL, or
/// an absolute path on base's origin). Error(kProtocol) for anything else.
Url resolve_location(const Url &base, const std::string &location);

/// Percent-encodes a path segment list ("owner/repo", "dir/file.gguf"): '/'
/// and RFC 3986's unreserved characters stay, every other byte is %XX.
std::string encode_path(const std::string &path);

}  // namespace colony
