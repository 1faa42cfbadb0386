#include "pipeline/shard_service.h"

#include <fstream>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/hash.h"
#include "pipeline/shard_cache.h"
#include "pipeline/shard_verify.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

WireHash hash_from_hex(const std::string &hex) {
    WireHash h{};
    auto nibble = [&](char c) -> uint8_t {
        if (c >= '0' && c <= '9')
            return static_cast<uint8_t>(c - '0');
        if (c >= 'a' && c <= 'f')
            return static_cast<uint8_t>(c - 'a' + 10);
        if (c >= 'A' && c <= 'F')
            return static_cast<uint8_t>(c - 'A' + 10);
        throw Error(ErrorCode::kInvalidArgument, "'" + hex + "' is not a hex SHA-256");
    };
    if (hex.size() != 2 * h.size()) {
        throw Error(ErrorCode::kInvalidArgument, "'" + hex + "' is not a hex SHA-256");
    }
    for (size_t i = 0; i < h.size(); ++i) {
        h[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    }
    return h;
}

ShardService::ShardService(const GgufFile &model, const ModelHparams &hp,
                           std::string model_hash_hex, std::filesystem::path cache_dir)
    : model_(model),
      hp_(hp),
      model_hash_hex_(std::move(model_hash_hex)),
      model_hash_(hash_from_hex(model_hash_hex_)),
      cache_dir_(std::move(cache_dir)) {}

std::optional<ShardInfo> ShardService::prepared(LayerRange range) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = shards_.find(std::make_pair(range.first, range.last));
    return it == shards_.end() ? std::nullopt : std::optional<ShardInfo>(it->second);
}

const ShardInfo &ShardService::prepare(LayerRange range, const std::function<void()> &keepalive) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto key = std::make_pair(range.first, range.last);
    auto it = shards_.find(key);
    if (it != shards_.end())
        return it->second;

    const std::filesystem::path path = shard_cache_path(cache_dir_, model_hash_hex_, range);
    auto write = [&] {
        std::error_code ec;
        std::filesystem::create_directories(path.parent_path(), ec);
        if (ec) {
            throw Error(ErrorCode::kResource,
                        "cannot create " + path.parent_path().string() + ": " + ec.message());
        }
        COLONY_LOG_INFO("shards: writing %s (layers %s)", path.c_str(), range.str().c_str());
        write_shard(model_, hp_, range, model_hash_hex_, path.string(), [&](uint64_t, uint64_t) {
            if (keepalive)
                keepalive();
        });
    };
    auto hash = [&] {
        const std::optional<WireHash> h = hash_file_sha256(path, keepalive);
        if (!h)
            throw Error(ErrorCode::kInternal, "hashing " + path.string() + " stopped");
        return *h;
    };
    std::string why;
    const bool cached = shard_file_matches(path, model_hash_hex_, range, &why);
    if (!cached)
        write();
    ShardInfo info;
    info.range = range;
    info.path = path;
    info.sha256 = hash();
    if (cached) {
        // The hash costs the same either way: compare it with the record, so a
        // damaged cached shard is written again rather than served.
        const std::optional<WireHash> recorded = read_shard_hash(path);
        if (!recorded || *recorded != info.sha256) {
            const std::string reason = recorded ? "damaged: its content hashes to " +
                                                      to_hex(info.sha256) +
                                                      ", the recorded hash is " + to_hex(*recorded)
                                                : "unverified: no recorded hash";
            COLONY_LOG_WARN("shards: cached %s is %s; writing it again", path.c_str(),
                            reason.c_str());
            discard_shard_file(path);
            write();
            info.sha256 = hash();
        }
    }
    record_shard_hash(path, info.sha256);
    info.size = std::filesystem::file_size(path);
    COLONY_LOG_INFO("shards: layers %s ready, %.1f MiB", range.str().c_str(),
                    info.size / 1048576.0);
    return shards_.emplace(key, std::move(info)).first->second;
}

std::vector<WireBody> ShardService::serve(const WireShardRequest &req) {
    ShardInfo info;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = shards_.find({req.layer_first, req.layer_last});
        if (req.model_hash != model_hash_ || it == shards_.end()) {
            throw Error(ErrorCode::kNotFound,
                        "no shard of layers [" + std::to_string(req.layer_first) + "," +
                            std::to_string(req.layer_last) + ") of this model is assigned");
        }
        info = it->second;
    }
    if (req.offset > info.size) {
        throw Error(ErrorCode::kOutOfRange, "shard offset " + std::to_string(req.offset) +
                                                " is past its end " + std::to_string(info.size));
    }
    std::ifstream in(info.path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(req.offset));
    if (!in)
        throw Error(ErrorCode::kResource, "cannot read " + info.path.string());

    std::vector<WireBody> out;
    const uint64_t end = std::min(info.size, req.offset + kShardWindowBytes);
    uint64_t sent = 0;
    for (uint64_t off = req.offset; off < end; off += kShardChunkBytes) {
        WireShardChunk chunk;
        chunk.offset = off;
        chunk.total = info.size;
        chunk.bytes.resize(std::min(kShardChunkBytes, end - off));
        in.read(reinterpret_cast<char *>(chunk.bytes.data()),
                static_cast<std::streamsize>(chunk.bytes.size()));
        if (!in)
            throw Error(ErrorCode::kResource, "cannot read " + info.path.string());
        sent += chunk.bytes.size();
        out.emplace_back(std::move(chunk));
    }
    if (end == info.size)
        out.emplace_back(WireShardEnd{info.size, info.sha256});
    std::lock_guard<std::mutex> lock(mutex_);
    bytes_served_ += sent;
    return out;
}

uint64_t ShardService::bytes_served() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_served_;
}

}  // namespace colony
