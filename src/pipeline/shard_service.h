// The coordinator's side of shard transfer (DESIGN.md, decision 7): it writes
// the shard of every assigned layer range into its own cache once
// (write_shard), hashes it, and answers SHARD_REQUEST with a window of
// SHARD_CHUNKs; the worker asks for the next window when one has arrived, so
// at most kShardWindowBytes per worker sit in ZeroMQ's queues.
//
//   worker                         coordinator
//   SHARD_REQUEST(offset 0)   ->
//                             <-   SHARD_CHUNK(0..1 MiB) ... SHARD_CHUNK(..4 MiB)
//   SHARD_REQUEST(4 MiB)      ->
//                             <-   SHARD_CHUNK ... , SHARD_END(total, sha256)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/layer_range.h"
#include "net/wire.h"

namespace colony {

class GgufFile;
struct ModelHparams;

constexpr uint64_t kShardChunkBytes = 1u << 20;   // bytes per SHARD_CHUNK
constexpr uint64_t kShardWindowBytes = 4u << 20;  // bytes sent per SHARD_REQUEST

/// A shard file ready to be served.
struct ShardInfo {
    LayerRange range;
    std::filesystem::path path;
    uint64_t size = 0;
    WireHash sha256{};
};

class ShardService {
  public:
    /// model and hp must outlive the service. Shards go to
    /// <cache_dir>/<model_hash_hex>/<first>-<last>.gguf.
    ShardService(const GgufFile &model, const ModelHparams &hp, std::string model_hash_hex,
                 std::filesystem::path cache_dir);

    /// Makes sure the shard of `range` exists (writes it when missing, stale,
    /// or when its content does not match its recorded hash, shard_verify.h)
    /// and knows its size and hash. `keepalive` (may be empty) is called
    /// every few MiB while writing and hashing, so a caller that must answer
    /// heartbeats can do so. Thread-safe. Throws what write_shard throws, and
    /// Error(kResource) when the shard cannot be read back.
    const ShardInfo &prepare(LayerRange range, const std::function<void()> &keepalive = {});

    /// The shard of `range` if prepare() made it ready; nothing is written.
    std::optional<ShardInfo> prepared(LayerRange range) const;

    /// The messages answering `req`: chunks of [req.offset, req.offset +
    /// kShardWindowBytes), plus SHARD_END when the window reaches the end.
    /// Throws Error(kNotFound) for a range that was not prepared or another
    /// model's hash, Error(kOutOfRange) for an offset past the end,
    /// Error(kResource) when the file cannot be read.
    std::vector<WireBody> serve(const WireShardRequest &req);

    /// Shard bytes handed out so far (all workers).
    uint64_t bytes_served() const;
    const std::string &model_hash_hex() const { return model_hash_hex_; }

  private:
    const GgufFile &model_;
    const ModelHparams &hp_;
    std::string model_hash_hex_;
    WireHash model_hash_{};
    std::filesystem::path cache_dir_;
    mutable std::mutex mutex_;
    std::map<std::pair<uint32_t, uint32_t>, ShardInfo> shards_;  // guarded by mutex_
    uint64_t bytes_served_ = 0;                                  // guarded by mutex_
};

/// Raw bytes of a 64-character hex SHA-256. Throws Error(kInvalidArgument).
WireHash hash_from_hex(const std::string &hex);

}  // namespace colony
