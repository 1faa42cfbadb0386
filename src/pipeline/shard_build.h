// A worker building the shard of its range itself instead of receiving it
// from the coordinator (docs/models.md):
//   - from a local model file (--model-dir): the same model, recognized by its
//     SHA-256, is cut into the shard here (write_shard): no transfer at all;
//   - from the hub the model came from, when ASSIGN names it: the GGUF header
//     and the tensors' byte ranges (hub/pull.h, pull_shard), so the
//     coordinator's uplink carries no shard.
// The shard must hash to what the coordinator announced in ASSIGN (when it
// announced one); then it enters the shard cache like a coordinator download,
// its hash recorded beside it. On any failure the worker tries its next
// source, and in the end asks the coordinator (SHARD_REQUEST).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "model/layer_range.h"
#include "net/wire.h"

namespace colony {

struct ShardSource {
    enum class Kind { kLocalModel, kHub };
    Kind kind = Kind::kHub;
    std::string url;                  // kHub: the model's resolve URL
    std::filesystem::path model_dir;  // kLocalModel: where to look for the model file
    bool hash_unrecorded = false;     // kLocalModel: hash files without a .sha256 record
    const char *name() const { return kind == Kind::kHub ? "the hub" : "a local model file"; }
};

/// The GGUF file under `dir` (recursively) whose SHA-256 is `model_hash_hex`,
/// or an empty path. A file's hash is its "<file>.sha256" record
/// (read_model_hash_record, hub/pull.h); a file without one is hashed
/// only when `hash_unrecorded`, and its record written when the directory is
/// writable. `cancel` (may be null) stops the search. Never throws.
std::filesystem::path find_model_file(const std::filesystem::path &dir,
                                      const std::string &model_hash_hex, bool hash_unrecorded,
                                      const std::atomic<bool> *cancel = nullptr);

/// One build on a background thread, so the control thread keeps answering
/// heartbeats. Created and polled by one thread; the destructor cancels (the
/// work stops at its next chunk) and joins.
class ShardBuild {
  public:
    /// Builds the shard of `range` of the model whose SHA-256 is `model_hash`
    /// into `final_path`. `sha256`/`size`: the coordinator's shard, which the
    /// result must equal (zero: not announced; then only a local build is
    /// taken, the model file being verified by its hash). A hub source sends
    /// $HF_TOKEN only to $HF_ENDPOINT's origin (default huggingface.co).
    ShardBuild(ShardSource source, WireHash model_hash, LayerRange range, WireHash sha256,
               uint64_t size, std::filesystem::path final_path);
    ~ShardBuild();
    ShardBuild(const ShardBuild &) = delete;
    ShardBuild &operator=(const ShardBuild &) = delete;

    /// True once the build has ended; then ok(), why() and the figures are valid.
    bool done() const { return done_.load(); }
    bool ok() const { return ok_; }
    const std::string &why() const { return why_; }
    uint64_t bytes_fetched() const { return bytes_fetched_; }  // over the network (hub)
    double seconds() const { return seconds_; }
    const std::filesystem::path &path() const { return final_path_; }
    const ShardSource &source() const { return source_; }

  private:
    void run(const WireHash &model_hash, LayerRange range, const WireHash &sha256, uint64_t size);
    /// Writes the shard to `part`; returns the bytes fetched over the network.
    uint64_t build(const std::filesystem::path &part, const WireHash &model_hash, LayerRange range);

    ShardSource source_;
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
