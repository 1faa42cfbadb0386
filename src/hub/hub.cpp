#include "hub/hub.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace colony {

namespace {

/// An ETag's value without W/ and quotes.
std::string etag_value(std::string v) {
    if (v.rfind("W/", 0) == 0)
        v.erase(0, 2);
    v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
    return v;
}

bool is_sha256_hex(const std::string &v) {
    return v.size() == 64 && std::all_of(v.begin(), v.end(), [](char c) {
               return std::isxdigit(static_cast<unsigned char>(c));
           });
}

bool parse_u64(const std::string &s, uint64_t &out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

/// "bytes a-b/total" (RFC 9110 section 14.4); false when it is not that.
bool parse_content_range(const std::string &v, uint64_t &first, uint64_t &last, uint64_t &total) {
    if (v.rfind("bytes ", 0) != 0)
        return false;
    const size_t dash = v.find('-', 6), slash = v.find('/', 6);
    if (dash == std::string::npos || slash == std::string::npos || dash > slash)
        return false;
    return parse_u64(v.substr(6, dash - 6), first) &&
           parse_u64(v.substr(dash + 1, slash - dash - 1), last) &&
           parse_u64(v.substr(slash + 1), total) && first <= last && last < total;
}

std::string env_or(const char *name, const std::string &fallback) {
    const char *v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

}  // namespace

Hub::Hub(const std::string &endpoint, std::string token)
    : endpoint_(parse_url(endpoint)), http_(HttpOptions{}) {
    while (endpoint_.target.size() > 1 && endpoint_.target.back() == '/')
        endpoint_.target.pop_back();
    if (endpoint_.target == "/")
        endpoint_.target.clear();
    HttpOptions o;
    o.bearer_token = std::move(token);
    o.token_origin = endpoint_.origin();
    http_ = HttpFetcher(std::move(o));
}

Hub Hub::from_env() {
    return Hub(env_or("HF_ENDPOINT", "https://huggingface.co"), env_or("HF_TOKEN", ""));
}

Url Hub::file_url(const std::string &repo, const std::string &file,
                  const std::string &revision) const {
    Url u = endpoint_;
    u.target = endpoint_.target + "/" + encode_path(repo) + "/resolve/" + encode_path(revision) +
               "/" + encode_path(file);
    return u;
}

void Hub::fail(const HttpHead &h, const std::string &what) const {
    const std::string code = h.header("x-error-code");
    const std::string detail = " (HTTP " + std::to_string(h.status) +
                               (code.empty() ? "" : ", " + code) + " from " + h.url.str() + ")";
    if (h.status == 404)
        throw Error(ErrorCode::kNotFound, what + ": not found on the hub" + detail);
    if (h.status == 401 || h.status == 403)
        throw Error(ErrorCode::kUnauthorized,
                    what + ": refused" + detail +
                        "; a gated or private repo needs an access token in HF_TOKEN (and the "
                        "repo's terms accepted), and an unknown repo also answers so");
    if (h.status == 429 || h.status >= 500)
        throw Error(ErrorCode::kUnavailable, what + ": the hub is unavailable" + detail);
    throw Error(ErrorCode::kProtocol, what + ": unexpected answer" + detail);
}

HubFileInfo Hub::stat(const std::string &repo, const std::string &file,
                      const std::string &revision) const {
    HubFileInfo info = stat_url(file_url(repo, file, revision));
    info.repo = repo;
    info.file = file;
    info.revision = revision;
    return info;
}

HubFileInfo Hub::stat_url(const Url &url) const {
    HubFileInfo info;
    info.url = url;
    const std::string what = url.str();
    // Follow same-origin redirects (a renamed repo) until the answer is the
    // file's metadata: a 200, or a redirect to the storage carrying it.
    HttpHead h = http_.head(info.url);
    for (int hop = 0; hop < 8 && is_redirect(h.status) && h.header("x-linked-size").empty() &&
                      !h.header("location").empty();
         ++hop) {
        info.url = resolve_location(info.url, h.header("location"));
        h = http_.head(info.url);
    }
    const bool linked = !h.header("x-linked-size").empty();
    if (!linked && h.status != 200)
        fail(h, what);
    info.commit = h.header("x-repo-commit");
    const std::string etag = etag_value(linked ? h.header("x-linked-etag") : h.header("etag"));
    if (is_sha256_hex(etag)) {
        info.sha256 = etag;
        std::transform(info.sha256.begin(), info.sha256.end(), info.sha256.begin(), [](char c) {
            return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        });
    }
    if (!parse_u64(linked ? h.header("x-linked-size") : h.header("content-length"), info.size))
        throw Error(ErrorCode::kProtocol,
                    what + ": the hub gave no file size (" + h.url.str() + ")");
    return info;
}

std::vector<std::string> Hub::list_files(const std::string &repo,
                                         const std::string &revision) const {
    Url u = endpoint_;
    u.target = endpoint_.target + "/api/models/" + encode_path(repo) +
               (revision == "main" ? "" : "/revision/" + encode_path(revision));
    const std::string what = "listing " + repo + "@" + revision;
    std::string text;
    const HttpHead h = http_.get(
        u, {}, [](const HttpHead &r) { return r.status == 200; },
        [&](const char *data, size_t n) {
            if (text.size() + n > (64u << 20))
                throw Error(ErrorCode::kProtocol, what + ": a listing of more than 64 MiB");
            text.append(data, n);
        });
    if (h.status != 200)
        fail(h, what);
    std::vector<std::string> files;
    try {
        const nlohmann::json j = nlohmann::json::parse(text);
        for (const auto &s : j.at("siblings"))
            files.push_back(s.at("rfilename").get<std::string>());
    } catch (const nlohmann::json::exception &e) {
        throw Error(ErrorCode::kProtocol, what + ": not the hub's JSON (" + e.what() + ")");
    }
    return files;
}

void Hub::read_from(const HubFileInfo &file, uint64_t offset,
                    const std::function<void(uint64_t)> &on_start, const ByteSink &sink) const {
    const std::string what = file.name();
    if (offset >= file.size)
        throw Error(ErrorCode::kOutOfRange, what + ": offset " + std::to_string(offset) +
                                                " is past its " + std::to_string(file.size) +
                                                " bytes");
    uint64_t start = offset, received = 0;
    std::map<std::string, std::string> headers;
    if (offset > 0)
        headers["Range"] = "bytes=" + std::to_string(offset) + "-";
    const HttpHead h = http_.get(
        file.url, headers,
        [&](const HttpHead &r) {
            if (r.status == 200) {
                start = 0;  // a server without Range support sends it whole
                on_start(start);
                return true;
            }
            if (r.status != 206)
                return false;
            uint64_t first = 0, last = 0, total = 0;
            if (!parse_content_range(r.header("content-range"), first, last, total) ||
                first != offset || last + 1 != file.size)
                throw Error(ErrorCode::kProtocol, what + ": asked bytes " + std::to_string(offset) +
                                                      "-, got Content-Range '" +
                                                      r.header("content-range") + "' from " +
                                                      r.url.str());
            if (total != file.size)
                throw Error(ErrorCode::kCorrupt,
                            what + ": the file has " + std::to_string(total) + " bytes now, not " +
                                std::to_string(file.size) + " (it changed on the hub)");
            on_start(start);
            return true;
        },
        [&](const char *data, size_t n) {
            if (start + received + n > file.size)
                throw Error(ErrorCode::kProtocol,
                            what + ": more bytes than its " + std::to_string(file.size));
            received += n;
            sink(data, n);
        });
    if (h.status != 200 && h.status != 206)
        fail(h, what);
    if (start + received != file.size)
        throw Error(ErrorCode::kUnavailable, what + ": the response ended at byte " +
                                                 std::to_string(start + received) + " of " +
                                                 std::to_string(file.size));
}

void Hub::read_range(const HubFileInfo &file, uint64_t offset, uint64_t size,
                     const ByteSink &sink) const {
    const std::string what = file.name();
    if (size == 0)
        return;
    if (offset > file.size || size > file.size - offset)
        throw Error(ErrorCode::kOutOfRange, what + ": bytes " + std::to_string(offset) + "+" +
                                                std::to_string(size) + " are outside its " +
                                                std::to_string(file.size));
    const uint64_t last = offset + size - 1;
    uint64_t received = 0;
    const HttpHead h = http_.get(
        file.url, {{"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(last)}},
        [&](const HttpHead &r) {
            if (r.status == 200 && size != file.size)
                throw Error(ErrorCode::kProtocol,
                            what + ": " + r.url.str() +
                                " ignored the Range request (200 instead of 206); "
                                "refusing to read the whole file for a part of it");
            if (r.status != 206 && r.status != 200)
                return false;
            uint64_t first = 0, end = 0, total = 0;
            if (r.status == 206 &&
                (!parse_content_range(r.header("content-range"), first, end, total) ||
                 first != offset || end != last))
                throw Error(ErrorCode::kProtocol, what + ": asked bytes " + std::to_string(offset) +
                                                      "-" + std::to_string(last) +
                                                      ", got Content-Range '" +
                                                      r.header("content-range") + "'");
            if (r.status == 206 && total != file.size)
                throw Error(ErrorCode::kCorrupt,
                            what + ": the file has " + std::to_string(total) + " bytes now, not " +
                                std::to_string(file.size) + " (it changed on the hub)");
            return true;
        },
        [&](const char *data, size_t n) {
            if (received + n > size)
                throw Error(ErrorCode::kProtocol, what + ": more bytes than the range asked");
            received += n;
            sink(data, n);
        });
    if (h.status != 206 && h.status != 200)
        fail(h, what);
    if (received != size)
        throw Error(ErrorCode::kUnavailable, what + ": the range ended after " +
                                                 std::to_string(received) + " of " +
                                                 std::to_string(size) + " bytes");
}

ModelBytesReader Hub::range_reader(const HubFileInfo &file, uint64_t max_gap) const {
    return [this, file, max_gap](const std::vector<ByteRange> &ranges, const ByteSink &sink) {
        size_t i = 0;
        while (i < ranges.size()) {
            // one request for ranges[i..j): each starts at most max_gap after the last ended
            size_t j = i + 1;
            uint64_t end = ranges[i].offset + ranges[i].size;
            while (j < ranges.size() && ranges[j].offset >= end &&
                   ranges[j].offset - end <= max_gap) {
                end = ranges[j].offset + ranges[j].size;
                ++j;
            }
            const uint64_t base = ranges[i].offset;
            uint64_t pos = base;  // file offset of the next byte received
            size_t k = i;         // the range the next byte may belong to
            read_range(file, base, end - base, [&](const char *data, size_t n) {
                while (n > 0 && k < j) {
                    const ByteRange &r = ranges[k];
                    if (pos < r.offset) {  // a gap: drop it
                        const size_t skip =
                            static_cast<size_t>(std::min<uint64_t>(r.offset - pos, n));
                        data += skip, n -= skip, pos += skip;
                        continue;
                    }
                    const size_t take =
                        static_cast<size_t>(std::min<uint64_t>(r.offset + r.size - pos, n));
                    sink(data, take);
                    data += take, n -= take, pos += take;
                    if (pos == r.offset + r.size)
                        ++k;
                }
            });
            i = j;
        }
    };
}

}  // namespace colony
