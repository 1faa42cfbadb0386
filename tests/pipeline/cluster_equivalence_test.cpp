// Equivalence: greedy text through 2 and 3 stages in separate processes on
// loopback (colony run; serve + join) equals single-process colony generate.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 48;

struct Case {
    int workers;
    const char *split;
};

// Every split point of the 5-layer model with one worker (2 stages) and with
// two workers (3 stages).
const std::vector<Case> kAllSplits = {
    {1, "0:1,1:5"},     {1, "0:2,2:5"},     {1, "0:3,3:5"},     {1, "0:4,4:5"},
    {2, "0:1,1:2,2:5"}, {2, "0:1,1:3,3:5"}, {2, "0:1,1:4,4:5"}, {2, "0:2,2:3,3:5"},
    {2, "0:2,2:4,4:5"}, {2, "0:3,3:4,4:5"},
};

void expect_run_matches(const std::string &model_name, const std::vector<Case> &cases,
                        const std::string &wire_type) {
    const std::string model = model_path(model_name);
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    ASSERT_GT(ref.size(), std::string(kPrompt).size());
    for (const Case &c : cases) {
        int rc = -1;
        std::string err;
        const std::string out =
            run_colony({"run", "-m", model, "--workers", std::to_string(c.workers), "--split",
                        c.split, "--wire-type", wire_type, "-p", kPrompt, "-n",
                        std::to_string(kTokens), "--temp", "0", "-t", "1"},
                       &rc, &err, 60000);
        EXPECT_EQ(rc, 0) << model_name << " split " << c.split << ": " << err;
        EXPECT_EQ(out, ref) << model_name << " split " << c.split << " wire " << wire_type;
    }
}

TEST(PipelineEquivalence, EverySplitOfF32WithF32HiddenStates) {
    expect_run_matches("stories260K-f32.gguf", kAllSplits, "f32");
}

TEST(PipelineEquivalence, EverySplitOfQ8_0WithF32HiddenStates) {
    expect_run_matches("stories260K-q8_0.gguf", kAllSplits, "f32");
}

TEST(PipelineEquivalence, DefaultF16HiddenStatesGiveTheSameGreedyText) {
    const std::vector<Case> some = {{1, "0:2,2:5"}, {2, "0:1,1:3,3:5"}, {2, "0:3,3:4,4:5"}};
    expect_run_matches("stories260K-f32.gguf", some, "f16");
    expect_run_matches("stories260K-q8_0.gguf", some, "f16");
}

TEST(PipelineEquivalence, SyntheticQwen2EverySplit) {
    // A qwen2-shaped model (NeoX RoPE, Q/K/V biases, GQA, tied head) with
    // random weights and Qwen2's tokenizer, written by `colony synth`.
    TempDir dir;
    int rc = -1;
    std::string err;
    const std::string model = dir.file("qwen2-tiny.gguf");
    run_colony({"synth", "--preset", "qwen2.5-0.5b", "--layers", "4", "--embd", "128", "--heads",
                "4", "--kv-heads", "2", "--ff", "256", "--type", "Q8_0", "-o", model, "-q"},
               &rc, &err);
    // colony synth is part of the colony binary under test: a failure is a failure
    ASSERT_EQ(rc, 0) << "colony synth failed:\n" << err;
    const std::string ref = reference_greedy(model, kPrompt, 24);
    for (const Case &c : std::vector<Case>{{1, "0:1,1:4"},
                                           {1, "0:2,2:4"},
                                           {1, "0:3,3:4"},
                                           {2, "0:1,1:2,2:4"},
                                           {2, "0:1,1:3,3:4"},
                                           {2, "0:2,2:3,3:4"}}) {
        const std::string out = run_colony(
            {"run", "-m", model, "--workers", std::to_string(c.workers), "--split", c.split,
             "--wire-type", "f32", "-p", kPrompt, "-n", "24", "--temp", "0", "-t", "1"},
            &rc, &err, 60000);
        EXPECT_EQ(rc, 0) << c.split << ": " << err;
        EXPECT_EQ(out, ref) << "split " << c.split;
    }
}

TEST(PipelineEquivalence, ServeAndTwoJoinsMatchGenerate) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 2);
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token());
    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, kTokens) + "\n", ref);
    const HttpReply health = http_get(serve.api_port(), "/health");
    ASSERT_EQ(health.status, 200);
    EXPECT_EQ(health.body["stages"].size(), 3u);
    EXPECT_EQ(health.body["workers"].size(), 2u);
}

// -ctk/-ctv are each stage's own choice (DESIGN.md, decision 9): the
// coordinator and the first worker keep their KV cache in f32, the last
// worker in f16 (the default); each stage's KV bytes in /v1/cluster show it,
// and the greedy text is generate's.
TEST(PipelineEquivalence, EachStageKeepsTheKvCacheTypeItWasGiven) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    const std::vector<std::string> f32_kv = {"-ctk", "f32", "-ctv", "f32"};
    std::vector<std::string> serve_args = {"--split", "0:2,2:4,4:5", "--wire-type", "f32"};
    serve_args.insert(serve_args.end(), f32_kv.begin(), f32_kv.end());
    ServeProcess serve(dir.file("coordinator"), model, 2, serve_args);
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token(), f32_kv);
    // w1 joins first, so the static split gives it the second range
    ASSERT_TRUE(eventually(
        [&] { return http_get(serve.api_port(), "/health").body["workers"].size() == 1; }, 30000))
        << serve.log();
    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
    EXPECT_EQ(kPrompt + complete_greedy(serve.api_port(), kPrompt, kTokens) + "\n", ref);
    std::map<uint32_t, uint64_t> kv_bytes;  // first layer of the stage -> its KV bytes
    const bool reported = eventually(
        [&] {
            kv_bytes.clear();
            const HttpReply r = http_get(serve.api_port(), "/v1/cluster");
            for (const auto &n : r.body.value("nodes", nlohmann::json::array())) {
                const uint64_t b = n["memory"].value("kv_bytes", uint64_t{0});
                if (b > 0)
                    kv_bytes[n["layers"].value("first", 0u)] = b;
            }
            return kv_bytes.size() == 3;
        },
        30000);
    ASSERT_TRUE(reported) << http_get(serve.api_port(), "/v1/cluster").body.dump(1);
    // [0,2) f32 and [2,4) f32: the same bytes; [4,5) f16: half the layers at half the size.
    EXPECT_EQ(kv_bytes[0], kv_bytes[2]);
    EXPECT_EQ(kv_bytes[0], 4 * kv_bytes[4]);
}

TEST(PipelineEquivalence, ConcurrentRequestsEachGetTheirOwnGreedyText) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Tom went",
                                              "One day"};
    std::vector<std::string> refs;
    for (const std::string &p : prompts)
        refs.push_back(reference_greedy(model, p, 32));
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 1, {"--parallel", "4"});
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 30000)) << serve.log();
    std::vector<std::string> got(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i) {
        threads.emplace_back([&, i] {
            try {
                got[i] = complete_greedy(serve.api_port(), prompts[i], 32);
            } catch (const std::exception &e) {
                got[i] = e.what();
            }
        });
    }
    for (auto &t : threads)
        t.join();
    for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_EQ(prompts[i] + got[i] + "\n", refs[i]);
}

}  // namespace
}  // namespace colony::test
