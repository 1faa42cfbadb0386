// How a worker gets the shard of its assigned range: its verified cache, the
// hub the model came from (byte ranges, hub_shard_fetch.h), or the
// coordinator (SHARD_REQUEST windows). Split from worker.cpp.
#include <chrono>
#include <cstdio>
#include <optional>

#include "net/hash.h"
#include "pipeline/shard_build.h"
#include "pipeline/shard_cache.h"
#include "pipeline/shard_service.h"
#include "pipeline/shard_verify.h"
#include "pipeline/worker.h"
#include "pipeline/worker_data.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr uint64_t kMaxShardBytes = 1ull << 40;

}  // namespace

void Worker::on_assign(const WireAssign &a) {
    assign_ = a;
    ready_sent_ = false;
    tried_local_ = tried_hub_ = false;
    download_.reset();
    verify_.reset();
    build_.reset();
    const LayerRange range{a.layer_first, a.layer_last};
    const std::string hash_hex = to_hex(a.model_hash);
    const std::filesystem::path path = shard_cache_path(opts_.cache_dir, hash_hex, range);
    COLONY_LOG_INFO("worker: assigned layers %s of %u (plan %llu)%s", range.str().c_str(),
                    a.n_layer, static_cast<unsigned long long>(a.plan_epoch),
                    a.is_last ? ", last stage" : "");
    std::string why;
    if (!path.empty() && data_->status().loaded_shard == path) {
        // loaded already (a standby range, or the same stage under a new
        // plan): its content was verified when it was loaded
        hand_to_data_plane(path);
        return;
    }
    if (shard_file_matches(path, hash_hex, range, &why)) {
        // checked off this thread: hashing a large shard takes seconds
        verify_ = std::make_unique<ShardVerification>(path);
        return;
    }
    start_download(path, why);
}

void Worker::on_verified() {
    const std::unique_ptr<ShardVerification> v = std::move(verify_);
    if (v->intact()) {
        COLONY_LOG_INFO("worker: shard cache hit: %s (content verified in %.0f ms)",
                        v->path().c_str(), v->elapsed_ms());
        hand_to_data_plane(v->path());
        return;
    }
    COLONY_LOG_WARN("worker: cached shard %s failed verification (%s); discarding it",
                    v->path().c_str(), v->why().c_str());
    discard_shard_file(v->path());
    start_download(v->path(), "the cached copy failed verification");
}

void Worker::start_download(const std::filesystem::path &path, const std::string &why) {
    const WireAssign &a = *assign_;
    const LayerRange range{a.layer_first, a.layer_last};
    // The sources in order: a local model file, the hub, the coordinator.
    std::optional<ShardSource> source;
    if (!tried_local_ && !opts_.model_dir.empty()) {
        tried_local_ = true;
        source =
            ShardSource{ShardSource::Kind::kLocalModel, "", opts_.model_dir, opts_.hash_model_dir};
    } else if (!tried_hub_ && !a.shard_url.empty() && opts_.hub_shards) {
        tried_hub_ = true;
        source = ShardSource{ShardSource::Kind::kHub, a.shard_url, {}, false};
    }
    if (source) {
        COLONY_LOG_INFO("worker: building the shard of layers %s from %s (%s)", range.str().c_str(),
                        source->name(), why.c_str());
        build_ = std::make_unique<ShardBuild>(*source, a.model_hash, range, a.shard_sha256,
                                              a.shard_size, path);
        return;
    }
    COLONY_LOG_INFO("worker: fetching the shard of layers %s (%s)",
                    LayerRange{a.layer_first, a.layer_last}.str().c_str(), why.c_str());
    download_ = std::make_unique<ShardDownload>(path);
    download_started_ = clock::now();
    requested_until_ = kShardWindowBytes;
    last_progress_pct_ = -1;
    send(WireShardRequest{a.model_hash, a.layer_first, a.layer_last, 0});
}

void Worker::on_chunk(const WireShardChunk &c) {
    if (!download_) {
        COLONY_LOG_WARN("worker: dropped a SHARD_CHUNK: no download in progress");
        return;
    }
    try {
        download_->write(c, kMaxShardBytes);
    } catch (const Error &e) {
        send(WireError{ErrorCode::kCorrupt, std::string("shard transfer failed: ") + e.what()});
        download_.reset();
        throw Error(ErrorCode::kCorrupt, std::string("shard transfer failed: ") + e.what());
    }
    shard_bytes_received_ += c.bytes.size();
    const uint64_t got = download_->received(), total = download_->total();
    const int pct = static_cast<int>(got * 100 / total);
    if (pct != last_progress_pct_) {
        last_progress_pct_ = pct;
        std::fprintf(stderr, "\rcolony join: shard of layers [%u,%u): %.1f / %.1f MiB (%d%%)%s",
                     assign_->layer_first, assign_->layer_last, got / 1048576.0, total / 1048576.0,
                     pct, got == total ? "\n" : "");
        std::fflush(stderr);
    }
    if (got == std::min(requested_until_, total) && got < total) {
        requested_until_ = got + kShardWindowBytes;
        send(WireShardRequest{assign_->model_hash, assign_->layer_first, assign_->layer_last, got});
    }
}

void Worker::on_shard_end(const WireShardEnd &e) {
    if (!download_) {
        COLONY_LOG_WARN("worker: dropped a SHARD_END: no download in progress");
        return;
    }
    try {
        download_->finish(e);
    } catch (const Error &err) {
        send(WireError{err.code(), err.what()});
        download_.reset();
        throw;
    }
    const std::filesystem::path path = download_->final_path();
    COLONY_LOG_INFO("worker: shard verified (sha256 %s), cached at %s", to_hex(e.sha256).c_str(),
                    path.c_str());
    const double seconds = std::chrono::duration<double>(clock::now() - download_started_).count();
    if (e.total >= (1u << 20) && seconds > 0) {
        // Includes hashing and writing the file: a lower bound of the link's throughput.
        shard_throughput_ = static_cast<double>(e.total) / seconds;
    }
    download_.reset();
    hand_to_data_plane(path);
}

void Worker::on_shard_built() {
    const std::unique_ptr<ShardBuild> b = std::move(build_);
    if (b->ok()) {
        COLONY_LOG_INFO(
            "worker: shard built from %s in %.1f s (%llu bytes fetched), verified, cached at %s",
            b->source().name(), b->seconds(), static_cast<unsigned long long>(b->bytes_fetched()),
            b->path().c_str());
        hub_shard_bytes_ += b->bytes_fetched();
        hand_to_data_plane(b->path());
        return;
    }
    const bool absent = b->source().kind == ShardSource::Kind::kLocalModel &&
                        b->why().rfind("no model file", 0) == 0;
    if (absent)
        COLONY_LOG_INFO("worker: %s", b->why().c_str());
    else
        COLONY_LOG_WARN("worker: the shard from %s failed (%s)", b->source().name(),
                        b->why().c_str());
    start_download(b->path(), std::string(b->source().name()) + " failed");
}

}  // namespace colony
