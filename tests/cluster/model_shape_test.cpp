// The planner's view of a model (cluster/model_shape.h) for a mixture of
// experts: memory counts every expert, a decode step reads the used ones,
// and the speed probe takes as many blocks as it needs to read its bytes.
#include <gtest/gtest.h>

#include <string>

#include "cluster/model_shape.h"
#include "common/synth_tiny.h"
#include "model/gguf_file.h"
#include "model/hparams.h"

namespace colony::test {
namespace {

TEST(ModelShape, MoeBlocksWeighAllExpertsButADecodeReadsTheUsedOnes) {
    TempDir dir;
    // 8 experts of n_ff 128, 2 used per token; 6 blocks
    const std::string path = synth_tiny(dir, "qwen3-30b-a3b", "F16", 6);
    const auto file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    ASSERT_TRUE(hp.is_moe());
    EXPECT_EQ(hp.n_expert, 8u);
    EXPECT_EQ(hp.n_expert_used, 2u);
    EXPECT_EQ(hp.n_ff_exp, 128u);

    const ModelShape m = model_shape_from_gguf(*file, hp, 512, 1);
    uint64_t block0 = 0, read0 = 0;
    for (const GgufTensor &t : file->tensors()) {
        if (t.name.rfind("blk.0.", 0) != 0)
            continue;
        block0 += t.nbytes;
        read0 += decode_read_bytes(t, hp);
        if (t.name == "blk.0.ffn_up_exps.weight") {
            EXPECT_EQ(decode_read_bytes(t, hp), t.nbytes / 4);
        }
        if (t.name == "blk.0.attn_q.weight") {
            EXPECT_EQ(decode_read_bytes(t, hp), t.nbytes);
        }
    }
    EXPECT_EQ(m.layer_weight_bytes[0], block0);  // memory: every expert
    EXPECT_LT(read0, block0 / 2);                // the experts are most of a block
}

}  // namespace
}  // namespace colony::test
