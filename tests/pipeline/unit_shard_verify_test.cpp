// Verification of cached shards on load (shard_verify.h): the hash recorded
// when a shard arrived or was written, checked against the content.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/hash.h"
#include "pipeline/shard_cache.h"
#include "pipeline/shard_service.h"
#include "pipeline/shard_verify.h"

namespace colony {
namespace {

struct ModelFixture {
    std::string path = test::model_path("stories260K-f32.gguf");
    std::unique_ptr<GgufFile> file = GgufFile::open(path);
    ModelHparams hp = ModelHparams::from_gguf(*file);
    std::string hash = sha256_file_hex(path);
};

/// Fetches the shard of `range` from `service` into a worker cache under
/// `cache`, as the worker does (ShardDownload); returns its path.
std::filesystem::path download(ShardService &service, const std::string &model_hash,
                               const std::filesystem::path &cache, LayerRange range) {
    const auto target = shard_cache_path(cache, model_hash, range);
    ShardDownload dl(target);
    uint64_t offset = 0;
    for (bool ended = false; !ended;) {
        for (WireBody &b :
             service.serve({hash_from_hex(model_hash), range.first, range.last, offset})) {
            if (auto *c = std::get_if<WireShardChunk>(&b)) {
                dl.write(*c, 1ull << 40);
                offset = dl.received();
            } else {
                dl.finish(std::get<WireShardEnd>(b));
                ended = true;
            }
        }
    }
    return target;
}

/// Adds 1 to the byte at `offset` of `file` (same size).
void flip_byte(const std::filesystem::path &file, uint64_t offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c + 1));
    ASSERT_TRUE(f);
}

/// Offset of the middle byte of tensor `name` in the GGUF `file`.
uint64_t weight_byte(const std::filesystem::path &file, const std::string &name) {
    const auto gguf = GgufFile::open(file.string());
    const GgufTensor *t = gguf->find(name);
    EXPECT_NE(t, nullptr) << name;
    return t ? t->offset + t->nbytes / 2 : 0;
}

TEST(ShardVerify, ADownloadedShardRecordsItsHashAndVerifies) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    const ShardInfo &info = service.prepare({2, 5});
    const auto shard = download(service, m.hash, dir.file("worker"), {2, 5});
    ASSERT_TRUE(std::filesystem::exists(shard_hash_path(shard)));
    EXPECT_EQ(read_shard_hash(shard), info.sha256);
    // sha256sum's format, so `sha256sum -c` can check a cache by hand
    std::ifstream rec(shard_hash_path(shard));
    std::string line;
    std::getline(rec, line);
    EXPECT_EQ(line, to_hex(info.sha256) + "  2-5.gguf");
    std::string why;
    EXPECT_TRUE(verify_shard_file(shard, &why)) << why;
    EXPECT_EQ(why, "");
}

TEST(ShardVerify, OneFlippedWeightByteFailsVerification) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    service.prepare({2, 5});
    const auto shard = download(service, m.hash, dir.file("worker"), {2, 5});
    const auto size = std::filesystem::file_size(shard);
    flip_byte(shard, weight_byte(shard, "blk.3.ffn_down.weight"));
    ASSERT_EQ(std::filesystem::file_size(shard), size);
    // the metadata check cannot see it
    std::string why;
    EXPECT_TRUE(shard_file_matches(shard, m.hash, {2, 5}, &why)) << why;
    EXPECT_FALSE(verify_shard_file(shard, &why));
    EXPECT_NE(why.find("its content hashes to"), std::string::npos) << why;
    EXPECT_NE(why.find(to_hex(*read_shard_hash(shard))), std::string::npos) << why;
}

TEST(ShardVerify, AShardWithoutAValidRecordIsUnverified) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    service.prepare({2, 5});
    const auto shard = download(service, m.hash, dir.file("worker"), {2, 5});
    const std::string good = to_hex(*read_shard_hash(shard));
    std::string why;
    for (const std::string &bad : {std::string(""), good.substr(1), std::string(64, 'g'), [&] {
                                       std::string up = good;
                                       for (char &c : up)
                                           c = static_cast<char>(std::toupper(c));
                                       return up;
                                   }()}) {
        std::ofstream(shard_hash_path(shard), std::ios::trunc) << bad << "  2-5.gguf\n";
        EXPECT_FALSE(read_shard_hash(shard).has_value()) << "'" << bad << "'";
        EXPECT_FALSE(verify_shard_file(shard, &why)) << "'" << bad << "'";
        EXPECT_NE(why.find("no recorded hash"), std::string::npos) << why;
    }
    std::filesystem::remove(shard_hash_path(shard));
    EXPECT_FALSE(verify_shard_file(shard, &why));
    EXPECT_NE(why.find("no recorded hash"), std::string::npos) << why;
    // a record but no shard
    std::ofstream(shard_hash_path(shard), std::ios::trunc) << good << "  2-5.gguf\n";
    std::filesystem::remove(shard);
    EXPECT_FALSE(verify_shard_file(shard, &why));
    EXPECT_NE(why.find("cannot read"), std::string::npos) << why;
}

TEST(ShardVerify, TheBackgroundCheckReportsIntactAndDamagedShards) {
    ModelFixture m;
    test::TempDir dir;
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    service.prepare({0, 2});
    const auto shard = download(service, m.hash, dir.file("worker"), {0, 2});
    auto wait = [](const ShardVerification &v) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!v.done() && std::chrono::steady_clock::now() < end)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return v.done();
    };
    {
        ShardVerification v(shard);
        ASSERT_TRUE(wait(v));
        EXPECT_TRUE(v.intact()) << v.why();
    }
    flip_byte(shard, weight_byte(shard, "token_embd.weight"));
    {
        ShardVerification v(shard);
        ASSERT_TRUE(wait(v));
        EXPECT_FALSE(v.intact());
        EXPECT_NE(v.why().find("its content hashes to"), std::string::npos) << v.why();
    }
    discard_shard_file(shard);
    EXPECT_FALSE(std::filesystem::exists(shard));
    EXPECT_FALSE(std::filesystem::exists(shard_hash_path(shard)));
}

TEST(ShardVerify, TheCoordinatorWritesADamagedCachedShardAgain) {
    ModelFixture m;
    test::TempDir dir;
    WireHash good{};
    std::filesystem::path path;
    {
        ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
        const ShardInfo &info = service.prepare({2, 5});
        good = info.sha256;
        path = info.path;
        EXPECT_EQ(read_shard_hash(path), good);
    }
    flip_byte(path, weight_byte(path, "blk.2.attn_q.weight"));
    // a new coordinator with the same cache: it must not serve the damaged file
    ShardService service(*m.file, m.hp, m.hash, dir.file("coordinator"));
    const ShardInfo &info = service.prepare({2, 5});
    EXPECT_EQ(info.sha256, good);
    EXPECT_EQ(read_shard_hash(path), good);
    std::string why;
    EXPECT_TRUE(verify_shard_file(path, &why)) << why;
    const auto shard = download(service, m.hash, dir.file("worker"), {2, 5});
    EXPECT_TRUE(verify_shard_file(shard, &why)) << why;
}

}  // namespace
}  // namespace colony
