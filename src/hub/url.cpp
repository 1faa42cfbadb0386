#include "hub/url.h"

#include <cctype>
#include <charconv>

#include "util/error.h"

namespace colony {

namespace {

[[noreturn]] void bad(const std::string &text, const std::string &why) {
    throw Error(ErrorCode::kInvalidArgument, "bad URL '" + text + "': " + why);
}

int default_port(const std::string &scheme) {
    return scheme == "https" ? 443 : 80;
}

}  // namespace

std::string Url::origin() const {
    const bool v6 = host.find(':') != std::string::npos;
    return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::str() const {
    const bool v6 = host.find(':') != std::string::npos;
    std::string s = scheme + "://" + (v6 ? "[" + host + "]" : host);
    if (port != default_port(scheme))
        s += ":" + std::to_string(port);
    return s + target;
}

Url parse_url(const std::string &text) {
    Url u;
    const size_t sep = text.find("://");
    if (sep == std::string::npos)
        bad(text, "no scheme (http:// or https://)");
    u.scheme = text.substr(0, sep);
    for (char &c : u.scheme)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (u.scheme != "http" && u.scheme != "https")
        bad(text, "scheme '" + u.scheme + "' is not http or https");
    const std::string rest = text.substr(sep + 3);
    const size_t slash = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, slash);
    u.target = slash == std::string::npos ? "/" : rest.substr(slash);
    if (u.target[0] == '?')
        u.target = "/" + u.target;
    if (const size_t hash = u.target.find('#'); hash != std::string::npos)
        u.target.resize(hash);
    if (authority.find('@') != std::string::npos)
        bad(text, "credentials in a URL are not accepted (use HF_TOKEN)");
    std::string port;
    if (!authority.empty() && authority[0] == '[') {
        const size_t close = authority.find(']');
        if (close == std::string::npos)
            bad(text, "unclosed IPv6 literal");
        u.host = authority.substr(1, close - 1);
        const std::string after = authority.substr(close + 1);
        if (!after.empty() && after[0] != ':')
            bad(text, "junk after the IPv6 literal");
        if (!after.empty())
            port = after.substr(1);
    } else {
        const size_t colon = authority.find(':');
        u.host = authority.substr(0, colon);
        if (colon != std::string::npos)
            port = authority.substr(colon + 1);
    }
    if (u.host.empty())
        bad(text, "no host");
    u.port = default_port(u.scheme);
    if (!port.empty()) {
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), u.port);
        if (ec != std::errc() || end != port.data() + port.size() || u.port <= 0 || u.port > 65535)
            bad(text, "port '" + port + "' is not 1..65535");
    }
    return u;
}

Url resolve_location(const Url &base, const std::string &location) {
    if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0)
        return parse_url(location);
    if (!location.empty() && location[0] == '/' && (location.size() == 1 || location[1] != '/')) {
        Url u = base;
        u.target = location;
        return u;
    }
    throw Error(ErrorCode::kProtocol, "redirect from " + base.str() + " to '" + location +
                                          "', neither an http(s) URL nor an absolute path");
}

std::string encode_path(const std::string &path) {
    static const char *hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : path) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace colony
