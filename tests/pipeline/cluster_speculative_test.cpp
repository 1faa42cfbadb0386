// Speculative decoding through a three-stage pipeline of separate processes
// (batch_scheduler_spec.cpp): the coordinator drafts, the last stage
// verifies. Concurrent requests get colony generate's greedy text, the API
// reports the drafts (timings, /metrics), and a worker killed mid-stream
// costs a pause, not the text.
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

std::string draft_model() {
    return model_path("stories260K-q4_0.gguf");
}

TEST(PipelineSpeculative, ConcurrentRequestsWithADraftModelGiveGenerateText) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben went to the",
                                              "The little dog was very"};
    constexpr int kTokens = 48;
    std::vector<std::string> refs;
    for (const std::string &p : prompts)
        refs.push_back(reference_greedy(model, p, kTokens));
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 2,
                       {"--split", "0:2,2:4,4:5", "--parallel", "4", "-md", draft_model(),
                        "--draft-max", "6", "--no-spec-adaptive"});
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token());
    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log();
    // staggered: a sequence's verification is still in flight while
    // another's ubatch is built (its drafts must outlive that ubatch)
    std::vector<std::future<HttpReply>> replies;
    for (size_t i = 0; i < prompts.size(); ++i) {
        if (i > 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
        replies.push_back(std::async(std::launch::async, [&, p = prompts[i]] {
            return http_post(serve.api_port(), "/v1/completions",
                             {{"prompt", p}, {"max_tokens", kTokens}, {"temperature", 0}});
        }));
    }
    int64_t drafted = 0, accepted = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
        const HttpReply r = replies[i].get();
        ASSERT_EQ(r.status, 200) << r.body.dump() << serve.log();
        const std::string text = r.body["choices"][0].value("text", "");
        EXPECT_EQ(prompts[i] + text + "\n", refs[i]) << prompts[i];
        const nlohmann::json t = r.body.value("timings", nlohmann::json::object());
        drafted += t.value("draft_n", int64_t{0});
        accepted += t.value("draft_n_accepted", int64_t{0});
    }
    EXPECT_GT(drafted, 0);
    EXPECT_GT(accepted, 0);
    EXPECT_LE(accepted, drafted);
    const std::string metrics = http_get_text(serve.api_port(), "/metrics");
    EXPECT_NE(metrics.find("colony_draft_tokens_total " + std::to_string(drafted)),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("colony_draft_tokens_accepted_total " + std::to_string(accepted)),
              std::string::npos);
    // the dashboard's figures (/v1/cluster)
    const nlohmann::json spec = http_get(serve.api_port(), "/v1/cluster").body["speculative"];
    ASSERT_TRUE(spec.is_object()) << spec.dump();
    EXPECT_EQ(spec.value("type", ""), "draft");
    EXPECT_EQ(spec.value("drafted", int64_t{0}), drafted);
    EXPECT_EQ(spec.value("accepted", int64_t{0}), accepted);
    EXPECT_GT(spec.value("tokens_per_verification", 0.0), 1.0);
    // every sequence released on every stage: no rejected draft left behind
    EXPECT_TRUE(wait_coordinator_kv_cells(serve.api_port(), 0, 5000));
}

// A lost worker while drafts are in flight: the request is replayed on the
// spare and its text is the fault-free one (greedy, bit-exact stages).
TEST(PipelineSpeculative, AKilledWorkerCostsAPauseNotTheText) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    const std::vector<std::string> bi = {"--batch-invariant"};
    ServeProcess serve(dir.file("coordinator"), model, 2,
                       {"--split", "0:2,2:4,4:5", "--wire-type", "f32", "--parallel", "2",
                        "--batch-invariant", "--spec-type", "ngram", "--no-spec-adaptive"});
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token(), bi);
    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token(), bi);
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log();
    JoinProcess spare(dir.file("w3"), serve.coordinator(), serve.token(), bi);
    const uint16_t port = serve.api_port();
    const nlohmann::json req = {{"prompt",
                                 "Lily went to the park. She saw a big dog. Lily went "
                                 "to the park. She saw"},
                                {"max_tokens", 160},
                                {"temperature", 0},
                                {"ignore_eos", true}};
    const StreamReply clean = http_stream(port, req);
    ASSERT_EQ(clean.error, "") << serve.log();
    const int middle = worker_holding(port, 2, 2);
    ASSERT_GE(middle, 0) << http_get(port, "/v1/cluster").body.dump(1);
    JoinProcess &victim = middle == 0 ? w1 : w2;
    std::promise<void> reached;
    bool fired = false;
    auto killed = std::async(std::launch::async, [&, f = reached.get_future()]() mutable {
        if (f.wait_for(std::chrono::seconds(60)) == std::future_status::ready)
            victim.process().signal(SIGKILL);
    });
    const StreamReply r = http_stream(port, req, 120, [&](int n) {
        if (!fired && n >= 30) {
            fired = true;
            reached.set_value();
        }
    });
    if (!fired)
        reached.set_value();
    killed.wait();
    EXPECT_EQ(r.error, "") << serve.log();
    EXPECT_EQ(r.completion_tokens, 160);
    EXPECT_EQ(r.text, clean.text) << serve.log();
    const nlohmann::json rec =
        http_get(port, "/v1/cluster").body.value("recoveries", nlohmann::json());
    EXPECT_EQ(rec.size(), 1u) << rec.dump(1);
}

}  // namespace
}  // namespace colony::test
