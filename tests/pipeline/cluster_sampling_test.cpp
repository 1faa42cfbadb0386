// Sampling with temperature > 0 through a real multi-process pipeline (three
// processes, `colony run --workers 2 --split`): the last stage seeds its
// sampler from the request's seed (pipeline/seq_samplers.h) with the same
// chain as `colony generate` (runtime/sampler.h), so a seed gives the same
// text twice, the same text as one process, and another seed another text.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr const char *kTokens = "48";
constexpr const char *kTemp = "0.8";

std::string run_sampled(const std::string &model, const std::string &seed,
                        const std::string &wire) {
    int rc = -1;
    std::string err;
    const std::string out =
        run_colony({"run", "-m", model, "--workers", "2", "--split", "0:2,2:4,4:5", "--wire-type",
                    wire, "-p", kPrompt, "-n", kTokens, "--temp", kTemp, "--seed", seed, "-t", "1"},
                   &rc, &err, 120000);
    EXPECT_EQ(rc, 0) << "colony run --seed " << seed << ": " << err;
    return out;
}

std::string generate_sampled(const std::string &model, const std::string &seed) {
    int rc = -1;
    std::string err;
    const std::string out = run_colony({"generate", "-m", model, "-p", kPrompt, "-n", kTokens,
                                        "--temp", kTemp, "--seed", seed, "-t", "1"},
                                       &rc, &err);
    EXPECT_EQ(rc, 0) << "colony generate --seed " << seed << ": " << err;
    return out;
}

TEST(PipelineSampling, SeedGivesTheSameTextTwiceAndTheSameAsOneProcess) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string greedy = reference_greedy(model, kPrompt, 48);
    const std::string first = run_sampled(model, "42", "f32");
    const std::string again = run_sampled(model, "42", "f32");
    const std::string other = run_sampled(model, "43", "f32");
    ASSERT_GT(first.size(), std::string(kPrompt).size() + 40) << first;
    EXPECT_EQ(first, again) << "the same seed through the pipeline";
    EXPECT_NE(first, other) << "seeds 42 and 43 through the pipeline";
    EXPECT_NE(first, greedy) << "temperature 0.8 sampled the greedy text";
    EXPECT_EQ(first, generate_sampled(model, "42")) << "pipeline vs colony generate, seed 42";
    EXPECT_EQ(other, generate_sampled(model, "43")) << "pipeline vs colony generate, seed 43";
}

// Several sampled requests sent at once to the same stages (serve +
// two joins, --parallel 4): each request's sampler is its own, so each text
// is what its seed gives alone on one process.
TEST(PipelineSampling, ConcurrentSeededRequestsEachGetTheirSeedsText) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::vector<std::string> seeds = {"42", "43", "44", "45"};
    std::vector<std::string> want;
    for (const std::string &seed : seeds)
        want.push_back(generate_sampled(model, seed));
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 2,
                       {"--split", "0:2,2:4,4:5", "--wire-type", "f32", "--parallel", "4"});
    JoinProcess w1(dir.file("w1"), serve.coordinator(), serve.token());
    JoinProcess w2(dir.file("w2"), serve.coordinator(), serve.token());
    ASSERT_TRUE(wait_health(serve.api_port(), "ok", 60000)) << serve.log() << "\nw1:\n"
                                                            << w1.log() << "\nw2:\n"
                                                            << w2.log();
    std::vector<HttpReply> got(seeds.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < seeds.size(); ++i) {
        threads.emplace_back([&, i] {
            got[i] = http_post(serve.api_port(), "/v1/completions",
                               {{"prompt", kPrompt},
                                {"max_tokens", std::stoi(kTokens)},
                                {"temperature", std::stod(kTemp)},
                                {"seed", std::stoi(seeds[i])}},
                               120);
        });
    }
    for (std::thread &t : threads)
        t.join();
    for (size_t i = 0; i < seeds.size(); ++i) {
        ASSERT_EQ(got[i].status, 200) << "seed " << seeds[i] << ": " << got[i].body.dump();
        EXPECT_EQ(kPrompt + got[i].body["choices"][0]["text"].get<std::string>() + "\n", want[i])
            << "seed " << seeds[i];
    }
}

}  // namespace
}  // namespace colony::test
