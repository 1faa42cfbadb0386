// A worker's shard cache (DESIGN.md, decision 7): shards live at
//   <cache_dir>/<model sha256 hex>/<first>-<last>.gguf
// A download is written to "<that path>.part", hashed as it arrives, and
// renamed into place only when its size and SHA-256 match what the
// coordinator announced in SHARD_END; a mismatch deletes the part file, so
// the cache never holds a shard whose hash was not verified. That hash is
// recorded next to the shard ("<first>-<last>.gguf.sha256", shard_verify.h)
// and checked again each time the cached shard is loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/layer_range.h"
#include "net/hash.h"
#include "net/wire.h"

namespace colony {

/// <cache_dir>/<model_hash_hex>/<first>-<last>.gguf
std::filesystem::path shard_cache_path(const std::filesystem::path &cache_dir,
                                       const std::string &model_hash_hex, LayerRange range);

/// True when `file` is a readable GGUF shard of the model with that hash and
/// exactly that layer range (its colony.shard.* metadata). Sets *why to the
/// reason otherwise. Metadata only: the content is checked against the
/// recorded hash by verify_shard_file() (shard_verify.h).
bool shard_file_matches(const std::filesystem::path &file, const std::string &model_hash_hex,
                        LayerRange range, std::string *why);

/// The shards in `cache_dir` by their file names (<hex>/<first>-<last>.gguf),
/// newest first, at most `max` of them: what a worker reports in JOIN so the
/// coordinator can give it a range it already holds. Names only: ASSIGN still
/// checks the file with shard_file_matches(). A missing or unreadable
/// directory yields what could be read (possibly nothing); never throws.
std::vector<WireCachedShard> list_cached_shards(const std::filesystem::path &cache_dir, size_t max);

/// One shard download into the cache. Not thread-safe.
class ShardDownload {
  public:
    /// Starts writing `final_path`.part (truncated). Throws Error(kResource)
    /// when the directory or the file cannot be created.
    explicit ShardDownload(std::filesystem::path final_path);
    /// Removes the part file unless finish() succeeded.
    ~ShardDownload();
    ShardDownload(const ShardDownload &) = delete;
    ShardDownload &operator=(const ShardDownload &) = delete;

    /// Appends a chunk. Chunks must arrive in order: offset == received(), and
    /// every chunk must name the same total (<= max_total). Throws
    /// Error(kProtocol) otherwise, Error(kResource) on a write failure.
    void write(const WireShardChunk &chunk, uint64_t max_total);

    /// Checks that received() == end.total == the chunks' total and that the
    /// SHA-256 of the bytes equals end.sha256, then records that hash
    /// (record_shard_hash) and renames the part file into place. Throws Error(kCorrupt) on any
    /// mismatch (the part file is deleted and nothing is cached).
    void finish(const WireShardEnd &end);

    uint64_t received() const { return received_; }
    uint64_t total() const { return total_; }  // 0 until the first chunk
    const std::filesystem::path &final_path() const { return final_; }

  private:
    std::filesystem::path final_;
    std::filesystem::path part_;
    struct FileCloser {
        void operator()(std::FILE *f) const;
    };
    std::unique_ptr<std::FILE, FileCloser> file_;
    Sha256Hasher hasher_;
    uint64_t received_ = 0;
    uint64_t total_ = 0;
    bool done_ = false;
};

}  // namespace colony
