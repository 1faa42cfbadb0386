#include "pipeline/shard_cache.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <unistd.h>

#include "model/gguf_file.h"
#include "pipeline/shard_verify.h"
#include "util/error.h"

namespace colony {

std::filesystem::path shard_cache_path(const std::filesystem::path &cache_dir,
                                       const std::string &model_hash_hex, LayerRange range) {
    return cache_dir / model_hash_hex /
           (std::to_string(range.first) + "-" + std::to_string(range.last) + ".gguf");
}

namespace {

/// 64 lowercase hex digits -> 32 bytes; false for anything else.
bool parse_hash_hex(const std::string &hex, WireHash &out) {
    if (hex.size() != 2 * out.size())
        return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return -1;
    };
    for (size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    return true;
}

/// "<first>-<last>.gguf" with first < last -> the range; false otherwise.
bool parse_shard_name(const std::string &name, uint32_t &first, uint32_t &last) {
    unsigned long a = 0, b = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "%lu-%lu.gguf%n", &a, &b, &used) != 2)
        return false;
    if (static_cast<size_t>(used) != name.size() || a >= b || b > UINT32_MAX)
        return false;
    if (std::to_string(a) + "-" + std::to_string(b) + ".gguf" != name)
        return false;  // no signs, no zeros
    first = static_cast<uint32_t>(a);
    last = static_cast<uint32_t>(b);
    return true;
}

}  // namespace

std::vector<WireCachedShard> list_cached_shards(const std::filesystem::path &cache_dir,
                                                size_t max) {
    namespace fs = std::filesystem;
    std::vector<std::pair<fs::file_time_type, WireCachedShard>> found;
    std::error_code ec;
    for (fs::directory_iterator model(cache_dir, ec), end; !ec && model != end;
         model.increment(ec)) {
        WireHash hash{};
        if (!model->is_directory(ec) || !parse_hash_hex(model->path().filename().string(), hash))
            continue;
        std::error_code ec2;
        for (fs::directory_iterator f(model->path(), ec2); !ec2 && f != end; f.increment(ec2)) {
            WireCachedShard c{hash, 0, 0};
            if (!f->is_regular_file(ec2) ||
                !parse_shard_name(f->path().filename().string(), c.layer_first, c.layer_last))
                continue;
            const fs::file_time_type t = f->last_write_time(ec2);
            if (!ec2)
                found.emplace_back(t, c);
            ec2.clear();
        }
    }
    std::sort(found.begin(), found.end(),
              [](const auto &a, const auto &b) { return a.first > b.first; });
    std::vector<WireCachedShard> out;
    for (size_t i = 0; i < found.size() && out.size() < max; ++i)
        out.push_back(found[i].second);
    return out;
}

bool shard_file_matches(const std::filesystem::path &file, const std::string &model_hash_hex,
                        LayerRange range, std::string *why) {
    std::string reason;
    try {
        if (!std::filesystem::is_regular_file(file)) {
            reason = "no file";
        } else {
            const auto gguf = GgufFile::open(file.string());
            const auto first = gguf->get_int("colony.shard.first");
            const auto last = gguf->get_int("colony.shard.last");
            const auto hash = gguf->get_string("colony.shard.model_sha256");
            if (!first || !last || !hash) {
                reason = "not a colony shard (no colony.shard.* keys)";
            } else if (*hash != model_hash_hex) {
                reason = "shard of another model (" + *hash + ")";
            } else if (*first != range.first || *last != range.last) {
                reason = "shard of layers [" + std::to_string(*first) + "," +
                         std::to_string(*last) + "), not " + range.str();
            }
        }
    } catch (const Error &e) {
        reason = e.what();
    }
    if (why)
        *why = reason;
    return reason.empty();
}

void ShardDownload::FileCloser::operator()(std::FILE *f) const {
    std::fclose(f);
}

ShardDownload::ShardDownload(std::filesystem::path final_path)
    : final_(std::move(final_path)), part_(final_.string() + ".part") {
    std::error_code ec;
    std::filesystem::create_directories(final_.parent_path(), ec);
    if (ec) {
        throw Error(ErrorCode::kResource,
                    "cannot create " + final_.parent_path().string() + ": " + ec.message());
    }
    file_.reset(std::fopen(part_.c_str(), "wb"));
    if (!file_) {
        throw Error(ErrorCode::kResource,
                    "cannot write " + part_.string() + ": " + std::strerror(errno));
    }
}

ShardDownload::~ShardDownload() {
    file_.reset();
    if (!done_) {
        std::error_code ec;
        std::filesystem::remove(part_, ec);
    }
}

void ShardDownload::write(const WireShardChunk &chunk, uint64_t max_total) {
    if (chunk.total == 0 || chunk.total > max_total) {
        throw Error(ErrorCode::kProtocol, "shard chunk announces " + std::to_string(chunk.total) +
                                              " bytes; the limit is " + std::to_string(max_total));
    }
    if (total_ != 0 && chunk.total != total_) {
        throw Error(ErrorCode::kProtocol, "shard chunk total changed from " +
                                              std::to_string(total_) + " to " +
                                              std::to_string(chunk.total));
    }
    if (chunk.offset != received_) {
        throw Error(ErrorCode::kProtocol, "shard chunk at offset " + std::to_string(chunk.offset) +
                                              ", expected " + std::to_string(received_));
    }
    if (chunk.bytes.size() > chunk.total - chunk.offset) {
        throw Error(ErrorCode::kProtocol, "shard chunk runs past the announced total");
    }
    total_ = chunk.total;
    if (!chunk.bytes.empty() &&
        std::fwrite(chunk.bytes.data(), 1, chunk.bytes.size(), file_.get()) != chunk.bytes.size()) {
        throw Error(ErrorCode::kResource,
                    "cannot write " + part_.string() + ": " + std::strerror(errno));
    }
    hasher_.update(chunk.bytes);
    received_ += chunk.bytes.size();
}

void ShardDownload::finish(const WireShardEnd &end) {
    if (end.total != received_ || (total_ != 0 && end.total != total_)) {
        throw Error(ErrorCode::kCorrupt, "shard transfer incomplete: received " +
                                             std::to_string(received_) + " of " +
                                             std::to_string(end.total) + " bytes");
    }
    const Sha256Digest got = hasher_.finish();
    if (got != end.sha256) {
        throw Error(ErrorCode::kCorrupt, "shard hash mismatch: received bytes hash to " +
                                             to_hex(got) + ", the coordinator announced " +
                                             to_hex(end.sha256) + "; the shard was discarded");
    }
    if (std::fflush(file_.get()) != 0 || ::fsync(fileno(file_.get())) != 0) {
        throw Error(ErrorCode::kResource, "cannot flush " + part_.string());
    }
    file_.reset();
    // the record first: a shard in place always has the hash it arrived with
    record_shard_hash(final_, end.sha256);
    std::error_code ec;
    std::filesystem::rename(part_, final_, ec);
    if (ec) {
        throw Error(ErrorCode::kResource, "cannot move " + part_.string() + " to " +
                                              final_.string() + ": " + ec.message());
    }
    done_ = true;
}

}  // namespace colony
