// Naming hub models: catalog names, owner/repo[:FILE|:QUANT] and the choice of a
// quant type's file (src/hub/model_ref.h).
#include <gtest/gtest.h>

#include <set>

#include "hub/model_ref.h"
#include "util/error.h"

namespace colony::test {
namespace {

TEST(ModelRef, CatalogNamesGiveTheirRepoAndFile) {
    const ModelRef r = parse_model_ref("Qwen3-30B-A3B");
    EXPECT_EQ(r.repo, "Qwen/Qwen3-30B-A3B-GGUF");
    EXPECT_EQ(r.file, "Qwen3-30B-A3B-Q4_K_M.gguf");
    EXPECT_EQ(r.catalog_name, "qwen3-30b-a3b");
    std::set<std::string> names;
    for (const CatalogEntry &e : model_catalog()) {
        EXPECT_TRUE(names.insert(e.name).second) << e.name << " is listed twice";
        const ModelRef c = parse_model_ref(e.name);
        EXPECT_EQ(c.repo, e.repo);
        EXPECT_EQ(c.file, e.file);
        EXPECT_NE(std::string(e.file).find(".gguf"), std::string::npos) << e.name;
    }
}

TEST(ModelRef, RepoFormsNameAFileOrAQuantType) {
    ModelRef r =
        parse_model_ref("hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Llama-3.2-1B-Instruct-Q8_0.gguf");
    EXPECT_EQ(r.repo, "bartowski/Llama-3.2-1B-Instruct-GGUF");
    EXPECT_EQ(r.file, "Llama-3.2-1B-Instruct-Q8_0.gguf");
    EXPECT_EQ(r.revision, "main");
    r = parse_model_ref("unsloth/Qwen3-0.6B-GGUF:Q8_0");
    EXPECT_EQ(r.file, "");
    EXPECT_EQ(r.quant, "Q8_0");
    r = parse_model_ref("unsloth/Qwen3-0.6B-GGUF@v2");
    EXPECT_EQ(r.quant, "Q4_K_M");
    EXPECT_EQ(r.revision, "v2");
    r = parse_model_ref("owner/repo:sub/dir/model.GGUF");
    EXPECT_EQ(r.file, "sub/dir/model.GGUF");
}

TEST(ModelRef, MalformedNamesAreRefusedNamingTheForm) {
    for (const char *bad :
         {"", "hf:", "justaname", "/abs/path.gguf", "owner/repo:../../etc/passwd.gguf",
          "owner/repo:a/b", "owner/repo@:x.gguf", "own er/repo", "a/b/c"}) {
        try {
            parse_model_ref(bad);
            ADD_FAILURE() << "'" << bad << "' was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
            EXPECT_NE(std::string(e.what()).find("owner/repo"), std::string::npos) << e.what();
        }
    }
}

TEST(ModelRef, LocalPathsAreNotRefs) {
    EXPECT_FALSE(is_model_ref(COLONY_MODELS_DIR "/stories260K-f32.gguf"));
    EXPECT_FALSE(is_model_ref("models/missing.gguf"));
    EXPECT_FALSE(is_model_ref("/abs/missing"));
    EXPECT_TRUE(is_model_ref("hf:models/missing.gguf"));
    EXPECT_TRUE(is_model_ref("qwen3-8b"));
    EXPECT_TRUE(is_model_ref("Qwen/Qwen3-8B-GGUF:Q8_0"));
}

TEST(ModelRef, AQuantTypePicksItsSingleFile) {
    const std::vector<std::string> files = {
        "README.md",          "Qwen3-8B-Q4_K_M.gguf", "Qwen3-8B-Q4_K_S.gguf",
        "Qwen3-8B-Q8_0.gguf", "Qwen3-8B-IQ4_XS.gguf", "mmproj-Qwen3-8B-Q8_0.gguf",
        "Qwen3-8B-f16.gguf"};
    EXPECT_EQ(pick_quant_file(files, "Q4_K_M", "r"), "Qwen3-8B-Q4_K_M.gguf");
    EXPECT_EQ(pick_quant_file(files, "q8_0", "r"), "Qwen3-8B-Q8_0.gguf");
    EXPECT_EQ(pick_quant_file(files, "F16", "r"), "Qwen3-8B-f16.gguf");
    EXPECT_EQ(pick_quant_file(files, "IQ4_XS", "r"), "Qwen3-8B-IQ4_XS.gguf");
    try {
        pick_quant_file(files, "Q2_K", "owner/r");
        ADD_FAILURE();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kNotFound);
        EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << e.what();
    }
    const std::vector<std::string> split = {"Q4_K_M/m-Q4_K_M-00001-of-00002.gguf",
                                            "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"};
    try {
        pick_quant_file(split, "Q4_K_M", "owner/r");
        ADD_FAILURE();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    }
}

}  // namespace
}  // namespace colony::test
