// The stage measurement cached next to a shard: reused only for the same
// shard file, stage and settings, and only while fresh.
#include <gtest/gtest.h>

#include <fstream>

#include "common/test_env.h"
#include "nlohmann/json.hpp"
#include "pipeline/probe_cache.h"

namespace colony {
namespace {

using std::chrono::seconds;

ProbeKey key() {
    ProbeKey k;
    k.range = {3, 9};
    k.is_last = false;
    k.n_threads = 4;
    k.slowdown = 1.0;
    k.prefill_tokens = 64;
    k.software_version = "0.1.0";
    return k;
}

std::filesystem::path write_shard(const test::TempDir &dir, const std::string &bytes = "shard") {
    const std::filesystem::path p = dir.file("3-9.gguf");
    std::ofstream(p, std::ios::trunc) << bytes;
    return p;
}

TEST(ProbeCache, ARoundTripReturnsTheMeasurement) {
    test::TempDir dir;
    const auto shard = write_shard(dir);
    EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value());  // none yet
    save_cached_probe(shard, key(), {80.5, 41.25});
    const auto got = load_cached_probe(shard, key(), seconds(3600));
    ASSERT_TRUE(got.has_value());
    EXPECT_DOUBLE_EQ(got->decode_ms, 80.5);
    EXPECT_DOUBLE_EQ(got->prefill_ms_per_token, 41.25);
    EXPECT_EQ(probe_cache_path(shard), dir.file("3-9.gguf.probe.json"));
}

TEST(ProbeCache, AnotherStageSettingOrShardIsMeasuredAgain) {
    test::TempDir dir;
    const auto shard = write_shard(dir);
    save_cached_probe(shard, key(), {80.5, 41.25});
    ProbeKey k = key();
    k.n_threads = 2;
    EXPECT_FALSE(load_cached_probe(shard, k, seconds(3600)).has_value());
    k = key();
    k.slowdown = 3.0;
    EXPECT_FALSE(load_cached_probe(shard, k, seconds(3600)).has_value());
    k = key();
    k.range = {3, 10};
    EXPECT_FALSE(load_cached_probe(shard, k, seconds(3600)).has_value());
    k = key();
    k.software_version = "0.2.0";
    EXPECT_FALSE(load_cached_probe(shard, k, seconds(3600)).has_value());
    k = key();
    k.skip_layers = {5};  // the same range computing fewer blocks
    EXPECT_FALSE(load_cached_probe(shard, k, seconds(3600)).has_value());
    // the shard was downloaded again: another size
    write_shard(dir, "a longer shard");
    EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value());
}

TEST(ProbeCache, StaleDamagedOrNonsenseFilesAreIgnored) {
    test::TempDir dir;
    const auto shard = write_shard(dir);
    save_cached_probe(shard, key(), {80.5, 41.25});
    const std::filesystem::path file = probe_cache_path(shard);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(file));
    auto rewrite = [&](const nlohmann::json &v) {
        std::ofstream(file, std::ios::trunc) << v.dump();
    };

    nlohmann::json old = j;
    old["saved_unix_s"] = j["saved_unix_s"].get<int64_t>() - 7200;  // two hours ago
    rewrite(old);
    EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value());
    EXPECT_TRUE(load_cached_probe(shard, key(), seconds(3 * 3600)).has_value());

    for (const char *field : {"decode_ms", "prefill_ms_per_token"}) {
        for (const nlohmann::json &bad : {nlohmann::json(-1.0), nlohmann::json(0.0),
                                          nlohmann::json("fast"), nlohmann::json(nullptr)}) {
            nlohmann::json b = j;
            b[field] = bad;
            rewrite(b);
            EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value())
                << field << " = " << bad.dump();
        }
    }
    std::ofstream(file, std::ios::trunc) << "{\"key\": ";  // truncated
    EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value());
    std::filesystem::remove(shard);
    EXPECT_FALSE(load_cached_probe(shard, key(), seconds(3600)).has_value());
}

}  // namespace
}  // namespace colony
