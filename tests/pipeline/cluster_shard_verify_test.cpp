// Shards on disk and on the wire, through real processes: a cached shard
// with one flipped weight byte (same size, same mtime) is fetched again, and
// a shard of several 1 MiB chunks arrives whole.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/shard.h"
#include "net/hash.h"
#include "pipeline/shard_service.h"
#include "pipeline/shard_verify.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";

uint64_t shard_bytes_served(uint16_t api_port) {
    const HttpReply h = http_get(api_port, "/health");
    return h.body.value("shard_bytes_served", uint64_t(0));
}

/// Waits until the coordinator has noticed its worker is gone.
bool wait_not_ok(uint16_t api_port) {
    return eventually(
        [&] {
            const HttpReply h = http_get(api_port, "/health");
            return h.status != 0 && h.body.is_object() && h.body.value("status", "") != "ok";
        },
        60000);
}

struct timespec mtime_of(const std::filesystem::path &p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mtim;
}

TEST(PipelineShardVerify, AFlippedWeightByteInACachedShardIsFetchedAgain) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string hash = sha256_file_hex(model);
    const std::string ref = reference_greedy(model, kPrompt, 32);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 1, {"--split", "0:2,2:5"});
    const std::filesystem::path shard =
        std::filesystem::path(dir.file("w1")) / "cache" / hash / "2-5.gguf";
    std::string good_hash;
    uint64_t size = 0;
    {
        JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
        ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << w.log();
        ASSERT_TRUE(std::filesystem::exists(shard)) << w.log();
        size = std::filesystem::file_size(shard);
        good_hash = sha256_file_hex(shard.string());
        ASSERT_TRUE(read_shard_hash(shard).has_value()) << "no record next to the shard";
        EXPECT_EQ(to_hex(*read_shard_hash(shard)), good_hash);
        EXPECT_EQ(shard_bytes_served(serve.api_port()), size);
        w.process().stop();
        ASSERT_TRUE(wait_not_ok(serve.api_port())) << serve.log();
    }
    // One byte in the middle of a weight, the file's size and mtime unchanged.
    uint64_t offset = 0;
    {
        const auto gguf = GgufFile::open(shard.string());
        const GgufTensor *t = gguf->find("blk.3.ffn_down.weight");
        ASSERT_NE(t, nullptr);
        offset = t->offset + t->nbytes / 2;
    }
    const struct timespec before = mtime_of(shard);
    flip_byte_keep_mtime(shard, offset);
    const struct timespec after = mtime_of(shard);
    ASSERT_EQ(std::filesystem::file_size(shard), size);
    ASSERT_EQ(before.tv_sec, after.tv_sec);
    ASSERT_EQ(before.tv_nsec, after.tv_nsec);
    ASSERT_NE(sha256_file_hex(shard.string()), good_hash);

    // The same worker (same key, same cache) joins again.
    JoinProcess again(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(eventually(
        [&] { return again.log().find("ready with layers") != std::string::npos; }, 60000))
        << again.log();
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log();
    const std::string log = again.log();
    EXPECT_NE(log.find("cached shard " + shard.string() + " failed verification"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("fetching the shard of layers [2,5) (the cached copy failed verification)"),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("shard cache hit"), std::string::npos) << log;
    EXPECT_EQ(shard_bytes_served(serve.api_port()), 2 * size);
    EXPECT_EQ(sha256_file_hex(shard.string()), good_hash);
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, 32) + "\n", ref);
    again.process().stop();
    EXPECT_NE(again.log().find("shard bytes received " + std::to_string(size)), std::string::npos)
        << again.log();
}

TEST(PipelineShardVerify, AnIntactCachedShardIsVerifiedAndLoadedWithoutATransfer) {
    // The counterpart of the test above: verification must not refetch a good shard.
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, 16);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 1, {"--split", "0:3,3:5"});
    uint64_t served = 0;
    {
        JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
        ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << w.log();
        served = shard_bytes_served(serve.api_port());
        ASSERT_GT(served, 0u);
        w.process().stop();
        ASSERT_TRUE(wait_not_ok(serve.api_port())) << serve.log();
    }
    JoinProcess again(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << again.log();
    EXPECT_NE(again.log().find("(content verified in "), std::string::npos) << again.log();
    EXPECT_EQ(shard_bytes_served(serve.api_port()), served);
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, 16) + "\n", ref);
}

TEST(PipelineShardVerify, AShardOfManyChunksArrivesWholeAndServesLikeGenerate) {
    // stories260K's shards are all under one 1 MiB chunk; this llama-shaped
    // synthetic model's last-stage shard is about 10 MiB: ten chunks, three
    // SHARD_REQUEST windows.
    TempDir dir;
    const std::string model = dir.file("llama-wide.gguf");
    int rc = -1;
    std::string err;
    run_colony({"synth",
                "--preset",
                "llama-3.2-1b",
                "--vocab",
                std::string(COLONY_TEST_LLAMA_DIR) + "/models/ggml-vocab-llama-spm.gguf",
                "--layers",
                "4",
                "--embd",
                "256",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--ff",
                "768",
                "--type",
                "Q8_0",
                "-o",
                model,
                "-q"},
               &rc, &err);
    ASSERT_EQ(rc, 0) << "colony synth failed: " << err;
    // Random weights pick byte tokens too: the API's JSON carries an invalid
    // UTF-8 byte as U+FFFD, so the reference goes through the same replacement.
    const std::string ref =
        nlohmann::json::parse(nlohmann::json(reference_greedy(model, kPrompt, 16))
                                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
            .get<std::string>();
    ServeProcess serve(dir.file("coordinator"), model, 1,
                       {"--split", "0:2,2:4", "--wire-type", "f32"});
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 120000)) << serve.log() << w.log();
    const std::filesystem::path shard =
        std::filesystem::path(dir.file("w1")) / "cache" / sha256_file_hex(model) / "2-4.gguf";
    ASSERT_TRUE(std::filesystem::exists(shard)) << w.log();
    const uint64_t size = std::filesystem::file_size(shard);
    EXPECT_GT(size, 3 * kShardChunkBytes) << "the test needs a shard of several chunks";
    EXPECT_GT(size, kShardWindowBytes) << "the test needs a shard of several windows";
    EXPECT_EQ(shard_bytes_served(serve.api_port()), size);
    // the bytes on disk are the coordinator's shard, and the record says so
    const std::filesystem::path served_shard = std::filesystem::path(dir.file("coordinator")) /
                                               "cache" / sha256_file_hex(model) / "2-4.gguf";
    EXPECT_EQ(sha256_file_hex(shard.string()), sha256_file_hex(served_shard.string()));
    ASSERT_TRUE(read_shard_hash(shard).has_value());
    EXPECT_EQ(to_hex(*read_shard_hash(shard)), sha256_file_hex(shard.string()));
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, 16) + "\n", ref);
    w.process().stop();
    EXPECT_NE(w.log().find("shard bytes received " + std::to_string(size)), std::string::npos)
        << w.log();
}

}  // namespace
}  // namespace colony::test
