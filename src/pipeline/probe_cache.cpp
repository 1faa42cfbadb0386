#include "pipeline/probe_cache.h"

#include <cmath>
#include <fstream>

#include "nlohmann/json.hpp"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

/// The key and the shard's identity as JSON; nullopt when the shard is unreadable.
std::optional<nlohmann::json> key_json(const std::filesystem::path &shard, const ProbeKey &key) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(shard, ec);
    if (ec)
        return std::nullopt;
    const auto mtime = std::filesystem::last_write_time(shard, ec);
    if (ec)
        return std::nullopt;
    return nlohmann::json{
        {"first", key.range.first},
        {"last", key.range.last},
        {"is_last", key.is_last},
        {"n_threads", key.n_threads},
        {"slowdown", key.slowdown},
        {"prefill_tokens", key.prefill_tokens},
        {"software_version", key.software_version},
        {"skip_layers", key.skip_layers},
        {"shard_size", size},
        {"shard_mtime", static_cast<int64_t>(mtime.time_since_epoch().count())},
    };
}

bool positive(const nlohmann::json &v) {
    return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0;
}

}  // namespace

std::filesystem::path probe_cache_path(const std::filesystem::path &shard) {
    return std::filesystem::path(shard.string() + ".probe.json");
}

std::optional<CachedProbe> load_cached_probe(const std::filesystem::path &shard,
                                             const ProbeKey &key, std::chrono::seconds max_age) {
    const std::optional<nlohmann::json> want = key_json(shard, key);
    if (!want)
        return std::nullopt;
    std::ifstream in(probe_cache_path(shard));
    if (!in)
        return std::nullopt;
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("key", nlohmann::json()) != *want)
        return std::nullopt;
    const nlohmann::json saved = j.value("saved_unix_s", nlohmann::json());
    if (!saved.is_number_integer())
        return std::nullopt;
    const int64_t age = unix_seconds() - saved.get<int64_t>();
    if (age < 0 || age > max_age.count())
        return std::nullopt;
    const nlohmann::json decode = j.value("decode_ms", nlohmann::json());
    const nlohmann::json prefill = j.value("prefill_ms_per_token", nlohmann::json());
    if (!positive(decode) || !positive(prefill))
        return std::nullopt;
    return CachedProbe{decode.get<double>(), prefill.get<double>()};
}

void save_cached_probe(const std::filesystem::path &shard, const ProbeKey &key,
                       const CachedProbe &probe) {
    const std::optional<nlohmann::json> k = key_json(shard, key);
    if (!k)
        return;
    const nlohmann::json j = {{"key", *k},
                              {"decode_ms", probe.decode_ms},
                              {"prefill_ms_per_token", probe.prefill_ms_per_token},
                              {"saved_unix_s", unix_seconds()}};
    const std::filesystem::path path = probe_cache_path(shard);
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << j.dump();
        if (!out) {
            COLONY_LOG_WARN("worker: cannot write %s", tmp.c_str());
            return;
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec)
        COLONY_LOG_WARN("worker: cannot write %s: %s", path.c_str(), ec.message().c_str());
}

}  // namespace colony
