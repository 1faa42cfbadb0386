// Separate hosts: the coordinator and two workers in their own network
// namespaces of the network lab (scripts/netlab, docs/netlab.md), with their
// own addresses and emulated ethernet links. Greedy text equals single-process
// colony generate; a request running through a link cut (worker-worker,
// coordinator-worker) pauses and completes with the text of a run without
// the cut (recovery), and the cluster serves again once the link is back. Skipped (the only skip)
// without root or network namespaces; a lab that does not come up fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cluster_harness.h"
#include "common/prerequisite.h"
#include "common/test_env.h"
#include "netlab_fixture.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";

TEST(PipelineNetns, SeparateHostsMatchGenerateAndSurviveLinkCuts) {
    COLONY_REQUIRE_PREREQUISITE(Prerequisite::NetworkNamespaces);
    const std::string ip = find_ip();
    ASSERT_FALSE(ip.empty())
        << "`ip netns add` works, but no ip binary in /usr/sbin, /sbin, /usr/bin, /bin";
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, 32);
    Lab lab("pt");
    ASSERT_TRUE(lab.up()) << lab.up_output();
    TempDir dir;
    auto in = [&](int host) { return std::vector<std::string>{ip, "netns", "exec", lab.ns(host)}; };
    ServeProcess serve(dir.file("coordinator"), model, 2,
                       {"--host", "0.0.0.0", "--heartbeat-timeout-ms", "2000", "--stall-timeout-ms",
                        "3000", "-c", "8192", "--parallel", "1", "--max-tokens-limit", "8000"},
                       in(1));
    const std::string coordinator = "10.213.0.1:" + std::to_string(serve.control_port());
    JoinProcess w2(dir.file("h2"), coordinator, serve.token(), {"--data-host", "*"}, in(2));
    JoinProcess w3(dir.file("h3"), coordinator, serve.token(), {"--data-host", "*"}, in(3));
    const uint16_t api = serve.api_port();
    ASSERT_TRUE(in_netns(lab.ns(1), [api] { return wait_health(api, "ok", 30000); }))
        << serve.log() << w2.log() << w3.log();
    const HttpReply health = in_netns(lab.ns(1), [api] { return http_get(api, "/health"); });
    // Each worker's data endpoint is its own host's address (join order varies).
    for (size_t i = 1; i < 3; ++i) {
        const auto &stage = health.body["stages"][i];
        const std::string host = stage["node"].get<std::string>().substr(1);  // "h2" -> "2"
        EXPECT_EQ(stage["endpoint"].get<std::string>().rfind("tcp://10.213.0." + host + ":", 0), 0u)
            << health.body.dump();
    }
    EXPECT_EQ(
        kPrompt + in_netns(lab.ns(1), [api] { return complete_greedy(api, kPrompt, 32); }) + "\n",
        ref);

    // Cut the link between the two workers, then between the coordinator and
    // the last worker, each during a long request, for 4 s. Recovery (DESIGN.md,
    // decision 10): the cut is seen (a data link's heartbeats, or the
    // coordinator's), the request waits for a plan that serves and is replayed
    // from its token history: it completes with the text of a run without a cut.
    const nlohmann::json long_request = {
        {"prompt", kPrompt}, {"max_tokens", 1200}, {"temperature", 0}, {"ignore_eos", true}};
    const HttpReply clean =
        in_netns(lab.ns(1), [&] { return http_post(api, "/v1/completions", long_request, 120); });
    ASSERT_EQ(clean.status, 200) << clean.body.dump();
    const std::string want = clean.body["choices"][0].value("text", "");
    for (const auto &[a, b] : {std::pair{2, 3}, std::pair{1, 3}}) {
        // the requests before have ended: stage 0 holds no cells
        ASSERT_EQ(in_netns(lab.ns(1), [api] { return coordinator_kv_used_cells(api); }), 0);
        auto request = std::async(std::launch::async, [&, api] {
            return in_netns(lab.ns(1), [&, api] {
                return http_post(api, "/v1/completions", long_request, 120);
            });
        });
        // cut once the request is generating: its tokens come back to stage 0
        ASSERT_TRUE(
            in_netns(lab.ns(1), [api] { return wait_coordinator_kv_cells(api, 32, 30000); }))
            << serve.log() << w2.log() << w3.log();
        ASSERT_EQ(request.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
            << "the request ended before the cut: " << request.get().body.dump();
        ASSERT_EQ(lab.script({"cut", std::to_string(a), std::to_string(b)}), 0)
            << lab.last_output();
        std::this_thread::sleep_for(std::chrono::seconds(4));
        ASSERT_EQ(lab.script({"restore", std::to_string(a), std::to_string(b)}), 0)
            << lab.last_output();
        ASSERT_EQ(request.wait_for(std::chrono::seconds(90)), std::future_status::ready);
        const HttpReply r = request.get();
        EXPECT_EQ(r.status, 200) << r.body.dump() << serve.log();
        EXPECT_EQ(r.body["choices"][0].value("text", ""), want)
            << "cut h" << a << "-h" << b << ": not the text of the run without a cut";
        const HttpReply cluster =
            in_netns(lab.ns(1), [api] { return http_get(api, "/v1/cluster"); });
        const nlohmann::json rec = cluster.body.value("recoveries", nlohmann::json::array());
        ASSERT_FALSE(rec.empty()) << cluster.body.dump(1);
        std::printf("cut h%d-h%d for 4 s: %s\n", a, b, rec.back().dump().c_str());
        EXPECT_TRUE(serve.process().running());
        ASSERT_TRUE(in_netns(lab.ns(1), [api] { return wait_health(api, "ok", 30000); }))
            << serve.log();
    }
}

}  // namespace
}  // namespace colony::test
