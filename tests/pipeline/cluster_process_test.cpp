// Process lifetimes: `colony run`'s children die with it and its temporary
// directory goes away; a coordinator restarted on the same port and keys
// takes back the workers that kept running.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kGoneMs = 30000;  // generous: only matters when something is broken

/// The children of `colony run` (one coordinator and `workers` workers) and
/// the temporary directory they work in (the parent of the coordinator's
/// --config-dir's parent). Fails the test when they are not all there.
struct RunTree {
    std::vector<int> pids;
    std::filesystem::path dir;
};

RunTree run_tree(int run_pid, size_t workers) {
    RunTree t;
    eventually([&] { return child_pids(run_pid).size() == workers + 1; }, 30000);
    t.pids = child_pids(run_pid);
    EXPECT_EQ(t.pids.size(), workers + 1) << "colony run " << run_pid << " has the wrong children";
    size_t serves = 0, joins = 0;
    for (int pid : t.pids) {
        const auto args = process_cmdline(pid);
        if (args.size() > 1 && args[1] == "serve") {
            ++serves;
            t.dir =
                std::filesystem::path(arg_after(args, "--config-dir")).parent_path().parent_path();
        } else if (args.size() > 1 && args[1] == "join") {
            ++joins;
        }
    }
    EXPECT_EQ(serves, 1u);
    EXPECT_EQ(joins, workers);
    return t;
}

bool all_gone(const std::vector<int> &pids) {
    for (int pid : pids) {
        if (!process_gone(pid))
            return false;
    }
    return true;
}

std::vector<std::filesystem::path> run_dirs_in(const std::filesystem::path &tmp) {
    std::vector<std::filesystem::path> out;
    for (const auto &e : std::filesystem::directory_iterator(tmp)) {
        if (e.path().filename().string().rfind("colony-run-", 0) == 0)
            out.push_back(e.path());
    }
    return out;
}

TEST(PipelineProcess, RunStoppedBySigtermStopsItsChildrenAndRemovesItsDirectory) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    const std::filesystem::path tmp = dir.file("tmp");
    RunProcess run(dir.file("run"), model, {"--workers", "2", "--api-port", "0", "-t", "1"}, tmp);
    ASSERT_EQ(http_get(run.api_port(), "/health").body.value("status", ""), "ok") << run.output();
    const RunTree tree = run_tree(run.process().pid(), 2);
    ASSERT_TRUE(std::filesystem::is_directory(tree.dir)) << tree.dir;
    EXPECT_EQ(tree.dir.parent_path(), tmp);
    EXPECT_TRUE(std::filesystem::exists(tree.dir / "run.pid"));

    run.process().signal(SIGTERM);
    ASSERT_TRUE(run.process().wait(kGoneMs)) << run.output();
    EXPECT_EQ(run.process().exit_code(), 0) << run.output();
    EXPECT_TRUE(eventually([&] { return all_gone(tree.pids); }, kGoneMs));
    EXPECT_FALSE(std::filesystem::exists(tree.dir)) << tree.dir;
    EXPECT_TRUE(run_dirs_in(tmp).empty());
}

TEST(PipelineProcess, RunStartsAWorkerThatDiedAgainAndKeepsServing) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, 24);
    TempDir dir;
    const std::filesystem::path tmp = dir.file("tmp");
    std::filesystem::create_directories(tmp);
    RunProcess run(dir.file("run"), model, {"--workers", "2", "--api-port", "0", "-t", "1"}, tmp);
    EXPECT_EQ(kPrompt + complete_greedy(run.api_port(), kPrompt, 24) + "\n", ref);
    const RunTree before = run_tree(run.process().pid(), 2);
    int victim = -1;
    for (int pid : before.pids) {
        const auto args = process_cmdline(pid);
        if (args.size() > 1 && args[1] == "join")
            victim = pid;
    }
    ASSERT_GT(victim, 0);
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    // a new worker process takes its place, and the cluster serves on
    ASSERT_TRUE(eventually(
        [&] {
            const std::vector<int> now = child_pids(run.process().pid());
            return now.size() == 3 && std::find(now.begin(), now.end(), victim) == now.end();
        },
        kGoneMs))
        << run.output();
    EXPECT_TRUE(run.process().running()) << run.output();
    ASSERT_TRUE(wait_health(run.api_port(), "ok", 30000)) << run.output();
    EXPECT_EQ(kPrompt + complete_greedy(run.api_port(), kPrompt, 24) + "\n", ref);
    EXPECT_NE(run.output().find("starting it again"), std::string::npos) << run.output();
}

