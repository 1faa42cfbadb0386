// Pairing and revocation (docs/security.md; net/node_store.h,
// coordinator_pairing.cpp): with --confirm-pairing a new worker waits until a
// person approves its pairing code, its key stays pinned across a coordinator
// restart, and a node revoked mid-stream is dropped within a heartbeat while
// the stream finishes on the spare.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <regex>
#include <string>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "net/keys.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 160;
constexpr int kHeartbeatMs = 250;  // CoordinatorOptions::heartbeat_interval_ms

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

/// The first match of `re`'s group 1 in `text` ("" when none).
std::string first_match(const std::string &text, const std::string &re) {
    std::smatch m;
    return std::regex_search(text, m, std::regex(re)) ? m[1].str() : "";
}

/// The node of /v1/cluster named `name` (null when none).
nlohmann::json cluster_node(uint16_t api_port, const std::string &name) {
    for (const auto &n :
         http_get(api_port, "/v1/cluster").body.value("nodes", nlohmann::json::array())) {
        if (n.value("name", "") == name)
            return n;
    }
    return nullptr;
}

std::string node_id(const JoinProcess &w) {
    return key_fingerprint(load_key_file(w.config_dir() / "node.key").public_z85);
}

TEST(PipelinePairing, PendingJoinWaitsForApprovalAndThePinnedKeySurvivesARestart) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    auto serve = std::make_unique<ServeProcess>(dir.file("coordinator"), model, 1,
                                                std::vector<std::string>{"--confirm-pairing"});
    const std::string config = serve->config_dir().string();
    auto w = std::make_unique<JoinProcess>(dir.file("w1"), serve->coordinator(), serve->token());

    // The worker prints its code and waits; the coordinator shows the same one.
    ASSERT_TRUE(eventually([&] { return contains(w->log(), "waits for a person"); }, 30000))
        << w->log() << serve->log();
    const std::string code = first_match(w->log(), "pairing code ([0-9]{3}-[0-9]{3})");
    ASSERT_FALSE(code.empty()) << w->log();
    EXPECT_TRUE(contains(serve->log(), "asks to join with pairing code " + code)) << serve->log();
    const nlohmann::json pending = cluster_node(serve->api_port(), "w1");
    ASSERT_TRUE(pending.is_object());
    EXPECT_EQ(pending.value("state", ""), "pending");
    EXPECT_EQ(pending.value("pairing_code", ""), code);
    int rc = -1;
    const std::string list = run_colony({"node", "list", "--config-dir", config}, &rc);
    ASSERT_EQ(rc, 0);
    EXPECT_TRUE(contains(list, node_id(*w) + "  pending   " + code)) << list;

    // Not admitted while pending (the worker repeats its JOIN every 2 s).
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(http_get(serve->api_port(), "/health").body.value("status", ""), "no workers");
    EXPECT_TRUE(w->process().running()) << w->log();

    // A person compares the codes and approves.
    run_colony({"node", "approve", code, "--config-dir", config}, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(wait_health(serve->api_port(), "ok", 30000)) << serve->log() << w->log();
    EXPECT_EQ(cluster_node(serve->api_port(), "w1").value("pairing_code", ""), code);
    EXPECT_TRUE(contains(w->log(), "pairing confirmed")) << w->log();
    EXPECT_EQ(complete_greedy(serve->api_port(), kPrompt, 8),
              complete_greedy(serve->api_port(), kPrompt, 8));

    // Restart both on the same config dirs: the pinned key joins without asking.
    w.reset();
    serve.reset();
    serve = std::make_unique<ServeProcess>(
        dir.file("coordinator2"), model, 1,
        std::vector<std::string>{"--confirm-pairing", "--config-dir", config});
    w = std::make_unique<JoinProcess>(dir.file("w1"), serve->coordinator(), serve->token());
    ASSERT_TRUE(wait_health(serve->api_port(), "ok", 30000)) << serve->log() << w->log();
    EXPECT_FALSE(contains(serve->log(), "asks to join")) << serve->log();
    EXPECT_FALSE(contains(w->log(), "waits for a person")) << w->log();
    EXPECT_TRUE(contains(serve->log(), "pairing code " + code)) << serve->log();
}

/// A three-stage pipeline (the coordinator, w1, w2) with a spare (w3), as in
/// cluster_recovery_test.cpp: bit-exact stages, so a recovered stream has
/// exactly the fault-free text.
struct SpareCluster {
    TempDir dir;
    std::unique_ptr<ServeProcess> serve;
    std::vector<std::unique_ptr<JoinProcess>> workers;

