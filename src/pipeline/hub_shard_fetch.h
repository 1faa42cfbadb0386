// A worker's shard built from the hub the model came from (docs/models.md):
// when ASSIGN names a hub URL and the shard's hash, the worker fetches the
// GGUF header and its tensors' byte ranges (hub/pull.h, pull_shard) instead of
// asking the coordinator, so the coordinator's uplink carries no shard. The
// result must hash to what the coordinator announced; then it enters the
// shard cache like a coordinator download (its hash recorded beside it). On
// any failure (no route to the hub, a refused token, a hash that differs) the
// worker falls back to SHARD_REQUEST.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "model/layer_range.h"
#include "net/wire.h"

namespace colony {

/// One fetch on a background thread, so the control thread keeps answering
/// heartbeats. Created and polled by one thread; the destructor cancels (the
/// transfer stops at its next chunk) and joins.
class HubShardFetch {
  public:
    /// Fetches the shard of `range` of the model at `url` (the hub's SHA-256
    /// of the whole file must be `model_hash`) into `final_path` when it
    /// hashes to `sha256` and has `size` bytes. The token is $HF_TOKEN, sent
    /// only when `url` is on $HF_ENDPOINT's origin (default huggingface.co).
    HubShardFetch(std::string url, WireHash model_hash, LayerRange range, WireHash sha256,
                  uint64_t size, std::filesystem::path final_path);
    ~HubShardFetch();
    HubShardFetch(const HubShardFetch &) = delete;
    HubShardFetch &operator=(const HubShardFetch &) = delete;

    /// True once the fetch has ended; then ok(), why() and the figures are valid.
    bool done() const { return done_.load(); }
    bool ok() const { return ok_; }
    const std::string &why() const { return why_; }
    uint64_t bytes_fetched() const { return bytes_fetched_; }
    double seconds() const { return seconds_; }
    const std::filesystem::path &path() const { return final_path_; }

  private:
    void run(const std::string &url, const WireHash &model_hash, LayerRange range,
             const WireHash &sha256, uint64_t size);

    std::filesystem::path final_path_;
    std::atomic<bool> cancel_{false};
    std::atomic<bool> done_{false};
    bool ok_ = false;             // written by the thread before done_
    std::string why_;             // written by the thread before done_
    uint64_t bytes_fetched_ = 0;  // written by the thread before done_
    double seconds_ = 0;          // written by the thread before done_
    std::thread thread_;
};

}  // namespace colony
