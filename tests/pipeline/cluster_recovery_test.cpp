// Recovery (DESIGN.md, decision 10; batch_scheduler.h): a stage that is lost
// while requests run costs a pause, never a request. Each test runs a
// three-stage pipeline (`colony serve --split 0:2,2:4,4:5` and two `colony
// join` workers, sometimes a third as a spare) on 127.0.0.1, starts a long
// streamed request, does something bad to a worker mid-stream, and checks
// that the stream completes with exactly the text of a fault-free run, with
// no error event and the right usage. The negative control (recovery off)
// is PipelineLiveness.WithoutRecovery... in cluster_liveness_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 160;

struct Cluster {
    TempDir dir;
    std::unique_ptr<ServeProcess> serve;
    std::vector<std::unique_ptr<JoinProcess>> workers;  // by join order: w1, w2, spare

    Cluster(const std::string &model, int n_workers, const std::vector<std::string> &extra = {}) {
        // bit-exact stages: the text after a recovery must be the text without
        // one (runtime/stage.h, Invariance::kFull)
        std::vector<std::string> args = {"--split",    "0:2,2:4,4:5", "--wire-type",      "f32",
                                         "--parallel", "2",           "--batch-invariant"};
        args.insert(args.end(), extra.begin(), extra.end());
        serve = std::make_unique<ServeProcess>(dir.file("coordinator"), model, 2, args);
        for (int i = 0; i < n_workers; ++i) {
            add_worker("w" + std::to_string(i + 1));
            if (i == 1) {  // the plan takes w1 and w2; a third joins as a spare
                EXPECT_TRUE(wait_health(serve->api_port(), "ok", 60000)) << logs();
            }
        }
        if (n_workers == 2)
            EXPECT_TRUE(wait_health(serve->api_port(), "ok", 60000)) << logs();
    }
    void add_worker(const std::string &name) {
        workers.push_back(
            std::make_unique<JoinProcess>(dir.file(name), serve->coordinator(), serve->token(),
                                          std::vector<std::string>{"--batch-invariant"}));
    }
    /// The index in `workers` of the worker whose stage runs blocks from `first`.
    int holder_of(uint32_t first) const {
        return worker_holding(serve->api_port(), first, workers.size());
    }
    nlohmann::json recoveries() const {
        return http_get(serve->api_port(), "/v1/cluster")
            .body.value("recoveries", nlohmann::json());
    }
    std::string logs() const {
        std::string out = "coordinator:\n" + serve->log();
        for (size_t i = 0; i < workers.size(); ++i)
            out += "\nw" + std::to_string(i + 1) + ":\n" + workers[i]->log();
        return out;
    }
};

nlohmann::json long_request(const std::string &seed = "") {
    nlohmann::json r = {
        {"prompt", kPrompt}, {"max_tokens", kTokens}, {"temperature", 0}, {"ignore_eos", true}};
    if (!seed.empty()) {
        r["temperature"] = 0.8;
        r["seed"] = std::stoi(seed);
    }
    return r;
}

/// Streams `req`; after `at_chunk` chunks of text arrived, runs `fault` once
/// (on another thread, so the stream keeps being read).
StreamReply stream_with_fault(uint16_t port, const nlohmann::json &req, int at_chunk,
                              const std::function<void()> &fault) {
    std::promise<void> reached;
    bool fired = false;
    auto faulted = std::async(std::launch::async, [&, f = reached.get_future()]() mutable {
        if (f.wait_for(std::chrono::seconds(60)) == std::future_status::ready)
            fault();
    });
    StreamReply r = http_stream(port, req, 120, [&](int n) {
        if (!fired && n >= at_chunk) {
            fired = true;
            reached.set_value();
        }
    });
    if (!fired)
        reached.set_value();
    faulted.wait();
    return r;
}

void expect_clean(const StreamReply &r, const std::string &want, const std::string &logs) {
    EXPECT_EQ(r.status, 200) << logs;
    EXPECT_EQ(r.error, "") << logs;
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.completion_tokens, kTokens);
    EXPECT_EQ(r.text, want) << "the text after recovery is not the fault-free text\n" << logs;
    std::printf("largest pause between two chunks: %.0f ms\n", r.max_gap_ms);
}

