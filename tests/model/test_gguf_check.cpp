// check_gguf (src/model/gguf_check.h): real model files pass; each class of
// malformed header that GGUF CVEs and the mutation campaign found is a
// kCorrupt error naming the field, never an abort or an out-of-bounds read.
// Files are built byte by byte here so that each test breaks one rule.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "common/test_env.h"
#include "model/gguf_check.h"
#include "model/gguf_file.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

enum : uint32_t { kU8 = 0, kI32 = 5, kF32 = 6, kBool = 7, kStr = 8, kArr = 9, kU32 = 4, kU64 = 10 };

/// A GGUF v3 file assembled from parts: key/values, tensor infos, data.
struct GgufBytes {
    uint32_t version = 3;
    std::string kv, tensors, data;
    uint64_t n_kv = 0, n_tensors = 0;
    uint32_t alignment = 32;

    static void put(std::string &s, const void *p, size_t n) {
        s.append(static_cast<const char *>(p), n);
    }
    template <typename T>
    static void put(std::string &s, T v) {
        put(s, &v, sizeof v);
    }
    static void put_str(std::string &s, const std::string &v) {
        put<uint64_t>(s, v.size());
        s += v;
    }

    GgufBytes &key(const std::string &k, uint32_t type) {
        put_str(kv, k);
        put(kv, type);
        ++n_kv;
        return *this;
    }
    GgufBytes &kv_u32(const std::string &k, uint32_t v) { return key(k, kU32), put(kv, v), *this; }
    GgufBytes &kv_str(const std::string &k, const std::string &v) {
        return key(k, kStr), put_str(kv, v), *this;
    }
    GgufBytes &kv_bool(const std::string &k, uint8_t v) { return key(k, kBool), put(kv, v), *this; }
    GgufBytes &kv_strings(const std::string &k, const std::vector<std::string> &v) {
        key(k, kArr);
        put(kv, kStr);
        put<uint64_t>(kv, v.size());
        for (const auto &s : v)
            put_str(kv, s);
        return *this;
    }
    template <typename T>
    GgufBytes &kv_array(const std::string &k, uint32_t elem, const std::vector<T> &v) {
        key(k, kArr);
        put(kv, elem);
        put<uint64_t>(kv, v.size());
        for (T x : v)
            put(kv, x);
        return *this;
    }
    /// A tensor info; `offset` is relative to the data section.
    GgufBytes &tensor(const std::string &name, std::vector<int64_t> ne, uint32_t type,
                      uint64_t offset) {
        put_str(tensors, name);
        put<uint32_t>(tensors, static_cast<uint32_t>(ne.size()));
        for (int64_t d : ne)
            put(tensors, d);
        put(tensors, type);
        put(tensors, offset);
        ++n_tensors;
        return *this;
    }
    std::vector<uint8_t> bytes() const {
        std::string s = "GGUF";
        put(s, version);
        put(s, n_tensors);
        put(s, n_kv);
        s += kv + tensors;
        if (n_tensors > 0)
            s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
        s += data;
        return {s.begin(), s.end()};
    }
};

/// A small valid file: one f32 tensor of 4x2 and a three-token vocabulary.
GgufBytes valid() {
    GgufBytes g;
    g.kv_str("general.architecture", "llama")
        .kv_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "a"})
        .kv_array<float>("tokenizer.ggml.scores", kF32, {0, 0, 0})
        .kv_array<int32_t>("tokenizer.ggml.token_type", kI32, {2, 3, 1})
        .kv_u32("tokenizer.ggml.bos_token_id", 1)
        .tensor("t", {4, 2}, /*GGML_TYPE_F32*/ 0, 0);
    g.data.assign(32, '\0');
    return g;
}

