// `colony pull`: a hub model into the local model cache, resumable (HTTP
// Range from what a .part file holds) and verified against the SHA-256 the
// hub reports; and a stage's shard built from Range requests of only the
// bytes its layers need.
//
// Cache layout: <cache>/<owner>/<repo>/<file>, with "<file>.part" while it
// downloads and "<file>.sha256" (the verified hash) beside a finished file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "hub/hub.h"
#include "hub/model_ref.h"
#include "model/layer_range.h"

namespace colony {

class GgufFile;

/// Where a transfer stands; `total` is the file's (or the shard's tensors')
/// size, `resumed_from` what was already on disk when it started.
struct PullProgress {
    uint64_t done = 0;
    uint64_t total = 0;
    uint64_t resumed_from = 0;
    bool hashing = false;  // re-hashing the .part before resuming
};

struct PullOptions {
    std::filesystem::path cache_dir;  // default_model_cache() when empty
    /// Tries after the first when the connection is cut; each resumes where
    /// the last stopped, after 1, 2, 4 ... s.
    int retries = 4;
    std::function<void(const PullProgress &)> progress;
    std::function<void(const std::string &)> note;  // one-line notes for the user
};

struct PulledModel {
    std::filesystem::path path;
    HubFileInfo info;
    uint64_t bytes_fetched = 0;  // 0 when the cache already held it
};

/// $COLONY_MODEL_CACHE, else $XDG_CACHE_HOME/colony/models, else
/// $HOME/.cache/colony/models.
/// Error(kNotFound) when neither variable is set.
std::filesystem::path default_model_cache();

/// The SHA-256 recorded beside a model file ("<file>.sha256": the hex hash,
/// as pull_model writes it; sha256sum's "<hex>  <name>" is read too), or ""
/// when there is no record. Never throws.
std::string read_model_hash_record(const std::filesystem::path &model);

/// Writes that record (hex hash and a newline). Error(kResource) when it
/// cannot be written.
void write_model_hash_record(const std::filesystem::path &model, const std::string &sha256_hex);

/// The repo file `ref` names (choosing by quant type through the hub's
/// listing when it names none). Errors: those of Hub::stat/list_files and
/// pick_quant_file.
HubFileInfo resolve_ref(const Hub &hub, const ModelRef &ref);

/// Downloads `ref` into the cache, or finds it there (same SHA-256: no
/// transfer). Errors: kCorrupt when the bytes' SHA-256 is not the hub's (the
/// .part is removed, so the next pull starts over), kUnavailable when the
/// connection is cut more than `retries` times (the .part is kept, so the
/// next pull resumes), kResource for a disk that is full or read-only, and
/// those of resolve_ref().
PulledModel pull_model(const Hub &hub, const ModelRef &ref, const PullOptions &options = {});

/// Fetches the GGUF header of a hub file into `header_path` with Range
/// requests (64 KiB, doubled until the header is whole, at most 256 MiB) and
/// opens it (GgufFile::open_header). Errors: kCorrupt for a malformed header
/// or one longer than 256 MiB, and those of Hub::read_range.
std::unique_ptr<GgufFile> fetch_gguf_header(const Hub &hub, const HubFileInfo &file,
                                            const std::filesystem::path &header_path);

/// Writes the shard of `range` (model/shard.h) to `out_path` from the hub
/// file's header and the byte ranges of its tensors: no other byte of the
/// model is fetched. The shard's bytes equal those write_shard makes from
/// the whole file. Returns the bytes fetched. The hub's SHA-256 of the whole
/// file goes into colony.shard.model_sha256 (kUnsupported when it gives none).
uint64_t pull_shard(const Hub &hub, const HubFileInfo &file, LayerRange range,
                    const std::filesystem::path &out_path, const PullOptions &options = {});

}  // namespace colony
