// A shard built from a GGUF header and byte ranges (what a worker fetches
// from a hub) equals the shard made from the whole file (model/shard.h,
// GgufFile::open_header, check_gguf_header).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/test_env.h"
#include "model/gguf_check.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "util/error.h"

namespace colony::test {
namespace {

std::vector<char> read_all(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const std::string &path, const char *data, size_t n) {
    std::ofstream out(path, std::ios::binary);
    out.write(data, static_cast<std::streamsize>(n));
}

TEST(RangeShard, AHeaderPrefixChecksAgainstTheDeclaredSize) {
    const std::string path = model_path("stories260K-q8_0.gguf");
    const std::vector<char> bytes = read_all(path);
    const auto whole = GgufFile::open(path);
    const uint64_t data_offset =
        whole->tensors().front().offset;  // the first tensor starts the data section
    auto span = [&](size_t n) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(bytes.data()), n);
    };
    EXPECT_EQ(check_gguf_header(span(bytes.size()), bytes.size(), "f"), data_offset);
    EXPECT_EQ(check_gguf_header(span(data_offset), bytes.size(), "f"), data_offset);
    EXPECT_THROW(check_gguf_header(span(data_offset - 40), bytes.size(), "f"),
                 Error);                                                    // cut tensor table
    EXPECT_THROW(check_gguf_header(span(1000), bytes.size(), "f"), Error);  // cut metadata
    // a declared size too small for the tensors is a truncated file
    EXPECT_THROW(check_gguf_header(span(data_offset), bytes.size() - 100, "f"), Error);
}

TEST(RangeShard, ShardFromRangesEqualsShardFromTheFile) {
    TempDir dir;
    const std::string path = model_path("stories260K-q8_0.gguf");
    const std::vector<char> bytes = read_all(path);
    const auto whole = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*whole);
    const uint64_t header_size = whole->tensors().front().offset;
    const std::string header = dir.path() + "/header.gguf";
    write_all(header, bytes.data(), header_size);
    const auto head = GgufFile::open_header(header, bytes.size());
    ASSERT_EQ(head->tensors().size(), whole->tensors().size());

    const std::string sha = sha256_file_hex(path);
    for (LayerRange r : {LayerRange{0, 2}, LayerRange{2, 5}, LayerRange{0, hp.n_layer}}) {
        const std::string a = dir.path() + "/a.gguf", b = dir.path() + "/b.gguf";
        write_shard(*whole, hp, r, sha, a);
        uint64_t served = 0;
        ModelBytesReader reader = [&](const std::vector<ByteRange> &ranges, const ByteSink &sink) {
            for (const ByteRange &br : ranges) {
                ASSERT_LE(br.offset + br.size, bytes.size());
                for (uint64_t o = 0; o < br.size;
                     o += 1000) {  // odd chunk sizes across tensor ends
                    const size_t n = static_cast<size_t>(std::min<uint64_t>(1000, br.size - o));
                    sink(bytes.data() + br.offset + o, n);
                    served += n;
                }
            }
        };
        write_shard(*head, hp, r, sha, b, reader);
        EXPECT_EQ(read_all(a), read_all(b)) << r.str();
        EXPECT_LT(served, bytes.size()) << r.str();
    }
}

TEST(RangeShard, ShortReadsFailAndLeaveNoFile) {
    TempDir dir;
    const std::string path = model_path("stories260K-q8_0.gguf");
    const auto whole = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*whole);
    const std::string out = dir.path() + "/s.gguf";
    ModelBytesReader short_reader = [&](const std::vector<ByteRange> &, const ByteSink &sink) {
        sink("abc", 3);
    };
    try {
        write_shard(*whole, hp, LayerRange{0, 2}, "00", out, short_reader);
        ADD_FAILURE() << "a short read was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".part"));
    ModelBytesReader failing = [&](const std::vector<ByteRange> &, const ByteSink &) {
        throw Error(ErrorCode::kUnavailable, "cut");
    };
    EXPECT_THROW(write_shard(*whole, hp, LayerRange{0, 2}, "00", out, failing), Error);
    EXPECT_FALSE(std::filesystem::exists(out + ".part"));
}

}  // namespace
}  // namespace colony::test
