// Shard transfer: the coordinator's ShardService and the worker's
// ShardDownload, in process.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/hash.h"
#include "pipeline/shard_cache.h"
#include "pipeline/shard_service.h"
#include "util/error.h"

namespace colony {
namespace {

std::vector<uint8_t> read_all(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct ModelFixture {
    std::string path = test::model_path("stories260K-f32.gguf");
    std::unique_ptr<GgufFile> file = GgufFile::open(path);
    ModelHparams hp = ModelHparams::from_gguf(*file);
    std::string hash = sha256_file_hex(path);
};

TEST(ShardTransfer, WindowsReassembleTheShardAndItsHashVerifies) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    const ShardInfo &info = service.prepare({2, 5});
    ASSERT_GT(info.size, 0u);

    const auto target = shard_cache_path(dir.file("worker"), m.hash, {2, 5});
    ShardDownload dl(target);
    uint64_t offset = 0;
    bool ended = false;
    while (!ended) {
        for (WireBody &b : service.serve({hash_from_hex(m.hash), 2, 5, offset})) {
            if (auto *c = std::get_if<WireShardChunk>(&b)) {
                EXPECT_LE(c->bytes.size(), kShardChunkBytes);
                dl.write(*c, 1ull << 40);
                offset = dl.received();
            } else {
                dl.finish(std::get<WireShardEnd>(b));
                ended = true;
            }
        }
    }
    EXPECT_EQ(service.bytes_served(), info.size);
    EXPECT_EQ(read_all(target), read_all(info.path));
    EXPECT_FALSE(std::filesystem::exists(target.string() + ".part"));
    std::string why;
    EXPECT_TRUE(shard_file_matches(target, m.hash, {2, 5}, &why)) << why;
    EXPECT_FALSE(shard_file_matches(target, m.hash, {2, 4}, &why));
    EXPECT_FALSE(shard_file_matches(target, std::string(64, '0'), {2, 5}, &why));

    // The shard holds only its layers (and the head: it is the last range).
    const auto shard = GgufFile::open(target.string());
    for (const GgufTensor &t : shard->tensors()) {
        EXPECT_TRUE(t.name.rfind("blk.2.", 0) == 0 || t.name.rfind("blk.3.", 0) == 0 ||
                    t.name.rfind("blk.4.", 0) == 0 || t.name == "output_norm.weight" ||
                    t.name == "output.weight")
            << t.name;
    }
}

TEST(ShardTransfer, AHashMismatchKeepsNothing) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    const ShardInfo &info = service.prepare({0, 2});
    const auto target = shard_cache_path(dir.file("worker"), m.hash, {0, 2});
    {
        ShardDownload dl(target);
        std::vector<uint8_t> bytes = read_all(info.path);
        bytes[bytes.size() / 2] ^= 0x40;  // one flipped bit in transit
        dl.write({0, bytes.size(), bytes}, 1ull << 40);
        try {
            dl.finish({bytes.size(), info.sha256});
            FAIL() << "a corrupted shard was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
            EXPECT_NE(std::string(e.what()).find("hash mismatch"), std::string::npos);
        }
    }
    EXPECT_FALSE(std::filesystem::exists(target));
    EXPECT_FALSE(std::filesystem::exists(target.string() + ".part"));
}

TEST(ShardTransfer, OutOfOrderOrInconsistentChunksAreRefused) {
    test::TempDir dir;
    const auto target = std::filesystem::path(dir.file("x/0-1.gguf"));
    ShardDownload dl(target);
    const std::vector<uint8_t> four(4, 7);
    EXPECT_THROW(dl.write({4, 8, four}, 100), Error);  // gap
    dl.write({0, 8, four}, 100);
    EXPECT_THROW(dl.write({4, 9, four}, 100), Error);    // total changed
    EXPECT_THROW(dl.write({4, 200, four}, 100), Error);  // beyond the limit
    EXPECT_THROW(dl.finish({8, {}}), Error);             // incomplete
}

TEST(ShardTransfer, UnassignedRangesAndOtherModelsAreNotServed) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("c"));
    service.prepare({1, 3});
    EXPECT_THROW(service.serve({hash_from_hex(m.hash), 0, 5, 0}), Error);
    EXPECT_THROW(service.serve({WireHash{}, 1, 3, 0}), Error);
    EXPECT_THROW(service.serve({hash_from_hex(m.hash), 1, 3, 1ull << 40}), Error);
}

TEST(ShardCacheListing, ListsShardsByNameNewestFirstAndSkipsOtherFiles) {
    namespace fs = std::filesystem;
    test::TempDir dir;
    const std::string hex_a(64, 'a'), hex_b = std::string(63, '0') + "1";
    auto touch = [&](const std::string &rel, int age_s) {
        const fs::path p = fs::path(dir.path()) / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << "x";
        fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::seconds(age_s));
    };
    touch(hex_a + "/0-4.gguf", 30);
    touch(hex_a + "/4-8.gguf", 10);
    touch(hex_b + "/2-3.gguf", 20);
    touch(hex_a + "/4-8.gguf.part", 0);  // a download in progress
    touch(hex_a + "/8-4.gguf", 0);       // empty range
    touch(hex_a + "/04-8.gguf", 0);      // not the canonical name
    touch(hex_a + "/x-8.gguf", 0);
    touch("not-a-hash/0-4.gguf", 0);
    touch(std::string(64, 'G') + "/0-4.gguf", 0);

    const std::vector<WireCachedShard> all = list_cached_shards(dir.path(), 256);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(to_hex(all[0].model_hash), hex_a);
    EXPECT_EQ(all[0].layer_first, 4u);
    EXPECT_EQ(all[0].layer_last, 8u);
    EXPECT_EQ(to_hex(all[1].model_hash), hex_b);
    EXPECT_EQ(all[1].layer_first, 2u);
    EXPECT_EQ(all[2].layer_first, 0u);
    EXPECT_EQ(all[2].layer_last, 4u);
    EXPECT_EQ(list_cached_shards(dir.path(), 1).size(), 1u);
    EXPECT_TRUE(list_cached_shards(dir.file("missing"), 256).empty());
}

}  // namespace
}  // namespace colony
