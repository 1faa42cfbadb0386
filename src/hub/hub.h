// A Hugging Face-style model hub: file metadata from the resolve URL, repo
// listings, and byte ranges of a file. The protocol is the one
// huggingface_hub speaks (file_download.py, get_hf_file_metadata):
//   HEAD {endpoint}/{repo}/resolve/{revision}/{file}
//     -> 302 to the storage, with X-Linked-Etag: "<sha256>" (an LFS file's
//        SHA-256), X-Linked-Size, X-Repo-Commit; a small file answers 200
//        with its git ETag.
//   GET  the same URL (redirects followed), with Range: bytes=a-b -> 206.
//   GET  {endpoint}/api/models/{repo}[/revision/{rev}] -> JSON, "siblings".
// Errors come back as 404 (X-Error-Code: EntryNotFound/RevisionNotFound) or
// 401/403 (a gated or private repo, or an unknown one without a token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hub/http_fetch.h"
#include "hub/url.h"
#include "model/shard.h"

namespace colony {

/// What the hub says of one file of one revision.
struct HubFileInfo {
    std::string repo;      // "owner/name"
    std::string file;      // path inside the repo
    std::string revision;  // as asked ("main", a tag or a commit)
    std::string commit;    // X-Repo-Commit, "" when the hub gives none
    std::string sha256;    // hex; "" when the hub gives no SHA-256 (not an LFS file)
    uint64_t size = 0;     // bytes
    Url url;               // the resolve URL (GETs follow its redirect)

    /// "owner/name/file", or the URL when the repo is unknown (stat_url).
    std::string name() const { return repo.empty() ? url.str() : repo + "/" + file; }
};

class Hub {
  public:
    /// `endpoint`: base URL ("https://huggingface.co" or a mirror); `token`:
    /// sent to the endpoint only, may be empty.
    Hub(const std::string &endpoint, std::string token);

    /// The hub of the environment: $HF_ENDPOINT (else https://huggingface.co)
    /// and $HF_TOKEN, the names the Hugging Face tools use.
    static Hub from_env();

    const Url &endpoint() const { return endpoint_; }

    /// HEAD of the resolve URL. Errors: kNotFound (404: no such repo, file or
    /// revision), kUnauthorized (401/403, naming HF_TOKEN), kUnavailable
    /// (no answer, 5xx), kProtocol (no size).
    HubFileInfo stat(const std::string &repo, const std::string &file,
                     const std::string &revision = "main") const;

    /// stat() of a resolve URL given whole (a coordinator's ASSIGN names
    /// one); repo, file and revision stay empty. The token goes with it only
    /// when the URL is on this hub's origin.
    HubFileInfo stat_url(const Url &url) const;

    /// Paths of the repo's files at `revision` (GET /api/models/...).
    /// Errors as stat(), kProtocol for a listing that is not the hub's JSON.
    std::vector<std::string> list_files(const std::string &repo,
                                        const std::string &revision = "main") const;

    /// Streams bytes [offset, file size) of the file to `sink`. Before the
    /// first byte, `on_start` gets the offset the bytes start at: `offset`,
    /// or 0 when the server ignored the Range and sends the whole file (the
    /// caller starts over). Errors as stat(); kProtocol when a 206's
    /// Content-Range is not the one asked; kUnavailable when the body is cut.
    void read_from(const HubFileInfo &file, uint64_t offset,
                   const std::function<void(uint64_t)> &on_start, const ByteSink &sink) const;

    /// Streams exactly bytes [offset, offset + size) (one Range request).
    /// Errors as read_from(), and kProtocol when the server does not send
    /// that range (a 200 for a partial range is refused, not read whole).
    void read_range(const HubFileInfo &file, uint64_t offset, uint64_t size,
                    const ByteSink &sink) const;

    /// A ModelBytesReader over the file: ranges at most `max_gap` bytes apart
    /// are fetched in one request (the gap's bytes are dropped), so a stage's
    /// tensors, padded and adjacent in the file, take a few requests.
    ModelBytesReader range_reader(const HubFileInfo &file, uint64_t max_gap = 1 << 20) const;

  private:
    Url file_url(const std::string &repo, const std::string &file,
                 const std::string &revision) const;
    [[noreturn]] void fail(const HttpHead &h, const std::string &what) const;

    Url endpoint_;
    HttpFetcher http_;
};

}  // namespace colony
