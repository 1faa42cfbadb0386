#include "pipeline/hub_shard_fetch.h"

#include <chrono>
#include <system_error>

#include "hub/pull.h"
#include "net/hash.h"
#include "pipeline/shard_verify.h"
#include "util/error.h"

namespace colony {

HubShardFetch::HubShardFetch(std::string url, WireHash model_hash, LayerRange range,
                             WireHash sha256, uint64_t size, std::filesystem::path final_path)
    : final_path_(std::move(final_path)) {
    thread_ = std::thread([this, url = std::move(url), model_hash, range, sha256, size] {
        run(url, model_hash, range, sha256, size);
    });
}

HubShardFetch::~HubShardFetch() {
    cancel_ = true;
    if (thread_.joinable())
        thread_.join();
}

void HubShardFetch::run(const std::string &url, const WireHash &model_hash, LayerRange range,
                        const WireHash &sha256, uint64_t size) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::filesystem::path part = final_path_.string() + ".hub";
    std::error_code ec;
    try {
        const Hub hub = Hub::from_env();
        HubFileInfo info = hub.stat_url(parse_url(url));
        if (info.sha256 != to_hex(model_hash))
            throw Error(ErrorCode::kCorrupt,
                        "the hub's file has SHA-256 " +
                            (info.sha256.empty() ? std::string("(none)") : info.sha256) +
                            ", not the model's " + to_hex(model_hash));
        std::filesystem::create_directories(final_path_.parent_path(), ec);
        PullOptions o;
        o.progress = [this](const PullProgress &) {
            if (cancel_)
                throw Error(ErrorCode::kCancelled, "cancelled");
        };
        bytes_fetched_ = pull_shard(hub, info, range, part, o);
        const uint64_t got_size = std::filesystem::file_size(part);
        const auto got = hash_file_sha256(part, {}, &cancel_);
        if (!got)
            throw Error(ErrorCode::kCancelled, "cancelled");
        if (got_size != size || *got != sha256)
            throw Error(ErrorCode::kCorrupt,
                        "the shard built from the hub (" + std::to_string(got_size) +
                            " bytes, SHA-256 " + to_hex(*got) + ") is not the coordinator's (" +
                            std::to_string(size) + " bytes, " + to_hex(sha256) + ")");
        record_shard_hash(final_path_, sha256);
        std::filesystem::rename(part, final_path_, ec);
        if (ec)
            throw Error(ErrorCode::kResource,
                        "cannot rename " + part.string() + ": " + ec.message());
        ok_ = true;
    } catch (const std::exception &e) {
        why_ = e.what();
        std::filesystem::remove(part, ec);
    }
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done_ = true;
}

}  // namespace colony
