// HTTP for downloads: HEAD and streamed GET over cpp-httplib (http and https,
// OpenSSL), redirects followed by colony so that credentials never leave
// their origin, and every failure one colony::Error naming the URL.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "hub/url.h"
#include "model/shard.h"

namespace colony {

/// Status and headers of one response, and the URL that gave it.
struct HttpHead {
    int status = 0;
    /// Header names lower-cased; a repeated header keeps its last value.
    std::map<std::string, std::string> headers;
    Url url;

    /// The header's value, or "" when absent. `name` in lower case.
    std::string header(const std::string &name) const;
};

/// 301, 302, 303, 307 or 308: a redirect with a Location.
bool is_redirect(int status);

struct HttpOptions {
    /// Sent as "Authorization: Bearer <token>" to `token_origin` only (the
    /// hub; not to the storage it redirects to, as huggingface_hub does).
    std::string bearer_token;
    std::string token_origin;
    std::chrono::seconds connect_timeout{15};
    /// Longest silence inside a response before it counts as cut.
    std::chrono::seconds read_timeout{60};
    int max_redirects = 8;
};

class HttpFetcher {
  public:
    explicit HttpFetcher(HttpOptions options) : options_(std::move(options)) {}

    /// HEAD of `url`, not following redirects (a hub's resolve URL answers
    /// with its metadata and a 302). Error(kUnavailable) when no response came.
    HttpHead head(const Url &url, const std::map<std::string, std::string> &headers = {}) const;

    /// GET `url`, following redirects. `on_head` sees the final response and
    /// returns false to skip its body; `on_data` receives the body (it may
    /// throw to stop). Returns the final response's head. Errors:
    /// kUnavailable when the connection fails or the body is cut (the
    /// message names httplib's error), what `on_head`/`on_data` throw, and
    /// kProtocol for too many redirects.
    HttpHead get(const Url &url, const std::map<std::string, std::string> &headers,
                 const std::function<bool(const HttpHead &)> &on_head,
                 const ByteSink &on_data) const;

    /// GET a small body (a JSON listing): at most `max_bytes`, else kProtocol.
    std::pair<HttpHead, std::string> get_text(const Url &url, size_t max_bytes) const;

  private:
    HttpOptions options_;
};

}  // namespace colony
