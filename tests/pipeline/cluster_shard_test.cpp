// Shards: a worker's cache holds only its layer range, and joining again with
// the same assignment moves no shard bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/shard.h"

namespace colony::test {
namespace {

std::vector<std::filesystem::path> files_under(const std::filesystem::path &dir) {
    std::vector<std::filesystem::path> out;
    if (!std::filesystem::exists(dir))
        return out;
    for (const auto &e : std::filesystem::recursive_directory_iterator(dir)) {
        if (e.is_regular_file())
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
    EXPECT_EQ(shard_bytes_served(serve.api_port()), served);
    EXPECT_EQ("Once upon a time" + complete_greedy(serve.api_port(), "Once upon a time", 32) + "\n",
              ref);
    again.process().stop();
    EXPECT_NE(again.log().find("shard bytes received 0 "), std::string::npos) << again.log();
}

}  // namespace
}  // namespace colony::test
