// Shards: a worker's cache holds only its layer range, and joining again with
// the same assignment moves no shard bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/shard.h"
#include "pipeline/probe_cache.h"

namespace colony::test {
namespace {

/// The shard files (*.gguf) under dir.
std::vector<std::filesystem::path> files_under(const std::filesystem::path &dir) {
    std::vector<std::filesystem::path> out;
    if (!std::filesystem::exists(dir))
        return out;
    for (const auto &e : std::filesystem::recursive_directory_iterator(dir)) {
        if (e.is_regular_file() && e.path().extension() == ".gguf")
            out.push_back(e.path());
    }
    return out;
}

uint64_t shard_bytes_served(uint16_t api_port) {
    const HttpReply h = http_get(api_port, "/health");
    return h.body.value("shard_bytes_served", uint64_t(0));
}

TEST(PipelineShards, CacheHoldsOnlyTheRangeAndARejoinTransfersNothing) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string hash = sha256_file_hex(model);
    const std::string ref = reference_greedy(model, "Once upon a time", 32);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 1, {"--split", "0:2,2:5"});
    uint64_t served = 0;
    {
        JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
        ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log() << w.log();
        const auto files = files_under(w.cache_dir());
        ASSERT_EQ(files.size(), 1u);
        // next to it, the stage's measurement (probe_cache.h)
        EXPECT_TRUE(std::filesystem::exists(probe_cache_path(files[0])));
        EXPECT_EQ(files[0], w.cache_dir() / hash / "2-5.gguf");
        const auto shard = GgufFile::open(files[0].string());
        for (const GgufTensor &t : shard->tensors()) {
            const bool ok = t.name.rfind("blk.2.", 0) == 0 || t.name.rfind("blk.3.", 0) == 0 ||
                            t.name.rfind("blk.4.", 0) == 0 || t.name == "output_norm.weight" ||
                            t.name == "output.weight";
            EXPECT_TRUE(ok) << "tensor " << t.name << " is outside layers [2,5)";
        }
        EXPECT_EQ(shard->find("token_embd.weight"), nullptr);
        served = shard_bytes_served(serve.api_port());
        EXPECT_EQ(served, std::filesystem::file_size(files[0]));
        EXPECT_EQ(
            "Once upon a time" + complete_greedy(serve.api_port(), "Once upon a time", 32) + "\n",
            ref);
        w.process().stop();
        EXPECT_NE(w.log().find("shard bytes received " + std::to_string(served)), std::string::npos)
            << w.log();
    }
    // The same worker (same key, same cache) joins again.
    JoinProcess again(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(eventually(
        [&] { return again.log().find("ready with layers") != std::string::npos; }, 30000))
        << again.log();
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
    EXPECT_NE(again.log().find("shard cache hit"), std::string::npos) << again.log();
    // and its stage's speed was measured on the first join (probe_cache.h)
    EXPECT_NE(again.log().find("measured before"), std::string::npos) << again.log();
    EXPECT_EQ(shard_bytes_served(serve.api_port()), served);
    EXPECT_EQ("Once upon a time" + complete_greedy(serve.api_port(), "Once upon a time", 32) + "\n",
              ref);
    again.process().stop();
    EXPECT_NE(again.log().find("shard bytes received 0 "), std::string::npos) << again.log();
}

TEST(PipelineShards, ARestartInAnotherJoinOrderKeepsEveryWorkerOnItsCachedRange) {
    // Ranges used to follow join order, so two workers that joined the other
    // way round after a restart swapped ranges and downloaded both shards again.
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string hash = sha256_file_hex(model);
    const std::string ref = reference_greedy(model, "Once upon a time", 24);
    const std::vector<std::string> split = {"--split", "0:1,1:3,3:5"};
    TempDir dir;
    auto join_in_order = [&](ServeProcess &serve, const std::vector<std::string> &names) {
        std::vector<std::unique_ptr<JoinProcess>> workers;
        for (size_t i = 0; i < names.size(); ++i) {
            workers.push_back(std::make_unique<JoinProcess>(dir.file(names[i]), serve.coordinator(),
                                                            serve.token()));
            const std::string joined = "worker '" + names[i] + "' joined";
            EXPECT_TRUE(
                eventually([&] { return serve.log().find(joined) != std::string::npos; }, 30000))
                << serve.log();
        }
        EXPECT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log();
        EXPECT_EQ(
            "Once upon a time" + complete_greedy(serve.api_port(), "Once upon a time", 24) + "\n",
            ref);
        return workers;
    };
    std::filesystem::path w1_shard, w2_shard;
    {
        ServeProcess serve(dir.file("coordinator"), model, 2, split);
        auto workers = join_in_order(serve, {"w1", "w2"});
        ASSERT_EQ(files_under(workers[0]->cache_dir()).size(), 1u);
        ASSERT_EQ(files_under(workers[1]->cache_dir()).size(), 1u);
        w1_shard = files_under(workers[0]->cache_dir())[0].filename();
        w2_shard = files_under(workers[1]->cache_dir())[0].filename();
        EXPECT_EQ(w1_shard, "1-3.gguf");
        EXPECT_EQ(w2_shard, "3-5.gguf");
        EXPECT_GT(shard_bytes_served(serve.api_port()), 0u);
    }
    ServeProcess serve(dir.file("coordinator2"), model, 2, split);
    auto workers = join_in_order(serve, {"w2", "w1"});
    EXPECT_EQ(shard_bytes_served(serve.api_port()), 0u) << serve.log();
    for (const auto &w : workers) {
        EXPECT_NE(w->log().find("shard cache hit"), std::string::npos) << w->log();
        EXPECT_EQ(files_under(w->cache_dir()).size(), 1u);
    }
    EXPECT_EQ(files_under(workers[1]->cache_dir())[0].filename(), w1_shard);
    EXPECT_NE(serve.log().find("which it holds in its cache"), std::string::npos) << serve.log();
    // nobody needs a shard from this coordinator, so it wrote none
    EXPECT_EQ(serve.log().find("shards: writing"), std::string::npos) << serve.log();
}

TEST(PipelineShards, AStaleCachedShardIsFetchedAgainFromACoordinatorThatHadNotWrittenIt) {
    // The worker's JOIN names a cached range, so the coordinator skips writing
    // that shard; the file turns out to be damaged, and the worker's request
    // makes the coordinator write and serve it then.
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, "Once upon a time", 24);
    const std::vector<std::string> split = {"--split", "0:2,2:5"};
    TempDir dir;
    std::filesystem::path shard;
    {
        ServeProcess serve(dir.file("coordinator"), model, 1, split);
        JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
        ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log() << w.log();
        ASSERT_EQ(files_under(w.cache_dir()).size(), 1u);
        shard = files_under(w.cache_dir())[0];
    }
    const uint64_t size = std::filesystem::file_size(shard);
    std::filesystem::resize_file(shard, size / 2);  // same name, not a whole shard any more
    ServeProcess serve(dir.file("coordinator2"), model, 1, split);
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log() << w.log();
    EXPECT_NE(w.log().find("fetching the shard"), std::string::npos) << w.log();
    EXPECT_EQ(shard_bytes_served(serve.api_port()), size);
    EXPECT_EQ(std::filesystem::file_size(shard), size);
    EXPECT_EQ("Once upon a time" + complete_greedy(serve.api_port(), "Once upon a time", 24) + "\n",
              ref);
}

}  // namespace
}  // namespace colony::test
