// A cluster where one worker runs its layer range on a GPU (colony join
// -ngl -1) and the coordinator and the other worker on their CPUs gives the
// single CPU node's greedy text, and /v1/cluster shows which node offloads.
// Built only with a GPU backend (tests/pipeline/CMakeLists.txt); here that is
// Vulkan on Mesa's lavapipe.
#include <gtest/gtest.h>

#include <string>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 32;

TEST(PipelineGpu, AGpuWorkerAmongCpuStagesGivesTheCpuText) {
    for (const char *type : {"f32", "q8_0"}) {
        const std::string model = model_path(std::string("stories260K-") + type + ".gguf");
        const std::string ref = reference_greedy(model, kPrompt, kTokens);
        TempDir dir;
        ServeProcess serve(dir.file("coordinator"), model, 2);
        JoinProcess cpu(dir.file("cpu"), serve.coordinator(), serve.token());
        JoinProcess gpu(dir.file("gpu"), serve.coordinator(), serve.token(), {"-ngl", "-1"});
        ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << gpu.log();
        EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, kTokens) + "\n", ref)
            << type;
        // the GPU worker holds layers and says where they run
        bool seen = false;
        for (int i = 0; i < 50 && !seen; ++i) {
            const HttpReply c = http_get(serve.api_port(), "/v1/cluster");
            for (const auto &n : c.body["nodes"]) {
                if (n.value("name", "") == "gpu" && n["threads"].is_object() &&
                    n["threads"]["gpu"].is_string()) {
                    EXPECT_NE(n["threads"]["gpu"].get<std::string>().find("(-ngl -1: all)"),
                              std::string::npos);
                    EXPECT_GT(n["layers"]["last"].get<int>(), n["layers"]["first"].get<int>());
                    seen = true;
                }
            }
            if (!seen)
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        EXPECT_TRUE(seen) << http_get(serve.api_port(), "/v1/cluster").body.dump();
    }
}

}  // namespace
}  // namespace colony::test
