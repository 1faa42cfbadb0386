#include "pipeline/shard_verify.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "net/hash.h"
#include "util/error.h"

namespace colony {

std::filesystem::path shard_hash_path(const std::filesystem::path &shard) {
    return shard.string() + ".sha256";
}

void record_shard_hash(const std::filesystem::path &shard, const WireHash &sha256) {
    const std::filesystem::path record = shard_hash_path(shard);
    const std::filesystem::path tmp = record.string() + ".part";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << to_hex(sha256) << "  " << shard.filename().string() << "\n";
        out.flush();
        if (!out)
            throw Error(ErrorCode::kResource, "cannot write " + tmp.string());
    }
    std::error_code ec;
    std::filesystem::rename(tmp, record, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw Error(ErrorCode::kResource, "cannot write " + record.string());
    }
}

std::optional<WireHash> read_shard_hash(const std::filesystem::path &shard) {
    std::ifstream in(shard_hash_path(shard), std::ios::binary);
    std::string hex;
    if (!in || !(in >> hex) || hex.size() != 64)
        return std::nullopt;
    WireHash h{};
    for (size_t i = 0; i < h.size(); ++i) {
        unsigned v = 0;
        if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1)
            return std::nullopt;
        h[i] = static_cast<uint8_t>(v);
    }
    if (to_hex(h) != hex)
        return std::nullopt;  // upper case, signs, spaces: not ours
    return h;
}

std::optional<WireHash> hash_file_sha256(const std::filesystem::path &path,
                                         const std::function<void()> &keepalive,
                                         const std::atomic<bool> *cancel) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::kResource, "cannot read " + path.string());
    Sha256Hasher h;
    std::vector<uint8_t> buf(4u << 20);
    while (in) {
        if (cancel && cancel->load())
            return std::nullopt;
        in.read(reinterpret_cast<char *>(buf.data()), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<size_t>(in.gcount());
        if (n == 0)
            break;
        h.update({buf.data(), n});
        if (keepalive)
            keepalive();
    }
    if (in.bad())
        throw Error(ErrorCode::kResource, "cannot read " + path.string());
    return h.finish();
}

bool verify_shard_file(const std::filesystem::path &shard, std::string *why,
                       const std::atomic<bool> *cancel) {
    std::string reason;
    const std::optional<WireHash> recorded = read_shard_hash(shard);
    if (!recorded) {
        reason = "no recorded hash (" + shard_hash_path(shard).filename().string() + ")";
    } else {
        try {
            const std::optional<WireHash> got = hash_file_sha256(shard, {}, cancel);
            if (!got)
                reason = "cancelled";
            else if (*got != *recorded)
                reason = "its content hashes to " + to_hex(*got) + ", the recorded hash is " +
                         to_hex(*recorded);
        } catch (const std::exception &e) {
            reason = e.what();
        }
    }
    if (why)
        *why = reason;
    return reason.empty();
}

void discard_shard_file(const std::filesystem::path &shard) {
    std::error_code ec;
    std::filesystem::remove(shard, ec);
    std::filesystem::remove(shard_hash_path(shard), ec);
    std::filesystem::remove(shard.string() + ".part", ec);
    std::filesystem::remove(shard_hash_path(shard).string() + ".part", ec);
}

ShardVerification::ShardVerification(std::filesystem::path shard) : shard_(std::move(shard)) {
    thread_ = std::thread([this] {
        const auto t0 = std::chrono::steady_clock::now();
        intact_ = verify_shard_file(shard_, &why_, &cancel_);
        elapsed_ms_ =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        done_.store(true);
    });
}

ShardVerification::~ShardVerification() {
    cancel_.store(true);
    if (thread_.joinable())
        thread_.join();
}

}  // namespace colony