/// The message of the kCorrupt error check_gguf throws; fails the test when it
/// accepts the bytes or throws anything else.
std::string rejection(const std::vector<uint8_t> &bytes) {
    try {
        check_gguf(bytes, "f.gguf");
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "accepted";
    return {};
}

TEST(GgufCheck, RealModelsPass) {
    for (const char *name : {"stories260K-f32.gguf", "stories260K-f16.gguf",
                             "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"})
        EXPECT_NO_THROW(check_gguf_file(model_path(name))) << name;
    EXPECT_NO_THROW(check_gguf(valid().bytes(), "f.gguf"));
}

// Every vocabulary GGUF of the pinned llama.cpp tree (the tokenizers colony
// synth copies: SPM, BPE, WPM, UGM, RWKV) passes, and its tokenizer loads and
// tokenizes with its special tokens (Tokenizer::check_special_tokens).
TEST(GgufCheck, PinnedTreeVocabulariesPass) {
    int n = 0;
    for (const auto &entry :
         std::filesystem::directory_iterator(std::string(COLONY_LLAMA_DIR) + "/models")) {
        if (entry.path().extension() != ".gguf")
            continue;
        EXPECT_NO_THROW(check_gguf_file(entry.path().string())) << entry.path();
        EXPECT_NO_THROW(Tokenizer(entry.path().string()).tokenize("Hello world", true, false))
            << entry.path();
        ++n;
    }
    EXPECT_GE(n, 10);
}

// Found by fuzz_gguf: a one-token "llama" vocabulary without bos_token_id.
// libllama disables the default BOS id (1, outside the vocabulary) and then
// asserts in tokenize because the tokenizer adds BOS; colony refuses the file.
TEST(GgufCheck, ATokenizerThatAddsAMissingBosIsRefused) {
    const std::string path =
        std::string(COLONY_SOURCE_DIR) +
        "/tests/fuzz/regressions/gguf/crash-f3dac26fdc8b6601633ee3af5ecb4c9d85bb22f5";
    try {
        Tokenizer tok(path);
        ADD_FAILURE() << "loaded";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
        EXPECT_NE(std::string(e.what()).find("adds a BOS token to every prompt"), std::string::npos)
            << e.what();
    }
}

TEST(GgufCheck, HeaderFieldsAreBounded) {
    auto g = valid();
    g.version = 1;
    EXPECT_NE(rejection(g.bytes()).find("version 1 is not supported"), std::string::npos);
    g.version = 0x03000000;
    EXPECT_NE(rejection(g.bytes()).find("byte-swapped"), std::string::npos);
    auto bytes = valid().bytes();
    bytes[0] = 'X';
    EXPECT_NE(rejection(bytes).find("bad magic"), std::string::npos);
    for (uint64_t huge : {uint64_t(1) << 40, ~uint64_t(0), uint64_t(100000)}) {
        bytes = valid().bytes();
        std::memcpy(bytes.data() + 8, &huge, 8);  // n_tensors
        EXPECT_FALSE(rejection(bytes).empty());
        bytes = valid().bytes();
        std::memcpy(bytes.data() + 16, &huge, 8);  // n_kv
        EXPECT_FALSE(rejection(bytes).empty());
    }
    EXPECT_NE(rejection({'G', 'G', 'U', 'F', 3, 0}).find("truncated"), std::string::npos);
}

TEST(GgufCheck, StringAndArrayLengthsStayInsideTheFile) {
    auto g = valid();
    g.key("general.name", kStr);
    GgufBytes::put<uint64_t>(g.kv, uint64_t(1) << 62);  // a string longer than the file
    EXPECT_NE(rejection(g.bytes()).find("length"), std::string::npos);
    g = valid();
    g.key("x", kArr);
    GgufBytes::put<uint32_t>(g.kv, kU64);
    GgufBytes::put<uint64_t>(g.kv, uint64_t(1) << 27);  // 1 GiB of u64 in a tiny file
    EXPECT_NE(rejection(g.bytes()).find("runs past the end"), std::string::npos);
    g = valid();
    g.key("x", kArr);
    GgufBytes::put<uint32_t>(g.kv, kStr);
    GgufBytes::put<uint64_t>(g.kv, ~uint64_t(0));
    EXPECT_NE(rejection(g.bytes()).find("exceeds the limit"), std::string::npos);
}

TEST(GgufCheck, TypesAreKnownAndValuesValid) {
    auto g = valid();
    g.key("x", 13);
    EXPECT_NE(rejection(g.bytes()).find("unknown value type 13"), std::string::npos);
    g = valid();
    g.key("x", kArr);
    GgufBytes::put<uint32_t>(g.kv, kArr);
    EXPECT_NE(rejection(g.bytes()).find("nested arrays"), std::string::npos);
    g = valid().kv_bool("general.flag", 2);
    EXPECT_NE(rejection(g.bytes()).find("neither 0 nor 1"), std::string::npos);
    g = valid().kv_str("general.architecture", "again");
    EXPECT_NE(rejection(g.bytes()).find("duplicate key 'general.architecture'"), std::string::npos);
    g = valid().kv_str("", "x");
    EXPECT_NE(rejection(g.bytes()).find("empty key"), std::string::npos);
    g = valid().kv_str("general.alignment", "32");
    EXPECT_NE(rejection(g.bytes()).find("must be a u32"), std::string::npos);
    g = valid().kv_u32("general.alignment", 48);
    EXPECT_NE(rejection(g.bytes()).find("not a power of two"), std::string::npos);
    GgufBytes arch;  // libllama leaked a ggml context on this (fuzz_gguf)
    arch.kv_u32("general.architecture", 0);
    EXPECT_NE(rejection(arch.bytes()).find("general.architecture must be a string, found u32"),
              std::string::npos);
}

TEST(GgufCheck, TensorShapesTypesAndOffsetsAreChecked) {
    auto with_tensor = [](const std::string &name, std::vector<int64_t> ne, uint32_t type,
                          uint64_t off) {
        auto g = valid();
        g.tensor(name, std::move(ne), type, off);
        return rejection(g.bytes());
    };
    EXPECT_NE(with_tensor(std::string(64, 'n'), {4}, 0, 32).find("longer than 63"),
              std::string::npos);
    EXPECT_NE(with_tensor("u", {1, 1, 1, 1, 1}, 0, 32).find("5 dimensions"), std::string::npos);
    EXPECT_NE(with_tensor("u", {4, -1}, 0, 32).find("negative"), std::string::npos);
    EXPECT_NE(with_tensor("u", {INT64_MAX / 2, 3}, 0, 32).find("element count overflows"),
              std::string::npos);
    EXPECT_NE(with_tensor("u", {int64_t(1) << 62, 1}, 0, 32).find("byte size overflows"),
              std::string::npos);
    EXPECT_NE(with_tensor("u", {4}, 99, 32).find("unknown ggml type 99"), std::string::npos);
    EXPECT_NE(with_tensor("u", {32}, /*removed Q4_2*/ 4, 32).find("no longer supported"),
              std::string::npos);
    EXPECT_NE(with_tensor("u", {33}, /*Q8_0*/ 8, 32).find("not a multiple"), std::string::npos);
    EXPECT_NE(with_tensor("u", {4}, 0, 33).find("not a multiple of the alignment"),
              std::string::npos);
    EXPECT_NE(with_tensor("u", {4}, 0, 64).find("outside the data section"), std::string::npos);
    EXPECT_NE(with_tensor("u", {4}, 0, ~uint64_t(31)).find("outside the data section"),
              std::string::npos);
    EXPECT_NE(with_tensor("t", {4}, 0, 32).find("duplicate tensor name 't'"), std::string::npos);
    auto g = valid();
    g.data.resize(16);  // the data section is cut short
    EXPECT_NE(rejection(g.bytes()).find("truncated or corrupt"), std::string::npos);
}

TEST(GgufCheck, TokenizerArraysAgree) {
    auto tokens = [](std::vector<std::string> t) {
        GgufBytes g;
        g.kv_strings("tokenizer.ggml.tokens", t);
        return g;
    };
    EXPECT_NE(rejection(tokens({"a", "b", "a"}).bytes()).find("token 2 repeats"),
              std::string::npos);
    // libllama reads tokens as C strings: texts equal up to a NUL collide
    EXPECT_NE(rejection(tokens({"a", std::string("a\0x", 3)}).bytes()).find("token 1 repeats"),
              std::string::npos);
    // ... and names an empty token "[EMPTY_<id>]"
    EXPECT_NE(rejection(tokens({"[EMPTY_1]", ""}).bytes()).find("token 1 repeats"),
              std::string::npos);
    EXPECT_NO_THROW(check_gguf(tokens({"", "[EMPTY_1]"}).bytes(), "f.gguf"));

    auto g = tokens({"a", "b"}).kv_array<int32_t>("tokenizer.ggml.scores", kI32, {0});
    EXPECT_NE(rejection(g.bytes()).find("1 entries for 2 tokens"), std::string::npos);
    g = tokens({"a", "b"}).kv_array<uint8_t>("tokenizer.ggml.scores", kU8, {0, 0});
    EXPECT_NE(rejection(g.bytes()).find("array of f32, found an array of u8"), std::string::npos);
    g = tokens({"a", "b"}).kv_array<float>("tokenizer.ggml.token_type", kF32, {1, 1});
    EXPECT_NE(rejection(g.bytes()).find("token_type must be an array of i32"), std::string::npos);
    g = tokens({"a", "b"}).kv_array<int32_t>("tokenizer.ggml.merges", kI32, {1});
    EXPECT_NE(rejection(g.bytes()).find("merges must be an array of strings"), std::string::npos);
    g = tokens({"a"}).kv_str("tokenizer.ggml.eos_token_id", "1");
    EXPECT_NE(rejection(g.bytes()).find("must be an integer"), std::string::npos);
    g = GgufBytes().kv_array<int32_t>("tokenizer.ggml.tokens", kI32, {1});
    EXPECT_NE(rejection(g.bytes()).find("array of strings, found an array of i32"),
              std::string::npos);
}

TEST(GgufCheck, AddedSpecialTokensMustBeInTheVocabulary) {
    auto g = GgufBytes()
                 .kv_strings("tokenizer.ggml.tokens", {"a", "b"})
                 .kv_u32("tokenizer.ggml.bos_token_id", 2);
    EXPECT_NE(rejection(g.bytes()).find("bos_token_id = 2 is outside the vocabulary of 2 tokens"),
              std::string::npos);
    g.kv_bool("tokenizer.ggml.add_bos_token", 0);  // not added: libllama only disables it
    EXPECT_NO_THROW(check_gguf(g.bytes(), "f.gguf"));
    g.kv_u32("tokenizer.ggml.eos_token_id", 7).kv_bool("tokenizer.ggml.add_eos_token", 1);
    EXPECT_NE(rejection(g.bytes()).find("eos_token_id = 7"), std::string::npos);
}

// Every entry point that reads a model file runs the check first: GgufFile
// (models and shards) and the vocab-only libllama load of the tokenizer.
TEST(GgufCheck, GgufFileAndTokenizerRefuseWhatTheCheckRefuses) {
    TempDir dir;
    const auto bytes = GgufBytes().kv_strings("tokenizer.ggml.tokens", {"x", "y", "x"}).bytes();
    const std::string path = dir.file("dup.gguf");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    for (auto open : {std::function<void()>([&] { GgufFile::open(path); }),
                      std::function<void()>([&] { Tokenizer t(path); })}) {
        try {
            open();
            ADD_FAILURE() << "accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
            EXPECT_NE(std::string(e.what()).find("token 2 repeats"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace colony::test
