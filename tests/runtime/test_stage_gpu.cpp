// A stage whose blocks run on a GPU (-ngl; runtime/stage.h's GpuOffload)
// computes what the CPU stage computes: logits within a stated tolerance and
// the same greedy tokens, whole-model and with only some blocks offloaded,
// and in a pipeline where one stage is on the GPU and the other on the CPU.
// Built only when ggml has a GPU backend (scripts/setup.sh --vulkan); on this
// project's machines that is Vulkan on Mesa's lavapipe, a software device
// (GGML_VK_VISIBLE_DEVICES=0 makes ggml-vulkan take it, tests/runtime/CMakeLists.txt).
#include <gtest/gtest.h>

#include "common/test_env.h"
#include "runtime/gpu_device.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

// GPU kernels sum in another order than the CPU's, keep some intermediates
// in F16, and for quantized weights quantize the activations to q8_1 (the CPU
// to q8_0): logits agree to these fractions of their largest magnitude.
// Measured on lavapipe (stories260K, 24 greedy tokens after a 10-token
// prompt): f32 1.6e-3, f16 3.0e-3, q4_0 1.1e-2, q8_0 1.4e-2 (1.9e-2 with
// [0,3) on the GPU), and the greedy tokens equal in every case.
float tolerance(const std::string &type) {
    return type == "f32" || type == "f16" ? 5e-3f : 3e-2f;
}
constexpr int kTokens = 24;

struct Case {
    const char *type;
    std::vector<uint32_t> cuts;
    std::vector<GpuOffload> gpu;
    const char *what;
};

void expect_gpu_matches_cpu(const Case &c) {
    const std::string path = model_path(std::string("stories260K-") + c.type + ".gguf");
    Tokenizer tok(path);
    const std::vector<int32_t> prompt =
        tok.tokenize("Once upon a time, in a small town", true, false);
    StageChain cpu(path, {});
    StageChain gpu(path, c.cuts, 512, 512, GGML_TYPE_F16, GGML_TYPE_F16, c.gpu);
    std::vector<float> lc, lg;
    const auto tc = cpu.greedy(prompt, kTokens, &lc);
    const auto tg = gpu.greedy(prompt, kTokens, &lg);
    const Diff d = compare(lg.data(), lc.data(), lc.size());
    EXPECT_LE(d.max_abs_diff, tolerance(c.type) * d.max_abs_ref) << c.type << ", " << c.what;
    EXPECT_EQ(tg, tc) << c.type << ", " << c.what;
    std::printf("  %s, %s: max |logit diff| %.3g of max |logit| %.3g\n", c.type, c.what,
                d.max_abs_diff, d.max_abs_ref);
}

TEST(StageGpu, TheBuildHasAGpuDevice) {
    const ggml_backend_dev_t d = find_gpu_device("");
    ASSERT_NE(d, nullptr);
    std::printf("  %s", format_device_list().c_str());
}

TEST(StageGpu, WholeModelOnTheGpuMatchesTheCpu) {
    for (const char *type : {"f32", "f16", "q8_0", "q4_0"}) {
        expect_gpu_matches_cpu({type, {}, {GpuOffload{-1, ""}}, "every block and the head"});
    }
}

TEST(StageGpu, SomeBlocksOnTheGpuMatchTheCpu) {
    // the last 2 of 5 blocks on the GPU, the embedding, 3 blocks and the head on the CPU
    expect_gpu_matches_cpu({"q8_0", {}, {GpuOffload{2, ""}}, "-ngl 2"});
    expect_gpu_matches_cpu(
        {"f32", {}, {GpuOffload{5, ""}}, "-ngl 5 (every block, head on the CPU)"});
}

TEST(StageGpu, PipelineWithOneGpuStageGivesTheCpuTokens) {
    // [0,2) on the CPU hands its hidden states to [2,5) on the GPU, and the reverse
    expect_gpu_matches_cpu(
        {"f32", {2}, {GpuOffload{}, GpuOffload{-1, ""}}, "[0,2) cpu + [2,5) gpu"});
    expect_gpu_matches_cpu(
        {"q8_0", {3}, {GpuOffload{-1, ""}, GpuOffload{}}, "[0,3) gpu + [3,5) cpu"});
}

TEST(StageGpu, AStageReportsItsDeviceAndBlocks) {
    StageChain chain(model_path("stories260K-f32.gguf"), {2}, 512, 512, GGML_TYPE_F16,
                     GGML_TYPE_F16, {GpuOffload{}, GpuOffload{2, ""}});
    EXPECT_EQ(chain.stage(0).gpu_device(), "");
    EXPECT_EQ(chain.stage(0).gpu_layers(), 0u);
    EXPECT_EQ(chain.stage(1).gpu_device(), ggml_backend_dev_name(find_gpu_device("")));
    EXPECT_EQ(chain.stage(1).gpu_layers(), 2u);
}

TEST(StageGpu, AnUnknownDeviceIsAClearError) {
    try {
        StageChain chain(model_path("stories260K-f32.gguf"), {}, 512, 512, GGML_TYPE_F16,
                         GGML_TYPE_F16, {GpuOffload{-1, "NoSuchGpu7"}});
        FAIL() << "a stage on an unknown device was made";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kNotFound);
        EXPECT_NE(std::string(e.what()).find("no GPU device named 'NoSuchGpu7'"), std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace colony::test
