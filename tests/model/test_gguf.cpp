// Bad model files give a clear error of the right kind, never a crash:
// missing, truncated, wrong magic, unsupported architecture, missing tensor,
// wrong tensor shape, layer range outside the model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/test_env.h"
#include "ggml-backend.h"
#include "gguf.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "util/error.h"

namespace colony::test {
namespace {

std::string read_all(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string &path, const std::string &bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

ErrorCode code_of(const std::function<void()> &fn, std::string *msg = nullptr) {
    try {
        fn();
    } catch (const Error &e) {
        if (msg) *msg = e.what();
        return e.code();
    }
    ADD_FAILURE() << "no colony::Error thrown";
    return ErrorCode::kInternal;
}

/// Rewrites stories260K with one metadata key changed (gguf API, data kept).
std::string rewrite_with(const TempDir &dir, const std::function<void(gguf_context *)> &edit,
                         const std::function<bool(const char *)> &keep_tensor = nullptr) {
    ggml_context *meta = nullptr;
    gguf_init_params params{false, &meta};
    gguf_context *src = gguf_init_from_file(model_path("stories260K-f32.gguf").c_str(), params);
    gguf_context *dst = gguf_init_empty();
    gguf_set_kv(dst, src);
    for (int64_t i = 0; i < gguf_get_n_tensors(src); ++i) {
        const char *name = gguf_get_tensor_name(src, i);
        if (keep_tensor && !keep_tensor(name)) continue;
        gguf_add_tensor(dst, ggml_get_tensor(meta, name));
    }
    edit(dst);
    const std::string out = dir.file("edited.gguf");
    EXPECT_TRUE(gguf_write_to_file(dst, out.c_str(), false));
    gguf_free(dst);
    gguf_free(src);
    ggml_free(meta);
    return out;
}

TEST(GgufErrors, MissingFileIsNotFound) {
    EXPECT_EQ(code_of([] { GgufFile::open("/nonexistent/model.gguf"); }), ErrorCode::kNotFound);
}

TEST(GgufErrors, WrongMagicIsCorrupt) {
    TempDir dir;
    std::string bytes = read_all(model_path("stories260K-f32.gguf"));
    bytes[0] = 'X';
    write_all(dir.file("bad.gguf"), bytes);
    std::string msg;
    EXPECT_EQ(code_of([&] { GgufFile::open(dir.file("bad.gguf")); }, &msg), ErrorCode::kCorrupt);
    EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
}

TEST(GgufErrors, EveryTruncationIsCorrupt) {
    TempDir dir;
    const std::string bytes = read_all(model_path("stories260K-q4_0.gguf"));
    // cut in the header, in the tensor table, and in the tensor data
    for (size_t cut : {size_t(0), size_t(3), size_t(10), size_t(100), size_t(5000), bytes.size() / 2, bytes.size() - 64}) {
        write_all(dir.file("cut.gguf"), bytes.substr(0, cut));
        EXPECT_EQ(code_of([&] { GgufFile::open(dir.file("cut.gguf")); }), ErrorCode::kCorrupt) << "cut at " << cut;
    }
}

TEST(GgufErrors, UnsupportedArchitectureIsNamed) {
    TempDir dir;
    const std::string path = rewrite_with(dir, [](gguf_context *g) { gguf_set_val_str(g, "general.architecture", "mamba"); });
    auto file = GgufFile::open(path);
    std::string msg;
    EXPECT_EQ(code_of([&] { ModelHparams::from_gguf(*file); }, &msg), ErrorCode::kUnsupported);
    EXPECT_NE(msg.find("mamba"), std::string::npos) << msg;
}

TEST(GgufErrors, MissingTensorAndRangeOutsideModel) {
    TempDir dir;
    const std::string path = rewrite_with(dir, [](gguf_context *) {},
                                          [](const char *n) { return std::string(n) != "blk.3.ffn_up.weight"; });
    auto file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    std::string msg;
    EXPECT_EQ(code_of([&] { StageWeights w(*file, hp, {0, hp.n_layer}, dev, {}); }, &msg), ErrorCode::kCorrupt);
    EXPECT_NE(msg.find("blk.3.ffn_up.weight"), std::string::npos) << msg;
    // a range without block 3 loads fine
    StageWeights ok(*file, hp, {0, 3}, dev, {});
    EXPECT_TRUE(ok.is_first());
    EXPECT_FALSE(ok.is_last());
    EXPECT_EQ(code_of([&] { StageWeights w(*file, hp, {2, hp.n_layer + 1}, dev, {}); }), ErrorCode::kOutOfRange);
}

TEST(GgufErrors, WrongShapeNamesExpectedAndFound) {
    TempDir dir;
    // claim a larger feed-forward size than the tensors have
    const std::string path = rewrite_with(dir, [](gguf_context *g) { gguf_set_val_u32(g, "llama.feed_forward_length", 200); });
    auto file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    std::string msg;
    EXPECT_EQ(code_of([&] { StageWeights w(*file, hp, {0, 1}, dev, {}); }, &msg), ErrorCode::kCorrupt);
    EXPECT_NE(msg.find("wrong shape"), std::string::npos) << msg;
}

TEST(StageWeights, LastStageOfATiedModelHasItsHead) {
    auto file = GgufFile::open(model_path("stories260K-q8_0.gguf"));
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    StageWeights mid(*file, hp, {1, 3}, dev, {});
    EXPECT_FALSE(mid.is_first());
    EXPECT_FALSE(mid.is_last());
    StageWeights last(*file, hp, {3, hp.n_layer}, dev, {});
    EXPECT_TRUE(last.is_last());
    EXPECT_GT(last.bytes(), mid.bytes() / 2);
}

}  // namespace
}  // namespace colony::test
