// Verification of cached shards on load (DESIGN.md, decision 7; docs/cluster.md).
//
// Every shard in a cache has a record next to it, "<first>-<last>.gguf.sha256",
// in sha256sum's format ("<64 hex>  <file name>\n"): the SHA-256 that the
// coordinator announced in SHARD_END and the download matched (worker), or
// the hash of the shard the coordinator wrote (coordinator). Before a cached
// shard is used, its content is hashed again and compared with the record,
// so a flipped byte (same size, same mtime) is caught: the file is discarded
// and the shard is fetched or written again. A shard without a record (an
// older cache) counts as unverified and is fetched again too.
//
// Cost: one streamed SHA-256 of the file (about 1.5 GB/s on a core with SHA
// instructions), which also brings the file into the page cache that the
// stage's mmap load reads next.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "net/wire.h"

namespace colony {

/// "<shard>.sha256": where the hash of `shard` is recorded.
std::filesystem::path shard_hash_path(const std::filesystem::path &shard);

/// Writes the record of `shard`'s hash (atomically: a temp file renamed into
/// place). Throws Error(kResource) when it cannot be written.
void record_shard_hash(const std::filesystem::path &shard, const WireHash &sha256);

/// The recorded hash of `shard`; nullopt when there is no record or it is
/// malformed. Never throws.
std::optional<WireHash> read_shard_hash(const std::filesystem::path &shard);

/// Streamed SHA-256 of a file. `keepalive` (may be empty) is called between
/// 4 MiB blocks; when `cancel` (may be null) becomes true, hashing stops and
/// nullopt is returned. Throws Error(kResource) when the file cannot be read.
std::optional<WireHash> hash_file_sha256(const std::filesystem::path &path,
                                         const std::function<void()> &keepalive = {},
                                         const std::atomic<bool> *cancel = nullptr);

/// True when the content of `shard` hashes to its recorded hash. Otherwise
/// false with *why (may be null) set: no record, unreadable, or "content
/// hashes to X, the record says Y". A cancelled check returns false with
/// *why "cancelled". Never throws.
bool verify_shard_file(const std::filesystem::path &shard, std::string *why,
                       const std::atomic<bool> *cancel = nullptr);

/// Deletes a shard and its record (and its .part files); errors are ignored.
void discard_shard_file(const std::filesystem::path &shard);

/// verify_shard_file() on a background thread, so that the worker's control
/// thread keeps answering heartbeats while a multi-GB shard is hashed.
/// Created and polled by one thread; the destructor cancels and joins.
class ShardVerification {
  public:
    explicit ShardVerification(std::filesystem::path shard);
    ~ShardVerification();
    ShardVerification(const ShardVerification &) = delete;
    ShardVerification &operator=(const ShardVerification &) = delete;

    /// True once the check has finished; then intact() and why() are valid.
    bool done() const { return done_.load(); }
    bool intact() const { return intact_; }
    const std::string &why() const { return why_; }
    double elapsed_ms() const { return elapsed_ms_; }
    const std::filesystem::path &path() const { return shard_; }

  private:
    std::filesystem::path shard_;
    std::atomic<bool> cancel_{false};
    std::atomic<bool> done_{false};
    bool intact_ = false;    // written by the thread before done_
    std::string why_;        // written by the thread before done_
    double elapsed_ms_ = 0;  // written by the thread before done_
    std::thread thread_;
};

}  // namespace colony