TEST(PipelineRecovery, KilledMiddleWorkerIsReplacedByTheSpareAndTheStreamGoesOn) {
    const std::string model = model_path("stories260K-f32.gguf");
    Cluster c(model, 3);
    const uint16_t port = c.serve->api_port();
    const StreamReply clean = http_stream(port, long_request());
    ASSERT_EQ(clean.error, "") << c.logs();
    ASSERT_EQ(clean.completion_tokens, kTokens);
    const int middle = c.holder_of(2);
    ASSERT_GE(middle, 0) << http_get(port, "/v1/cluster").body.dump(1);
    // the spare stands by with the largest worker range, loaded (a hot spare)
    ASSERT_TRUE(eventually(
        [&] {
            for (const auto &n :
                 http_get(port, "/v1/cluster").body.value("nodes", nlohmann::json::array())) {
                if (n.value("name", "") == "w3" &&
                    n.value("detail", "").find("holds layers [2,4)") != std::string::npos)
                    return true;
            }
            return false;
        },
        20000))
        << http_get(port, "/v1/cluster").body.dump(1) << c.logs();

    const StreamReply r = stream_with_fault(port, long_request(), 40,
                                            [&] { c.workers[middle]->process().signal(SIGKILL); });
    expect_clean(r, clean.text, c.logs());
    const nlohmann::json rec = c.recoveries();
    ASSERT_EQ(rec.size(), 1u) << rec.dump(1);
    EXPECT_EQ(rec[0].value("lost", ""), "w" + std::to_string(middle + 1));
    EXPECT_EQ(rec[0].value("replacement", ""), "spare") << rec.dump(1);
    EXPECT_EQ(rec[0].value("requests_replayed", 0), 1);
    EXPECT_GT(rec[0].value("tokens_recomputed", 0), 40);
    EXPECT_GT(rec[0].value("resumed_unix_ms", int64_t{0}), 0);
    std::printf("recovery: %s\n", rec[0].dump().c_str());
    // the spare took the range: the cluster serves on
    EXPECT_TRUE(wait_health(port, "ok", 5000));
}

/// Streams `req` on a fault-free two-worker cluster, then again while the
/// last stage's worker is killed at chunk 40 and started again half a second
/// later (no spare): the text must be the fault-free one.
void kill_last_stage_mid_stream(const nlohmann::json &req) {
    const std::string model = model_path("stories260K-f32.gguf");
    Cluster c(model, 2);
    const uint16_t port = c.serve->api_port();
    const StreamReply clean = http_stream(port, req);
    ASSERT_EQ(clean.error, "") << c.logs();
    const int last = c.holder_of(4);
    ASSERT_GE(last, 0) << http_get(port, "/v1/cluster").body.dump(1);

    // It is started from a thread that lives until the end of the test: a
    // ChildProcess dies with the thread that started it (PR_SET_PDEATHSIG).
    std::promise<void> finished;
    std::thread restarter;
    const StreamReply r = stream_with_fault(port, req, 40, [&] {
        c.workers[last]->process().signal(SIGKILL);
        c.workers[last]->process().wait(5000);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        std::promise<void> started;
        restarter = std::thread([&, done = finished.get_future()] {
            c.workers[last] = std::make_unique<JoinProcess>(
                c.dir.file("w" + std::to_string(last + 1)), c.serve->coordinator(),
                c.serve->token(), std::vector<std::string>{"--batch-invariant"});
            started.set_value();
            done.wait();
        });
        started.get_future().wait();
    });
    expect_clean(r, clean.text, c.logs());
    finished.set_value();
    if (restarter.joinable())
        restarter.join();
    const nlohmann::json rec = c.recoveries();
    ASSERT_EQ(rec.size(), 1u) << rec.dump(1);
    EXPECT_FALSE(rec[0].value("failed", true));
}

TEST(PipelineRecovery, KilledLastStageRestartsAndASeededStreamKeepsItsText) {
    kill_last_stage_mid_stream(long_request("7"));
}

// The new last stage rebuilds the grammar's state from the replayed answer
// (Sampler::accept_generated) and skips the seed's draws: same text, still in
// the grammar's language.
TEST(PipelineRecovery, KilledLastStageKeepsAGrammarConstrainedSeededStream) {
    nlohmann::json req = long_request("11");
    // words of three letters, forever (never complete: no end-of-text): a
    // replay that lost the grammar's place puts the spaces elsewhere
    req["grammar"] = R"(root ::= [a-z] [a-z] [a-z] " " root)";
    req.erase("ignore_eos");
    kill_last_stage_mid_stream(req);
}

