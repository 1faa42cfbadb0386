// A stage's speed measurement kept next to its shard, as
// <shard>.probe.json, so that a worker restarted with the same shard, thread
// count and slow-down loads without measuring again. Measuring a stage runs
// two rounds of 64-token prefills and decode steps: about 13 s per worker for
// 9 blocks of the 8B-shaped model on one core, most of a warm restart. The
// rolling decode measurement taken while serving (worker_status.h) still
// corrects a device that has become slower since.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/layer_range.h"

namespace colony {

/// What a cached measurement must match: the stage, how it runs, and the
/// shard file it was measured on (size and modification time, so a shard
/// downloaded again is measured again).
struct ProbeKey {
    LayerRange range;
    bool is_last = false;
    int n_threads = 0;
    double slowdown = 1.0;
    int prefill_tokens = 0;
    std::string software_version;
    std::vector<uint32_t> skip_layers;  // blocks of the range not computed (--skip-layers)
};

/// One measurement of the whole stage, ms (see WorkerData::StageProbe).
struct CachedProbe {
    double decode_ms = 0;
    double prefill_ms_per_token = 0;
};

/// The measurement stored for `shard` under `key`, when the file exists,
/// parses, matches key and the shard's size and mtime, holds positive finite
/// times, and is at most max_age old. Never throws: anything else is nullopt.
std::optional<CachedProbe> load_cached_probe(const std::filesystem::path &shard,
                                             const ProbeKey &key, std::chrono::seconds max_age);

/// Stores `probe` for `shard` under `key` (written to a temporary file, then
/// renamed). Best effort: a failure is logged and otherwise ignored.
void save_cached_probe(const std::filesystem::path &shard, const ProbeKey &key,
                       const CachedProbe &probe);

/// <shard>.probe.json
std::filesystem::path probe_cache_path(const std::filesystem::path &shard);

}  // namespace colony