    explicit SpareCluster(const std::string &model) {
        serve = std::make_unique<ServeProcess>(
            dir.file("coordinator"), model, 2,
            std::vector<std::string>{"--split", "0:2,2:4,4:5", "--wire-type", "f32", "--parallel",
                                     "2", "--batch-invariant"});
        for (int i = 1; i <= 3; ++i) {
            workers.push_back(std::make_unique<JoinProcess>(
                dir.file("w" + std::to_string(i)), serve->coordinator(), serve->token(),
                std::vector<std::string>{"--batch-invariant"}));
            if (i == 2)
                EXPECT_TRUE(wait_health(serve->api_port(), "ok", 60000)) << logs();
        }
    }
    /// Index in workers of the worker whose stage starts at block `first`.
    int holder_of(uint32_t first) const {
        return worker_holding(serve->api_port(), first, workers.size());
    }
    std::string logs() const {
        std::string out = "coordinator:\n" + serve->log();
        for (size_t i = 0; i < workers.size(); ++i)
            out += "\nw" + std::to_string(i + 1) + ":\n" + workers[i]->log();
        return out;
    }
};

nlohmann::json long_request() {
    return {{"prompt", kPrompt}, {"max_tokens", kTokens}, {"temperature", 0}, {"ignore_eos", true}};
}

TEST(PipelinePairing, RevokedNodeIsDroppedWithinAHeartbeatAndTheStreamGoesOn) {
    const std::string model = model_path("stories260K-f32.gguf");
    SpareCluster c(model);
    const uint16_t port = c.serve->api_port();
    const std::string config = c.serve->config_dir().string();
    const StreamReply clean = http_stream(port, long_request());
    ASSERT_EQ(clean.error, "") << c.logs();
    const int middle = c.holder_of(2);
    ASSERT_GE(middle, 0) << http_get(port, "/v1/cluster").body.dump(1);
    JoinProcess &victim = *c.workers[middle];
    const std::string id = node_id(victim);

    // Revoke the middle stage's node while a stream runs through it.
    std::promise<void> reached;
    bool fired = false;
    std::chrono::steady_clock::time_point revoked_at;
    auto revoke = std::async(std::launch::async, [&, f = reached.get_future()] {
        if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready || !fired)
            return -1;
        int rc = -1;
        run_colony({"node", "revoke", id, "--config-dir", config}, &rc);
        revoked_at = std::chrono::steady_clock::now();
        return rc;
    });
    const StreamReply r = http_stream(port, long_request(), 120, [&](int n) {
        if (!fired && n >= 40) {
            fired = true;
            reached.set_value();
        }
    });
    if (!fired)
        reached.set_value();
    ASSERT_EQ(revoke.get(), 0) << c.logs();

    // The revoked worker is told, exits with 77 and does not join again.
    ASSERT_TRUE(victim.process().wait(10000)) << victim.log();
    const double exit_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - revoked_at)
            .count();
    EXPECT_EQ(victim.process().exit_code(), 77) << victim.log();
    EXPECT_TRUE(contains(victim.log(), "the coordinator revoked this worker: node key revoked"))
        << victim.log();
    // The coordinator dropped it within one heartbeat interval of the file change.
    const std::string dropped =
        first_match(c.serve->log(), "node key revoked; dropped ([0-9-]+) ms after the nodes file");
    ASSERT_FALSE(dropped.empty()) << c.serve->log();
    std::printf(
        "revoked node dropped %s ms after the nodes file changed; worker exited %.0f ms "
        "after `colony node revoke` returned\n",
        dropped.c_str(), exit_ms);
    EXPECT_GE(std::stoi(dropped), 0);
    EXPECT_LE(std::stoi(dropped), kHeartbeatMs + 250);  // + the 50 ms poll and a loaded machine
    EXPECT_LT(exit_ms, 5000);

    // The stream finished on the spare with the fault-free text.
    EXPECT_EQ(r.status, 200) << c.logs();
    EXPECT_EQ(r.error, "") << c.logs();
    EXPECT_EQ(r.completion_tokens, kTokens);
    EXPECT_EQ(r.text, clean.text) << c.logs();
    const nlohmann::json lost = cluster_node(port, "w" + std::to_string(middle + 1));
    EXPECT_EQ(lost.value("state", ""), "lost") << lost.dump(1);
    EXPECT_TRUE(contains(lost.value("detail", ""), "revoked")) << lost.dump(1);
    EXPECT_TRUE(wait_health(port, "ok", 30000)) << c.logs();

    // Started again, it is refused at once.
    const std::filesystem::path vdir = victim.config_dir().parent_path();
    JoinProcess again(vdir, c.serve->coordinator(), c.serve->token(), {"--join-timeout", "20"});
    ASSERT_TRUE(again.process().wait(20000)) << again.log();
    EXPECT_EQ(again.process().exit_code(), 77) << again.log();
    EXPECT_TRUE(contains(again.log(), "is revoked on this coordinator")) << again.log();
    int rc = -1;
    EXPECT_TRUE(
        contains(run_colony({"node", "list", "--config-dir", config}, &rc), id + "  revoked "));
}

}  // namespace
}  // namespace colony::test
