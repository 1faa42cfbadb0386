// Shards hold only their range's tensors and compute exactly what the whole
// file computes for that range.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "runtime/stage.h"
#include "util/error.h"

namespace colony::test {
namespace {

std::vector<float> run_range(std::shared_ptr<const GgufFile> file, const ModelHparams &hp, LayerRange r,
                             const std::vector<float> &in_embd) {
    StageConfig cfg;
    cfg.range = r;
    cfg.n_ctx = 64;
    cfg.n_threads = 2;
    Stage s(file, hp, cfg);
    std::vector<int32_t> tokens = {1, 400, 300, 200}, pos(4), seq(4, 0), rows = {0, 1, 2, 3};
    std::iota(pos.begin(), pos.end(), 0);
    Ubatch ub{4, s.is_first() ? tokens.data() : nullptr, s.is_first() ? nullptr : in_embd.data(), pos.data(),
              seq.data(), rows.data(), 4};
    const float *out = s.forward(ub);
    return std::vector<float>(out, out + static_cast<size_t>(s.out_row_size()) * 4);
}

TEST(Shard, HoldsOnlyItsRangeAndComputesTheSame) {
    TempDir dir;
    auto model = GgufFile::open(model_path("stories260K-q8_0.gguf"));
    const ModelHparams hp = ModelHparams::from_gguf(*model);
    const std::string sha = sha256_file_hex(model->path());
    EXPECT_EQ(sha, "63cf82ab87f699e48c6967d0ceb98317ff6d2f34bfef3b082341b51a3ba4953c");
    std::vector<float> h_model, h_shard;
    for (LayerRange r : {LayerRange{0, 2}, LayerRange{2, 4}, LayerRange{4, 5}}) {
        const std::string path = dir.file("shard-" + std::to_string(r.first) + ".gguf");
        write_shard(*model, hp, r, sha, path);
        auto shard = GgufFile::open(path);
        EXPECT_LT(std::filesystem::file_size(path), std::filesystem::file_size(model->path()));
        EXPECT_EQ(shard->get_int("colony.shard.first"), r.first);
        EXPECT_EQ(shard->get_string("colony.shard.model_sha256"), sha);
        EXPECT_EQ(shard->find("token_embd.weight") != nullptr, r.first == 0);
        EXPECT_EQ(shard->find("output.weight") != nullptr, r.last == hp.n_layer);
        for (uint32_t il = 0; il < hp.n_layer; ++il) {
            const bool inside = il >= r.first && il < r.last;
            EXPECT_EQ(shard->find("blk." + std::to_string(il) + ".attn_q.weight") != nullptr, inside);
        }
        const ModelHparams shp = ModelHparams::from_gguf(*shard);
        EXPECT_EQ(shp.n_layer, hp.n_layer);
        h_model = run_range(std::move(model), hp, r, h_model);
        h_shard = run_range(std::move(shard), shp, r, h_shard);
        EXPECT_EQ(h_model, h_shard) << "range " << r.str();
        model = GgufFile::open(model_path("stories260K-q8_0.gguf"));
    }
}

TEST(Shard, RangeOutsideTheModelIsRefused) {
    TempDir dir;
    auto model = GgufFile::open(model_path("stories260K-f32.gguf"));
    const ModelHparams hp = ModelHparams::from_gguf(*model);
    EXPECT_THROW(write_shard(*model, hp, {3, 9}, "x", dir.file("s.gguf")), Error);
    EXPECT_FALSE(std::filesystem::exists(dir.file("s.gguf")));
}

}  // namespace
}  // namespace colony::test
