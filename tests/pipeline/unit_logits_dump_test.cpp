// The last stage's debug logits file (pipeline/logits_dump.h): records written
// through SequenceSamplers' hook read back as written, and a damaged file is
// refused with the byte offset, not misread.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/test_env.h"
#include "net/wire.h"
#include "pipeline/logits_dump.h"
#include "pipeline/seq_samplers.h"
#include "util/error.h"

namespace colony {
namespace {

using test::TempDir;

/// A greedy ubatch of one sequence: tokens at positions [0, n).
WireActivations prompt_ubatch(int32_t seq, const std::vector<int32_t> &tokens) {
    WireActivations a;
    WireSeq s;
    s.seq_id = seq;
    s.n_tokens = static_cast<uint32_t>(tokens.size());
    s.sampling.temperature = 0;
    a.seqs.push_back(s);
    a.n_tokens = static_cast<uint32_t>(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        a.tokens.push_back(tokens[i]);
        a.pos.push_back(static_cast<int32_t>(i));
        a.seq_id.push_back(seq);
    }
    return a;
}

void truncate_by(const std::string &path, size_t bytes) {
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - bytes);
}

ErrorCode read_error(const std::string &path, std::string *what) {
    try {
        read_logits_dump(path);
    } catch (const Error &e) {
        *what = e.what();
        return e.code();
    }
    return ErrorCode::kInternal;  // read without an error
}

TEST(LogitsDump, SamplersWriteFirstLogitsThenTokenIdsPerSequence) {
    TempDir dir;
    const std::string path = dir.file("logits.bin");
    constexpr int32_t kVocab = 5;
    SequenceSamplers samplers(kVocab);
    install_logits_dump(samplers, std::make_shared<LogitsDump>(path), kVocab);
    samplers.observe(prompt_ubatch(3, {1, 2, 4}));
    samplers.observe(prompt_ubatch(0, {2}));
    const float a[kVocab] = {0.5f, -1, 7.25f, 0, 1};  // greedy: 2
    const float b[kVocab] = {9, 0, 0, 0, 1};          // greedy: 0
    EXPECT_EQ(samplers.sample(3, 2, a).token, 2);
    EXPECT_EQ(samplers.sample(0, 0, b).token, 0);
    EXPECT_EQ(samplers.sample(3, 3, b).token, 0);
    samplers.release(3);  // a new request in the same slot starts a new sequence
    samplers.observe(prompt_ubatch(3, {4}));
    EXPECT_EQ(samplers.sample(3, 0, a).token, 2);

    const std::vector<LogitsRecord> r = read_logits_dump(path);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].seq_id, 3);
    EXPECT_EQ(r[0].pos, 2);
    EXPECT_EQ(r[0].token, 2);
    EXPECT_EQ(r[0].logits, std::vector<float>(a, a + kVocab));
    EXPECT_EQ(r[1].seq_id, 0);
    EXPECT_EQ(r[1].logits, std::vector<float>(b, b + kVocab));
    EXPECT_EQ(r[2].seq_id, 3);
    EXPECT_EQ(r[2].pos, 3);
    EXPECT_EQ(r[2].token, 0);
    EXPECT_TRUE(r[2].logits.empty()) << "only a sequence's first token carries logits";
    EXPECT_EQ(r[3].seq_id, 3);
    EXPECT_EQ(r[3].logits, std::vector<float>(a, a + kVocab)) << "a released slot starts afresh";
}

TEST(LogitsDump, AppendsAcrossWritersAndNeverTruncates) {
    TempDir dir;
    const std::string path = dir.file("logits.bin");
    const float l[2] = {1, 2};
    LogitsDump(path).write(1, 0, 1, l, 2);
    LogitsDump(path).write(1, 1, 0, nullptr, 0);  // a second process, say
    const std::vector<LogitsRecord> r = read_logits_dump(path);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].pos, 1);
}

TEST(LogitsDump, DamagedFilesAreRefusedWithTheOffset) {
    TempDir dir;
    const std::string path = dir.file("logits.bin");
    const float l[3] = {1, 2, 3};
    {
        LogitsDump d(path);
        d.write(0, 4, 2, l, 3);
        d.write(0, 5, 1, nullptr, 0);
    }
    const size_t first = kLogitsDumpHeaderBytes + 3 * sizeof(float);
    std::string what;

    truncate_by(path, 1);  // the second header cut short
    EXPECT_EQ(read_error(path, &what), ErrorCode::kCorrupt);
    EXPECT_NE(what.find("at byte " + std::to_string(first)), std::string::npos) << what;

    truncate_by(path, kLogitsDumpHeaderBytes);  // now the first record's logits are cut short
    EXPECT_EQ(read_error(path, &what), ErrorCode::kCorrupt);
    EXPECT_NE(what.find("truncated logits record in"), std::string::npos) << what;

    std::ofstream(path, std::ios::binary) << "CLGX" << std::string(20, '\0');
    EXPECT_EQ(read_error(path, &what), ErrorCode::kCorrupt);
    EXPECT_NE(what.find("bad magic"), std::string::npos) << what;

    std::ofstream(path, std::ios::binary) << "CLGT" << '\x02' << std::string(19, '\0');
    EXPECT_EQ(read_error(path, &what), ErrorCode::kCorrupt);
    EXPECT_NE(what.find("version 2"), std::string::npos) << what;

    EXPECT_EQ(read_error(dir.file("missing.bin"), &what), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace colony