TEST(PipelineRecovery, AStoppedWorkerIsReplacedAndPutsNoStaleTokenInTheStream) {
    const std::string model = model_path("stories260K-f32.gguf");
    Cluster c(model, 3);
    const uint16_t port = c.serve->api_port();
    const StreamReply clean = http_stream(port, long_request());
    ASSERT_EQ(clean.error, "") << c.logs();
    const int middle = c.holder_of(2);
    ASSERT_GE(middle, 0);

    // SIGSTOP: silent, not gone. Detected by its missing heartbeats, replaced
    // by the spare; SIGCONT while the stream still runs: whatever it had in
    // flight belongs to the old plan's epoch and is dropped.
    const StreamReply r = stream_with_fault(port, long_request(), 30, [&] {
        ChildProcess &p = c.workers[middle]->process();
        p.signal(SIGSTOP);
        eventually([&] { return !c.recoveries().empty(); }, 20000);
        p.signal(SIGCONT);
    });
    expect_clean(r, clean.text, c.logs());
    const nlohmann::json rec = c.recoveries();
    ASSERT_GE(rec.size(), 1u);
    EXPECT_EQ(rec[0].value("replacement", ""), "spare") << rec.dump(1);
    // the stopped worker comes back as a member outside the plan
    EXPECT_TRUE(eventually(
        [&] {
            for (const auto &n :
                 http_get(port, "/v1/cluster").body.value("nodes", nlohmann::json::array())) {
                if (n.value("name", "") == "w" + std::to_string(middle + 1) &&
                    n.value("state", "") != "lost")
                    return true;
            }
            return false;
        },
        20000))
        << c.logs();
    // and the next request is still right
    EXPECT_EQ(http_stream(port, long_request()).text, clean.text);
}

}  // namespace
}  // namespace colony::test

namespace colony::test {
namespace {

// No spare: the measured planner moves the lost range onto the survivors.
// The coordinator may use too little memory to hold the model alone, so
// the plan needs workers; after the loss the coordinator and the remaining
// worker hold it between them.
TEST(PipelineRecovery, WithoutASpareTheSurvivorsTakeTheLostRange) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    ServeProcess serve(dir.file("coordinator"), model, 2,
                       {"--planner", "measured", "--mem-limit", "0.0012", "--wire-type", "f32",
                        "--parallel", "2", "--batch-invariant"});
    std::vector<std::unique_ptr<JoinProcess>> workers;
    for (const char *name : {"w1", "w2"}) {
        workers.push_back(
            std::make_unique<JoinProcess>(dir.file(name), serve.coordinator(), serve.token(),
                                          std::vector<std::string>{"--batch-invariant"}));
    }
    const uint16_t port = serve.api_port();
    auto logs = [&] {
        return serve.log() + "\nw1:\n" + workers[0]->log() + "\nw2:\n" + workers[1]->log();
    };
    auto stages = [&] {
        std::vector<std::string> names;
        for (const auto &n :
             http_get(port, "/v1/cluster").body.value("nodes", nlohmann::json::array())) {
            if (n.value("role", "") == "worker" && n["stage"].is_number() &&
                n.value("state", "") == "ready")
                names.push_back(n.value("name", ""));
        }
        return names;
    };
    // the measured plan, once every node has its profile: both workers take layers
    ASSERT_TRUE(
        eventually([&] { return wait_health(port, "ok", 100) && stages().size() == 2; }, 90000))
        << http_get(port, "/v1/cluster").body.dump(1) << logs();
    const StreamReply clean = http_stream(port, long_request());
    ASSERT_EQ(clean.error, "") << logs();
    const std::string victim = stages().front();
    const size_t v = victim == "w1" ? 0 : 1;
    const StreamReply r =
        stream_with_fault(port, long_request(), 40, [&] { workers[v]->process().signal(SIGKILL); });
    expect_clean(r, clean.text, logs());
    const nlohmann::json rec =
        http_get(port, "/v1/cluster").body.value("recoveries", nlohmann::json());
    ASSERT_EQ(rec.size(), 1u) << rec.dump(1);
    EXPECT_EQ(rec[0].value("lost", ""), victim);
    EXPECT_EQ(rec[0].value("replacement", ""), "replan") << rec.dump(1) << logs();
    EXPECT_EQ(stages().size(), 1u) << http_get(port, "/v1/cluster").body.dump(1);
}

}  // namespace
}  // namespace colony::test