TEST(PipelineProcess, RunKilledTakesItsChildrenAlongAndTheNextRunRemovesItsDirectory) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    const std::filesystem::path tmp = dir.file("tmp");
    std::filesystem::path left;
    {
        RunProcess run(dir.file("run"), model, {"--workers", "2", "--api-port", "0", "-t", "1"},
                       tmp);
        const RunTree tree = run_tree(run.process().pid(), 2);
        ASSERT_TRUE(std::filesystem::is_directory(tree.dir)) << tree.dir;
        run.process().signal(SIGKILL);
        ASSERT_TRUE(run.process().wait(kGoneMs));
        // PR_SET_PDEATHSIG: the kernel kills every child with it
        EXPECT_TRUE(eventually([&] { return all_gone(tree.pids); }, kGoneMs));
        // A killed process removes nothing: its directory is left behind ...
        EXPECT_TRUE(std::filesystem::is_directory(tree.dir));
        left = tree.dir;
    }
    // ... until the next run, which removes it; a directory without run.pid
    // (as --keep-dir leaves) stays.
    const std::filesystem::path kept = tmp / "colony-run-kept00";
    std::filesystem::create_directories(kept / "coordinator");
    RunProcess next(dir.file("next"), model, {"--workers", "1", "--api-port", "0", "-t", "1"}, tmp);
    EXPECT_FALSE(std::filesystem::exists(left)) << left;
    EXPECT_TRUE(std::filesystem::is_directory(kept));
    EXPECT_NE(next.output().find("removed " + left.string()), std::string::npos) << next.output();
    EXPECT_EQ(run_dirs_in(tmp).size(), 2u);  // next's own and the kept one
}

TEST(PipelineProcess, ARestartedCoordinatorTakesBackTheWorkersThatKeptRunning) {
    // worker.h: a coordinator silent for --coordinator-timeout is presumed gone,
    // the worker drops its stage and joins again, so a coordinator restarted
    // with the same keys on the same port serves again without restarting them.
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, 24);
    const std::vector<std::string> split = {"--split", "0:1,1:3,3:5"};
    TempDir dir;
    auto first = std::make_unique<ServeProcess>(dir.file("coordinator"), model, 2, split);
    const std::string port = std::to_string(first->control_port());
    const std::string token = first->token();
    JoinProcess w1(dir.file("w1"), first->coordinator(), token);
    JoinProcess w2(dir.file("w2"), first->coordinator(), token);
    ASSERT_TRUE(wait_health(first->api_port(), "ok", 60000)) << first->log();
    EXPECT_EQ(kPrompt + complete_greedy(first->api_port(), kPrompt, 24) + "\n", ref);
    const int w1_pid = w1.process().pid(), w2_pid = w2.process().pid();

    first->process().signal(SIGKILL);
    ASSERT_TRUE(first->process().wait(kGoneMs));
    first.reset();
    // Same config dir (keys, token), same control port, a new process.
    std::vector<std::string> again_args = split;
    again_args.insert(again_args.end(), {"--port", port});
    ServeProcess second(dir.file("coordinator"), model, 2, again_args);
    EXPECT_EQ(second.token(), token) << "a restarted coordinator must accept the old token";
    ASSERT_TRUE(wait_health(second.api_port(), "ok", 90000))
        << second.log() << w1.log() << w2.log();
    EXPECT_TRUE(w1.process().running()) << w1.log();
    EXPECT_TRUE(w2.process().running()) << w2.log();
    EXPECT_EQ(w1.process().pid(), w1_pid);
    EXPECT_EQ(w2.process().pid(), w2_pid);
    for (const JoinProcess *w : {&w1, &w2}) {
        const std::string log = w->log();
        EXPECT_NE(log.find("joining again"), std::string::npos) << log;
        // they kept their shards: loaded from the cache, verified
        EXPECT_NE(log.find("shard cache hit"), std::string::npos) << log;
    }
    EXPECT_NE(second.log().find("worker 'w1' joined"), std::string::npos) << second.log();
    EXPECT_NE(second.log().find("worker 'w2' joined"), std::string::npos) << second.log();
    EXPECT_EQ(kPrompt + complete_greedy(second.api_port(), kPrompt, 24) + "\n", ref);
}

}  // namespace
}  // namespace colony::test
