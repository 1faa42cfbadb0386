#include "hub/http_fetch.h"

#include <cpp-httplib/httplib.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <optional>

#include "util/error.h"
#include "util/version.h"

namespace colony {

namespace {

std::string lower(std::string s) {
    for (char &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

HttpHead head_of(const httplib::Response &r, const Url &url) {
    HttpHead h;
    h.status = r.status;
    h.url = url;
    for (const auto &[k, v] : r.headers)
        h.headers[lower(k)] = v;
    return h;
}

}  // namespace

bool is_redirect(int status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

std::string HttpHead::header(const std::string &name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

namespace {

httplib::Client make_client(const Url &url, const HttpOptions &o) {
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
    if (url.scheme == "https")
        throw Error(
            ErrorCode::kUnsupported,
            "this build has no HTTPS (cpp-httplib without OpenSSL): cannot fetch " + url.str());
#endif
    httplib::Client cli(url.origin());
    cli.set_follow_location(false);
    cli.set_connection_timeout(static_cast<time_t>(o.connect_timeout.count()), 0);
    cli.set_read_timeout(static_cast<time_t>(o.read_timeout.count()), 0);
    return cli;
}

httplib::Headers request_headers(const Url &url, const HttpOptions &o,
                                 const std::map<std::string, std::string> &extra) {
    httplib::Headers h{{"User-Agent", std::string("colony/") + kSoftwareVersion},
                       {"Accept-Encoding", "identity"}};
    if (!o.bearer_token.empty() && url.origin() == o.token_origin)
        h.emplace("Authorization", "Bearer " + o.bearer_token);
    for (const auto &[k, v] : extra)
        h.emplace(k, v);
    return h;
}

[[noreturn]] void no_response(const Url &url, httplib::Error e) {
    throw Error(ErrorCode::kUnavailable, "GET " + url.str() + ": " + httplib::to_string(e));
}

}  // namespace

HttpHead HttpFetcher::head(const Url &url,
                           const std::map<std::string, std::string> &headers) const {
    httplib::Client cli = make_client(url, options_);
    const httplib::Result r = cli.Head(url.target, request_headers(url, options_, headers));
    if (!r)
        throw Error(ErrorCode::kUnavailable,
                    "HEAD " + url.str() + ": " + httplib::to_string(r.error()));
    return head_of(*r, url);
}

HttpHead HttpFetcher::get(const Url &start, const std::map<std::string, std::string> &headers,
                          const std::function<bool(const HttpHead &)> &on_head,
                          const ByteSink &on_data) const {
    Url url = start;
    for (int hop = 0; hop <= options_.max_redirects; ++hop) {
        httplib::Client cli = make_client(url, options_);
        std::optional<HttpHead> got;
        bool body = false;
        std::exception_ptr thrown;  // an exception must not cross httplib's frames
        const httplib::Result r = cli.Get(
            url.target, request_headers(url, options_, headers),
            [&](const httplib::Response &resp) {
                got = head_of(resp, url);
                if (is_redirect(resp.status))
                    return true;  // its (small) body is read and dropped
                try {
                    body = on_head(*got);
                } catch (...) {
                    thrown = std::current_exception();
                    return false;
                }
                return body;
            },
            [&](const char *data, size_t n) {
                if (!body)
                    return true;
                try {
                    on_data(data, n);
                } catch (...) {
                    thrown = std::current_exception();
                    return false;
                }
                return true;
            });
        if (thrown)
            std::rethrow_exception(thrown);
        if (got && is_redirect(got->status)) {
            const std::string location = got->header("location");
            if (location.empty())
                throw Error(ErrorCode::kProtocol,
                            "GET " + url.str() + ": a redirect without a Location");
            url = resolve_location(url, location);
            continue;
        }
        if (!got)
            no_response(url, r.error());
        if (!r && body)
            throw Error(ErrorCode::kUnavailable, "GET " + url.str() + ": the response was cut (" +
                                                     httplib::to_string(r.error()) + ")");
        return *got;
    }
    throw Error(ErrorCode::kProtocol, "GET " + start.str() + ": more than " +
                                          std::to_string(options_.max_redirects) + " redirects");
}

std::pair<HttpHead, std::string> HttpFetcher::get_text(const Url &url, size_t max_bytes) const {
    std::string text;
    HttpHead h = get(
        url, {}, [](const HttpHead &) { return true; },
        [&](const char *data, size_t n) {
            if (text.size() + n > max_bytes)
                throw Error(ErrorCode::kProtocol, "GET " + url.str() +
                                                      ": a response of more than " +
                                                      std::to_string(max_bytes) + " bytes");
            text.append(data, n);
        });
    return {std::move(h), std::move(text)};
}

}  // namespace colony
