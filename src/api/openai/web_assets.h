// The dashboard's files (src/api/openai/web/), embedded into the binary at
// build time by embed_web.cmake, so the page works offline from any node.
#pragma once

#include <cstddef>
#include <string>

namespace colony {

struct WebAsset {
    const char *path;          // URL path: "/" for index.html, "/app.js", ...
    const char *content_type;  // "text/html; charset=utf-8", ...
    const unsigned char *data;
    size_t size;  // bytes (data has one extra 0 byte after them)
};

/// The asset served at `path`, or nullptr.
const WebAsset *find_web_asset(const std::string &path);

}  // namespace colony
