// The measured planner with emulated heterogeneity on one machine
// (docs/cluster.md): a coordinator and two workers as separate processes on
// loopback, each with one thread, on a synthetic Llama-shaped model written
// by `colony synth`. The coordinator may use 0.12 GiB (not the whole model),
// worker "slow" runs its stage 6x slower (--debug-slowdown), worker "mem" may
// use 0.09 GiB (--mem-limit). Checked:
//   - the measured plan leaves "slow" out and uses "mem", and the time per
//     token measured through the API is within 20 % of the plan's prediction
//     (the cost model over the stages' measured decode times);
//   - raising "mem"'s slow-down while a request runs (its control file)
//     triggers a re-plan within the drift window while the request runs,
//     the request completes with the single-process greedy text, and the
//     new plan no longer uses "mem" and serves that text too.
// colony synth failing, or a node that does not come up, is a failure with
// the output that explains it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "cluster/profile.h"
#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kLong = 300;  // tokens of the request that runs across a re-plan

/// The synthetic model of these tests (8 blocks of 13 MiB, a 35 MiB head):
/// compute, not loopback hops, dominates a token. colony synth is part of
/// the binary under test, so when it fails, returns "" and sets *why to its
/// output.
std::string write_model(const TempDir &dir, std::string *why) {
    const std::string model = dir.file("llama8.gguf");
    const std::string vocab =
        std::string(COLONY_TEST_LLAMA_DIR) + "/models/ggml-vocab-llama-spm.gguf";
    int rc = -1;
    std::string err;
    // clang-format off
    run_colony({"synth", "--preset", "llama-3.2-1b", "--vocab", vocab,
                "--layers", "8", "--embd", "1024", "--heads", "8", "--kv-heads", "4",
                "--ff", "3072", "--type", "Q8_0", "-o", model, "-q"},
               &rc, &err);
    // clang-format on
    if (rc == 0)
        return model;
    *why = "colony synth failed (exit " + std::to_string(rc) + "; vocab " + vocab +
           (std::filesystem::exists(vocab) ? "" : ", which does not exist") + "):\n" + err;
    return "";
}

nlohmann::json cluster_of(uint16_t api) {
    const HttpReply h = http_get(api, "/health");
    return h.body.is_object() && h.body.contains("cluster") ? h.body["cluster"]
                                                            : nlohmann::json::object();
}

/// The id of the node named `name` in a cluster view ("" when absent).
std::string id_of(const nlohmann::json &cluster, const std::string &name) {
    for (const auto &n : cluster.value("nodes", nlohmann::json::array())) {
        if (n.value("name", "") == name)
            return n.value("id", "");
    }
    return "";
}

/// The latest adopted re-plan record, or null.
nlohmann::json last_adopted(const nlohmann::json &cluster) {
    nlohmann::json found;
    for (const auto &r : cluster.value("replans", nlohmann::json::array())) {
        if (r.value("adopted", false))
            found = r;
    }
    return found;
}

/// Blocks that node `id` runs in a plan's JSON (0 when it has no stage).
int blocks_of(const nlohmann::json &plan, const std::string &id) {
    int n = 0;
    for (const auto &s : plan["stages"]) {
        if (s["node_id"] == id)
            n += s["last_layer"].get<int>() - s["first_layer"].get<int>() + 1;
    }
    return n;
}

/// Seconds of one completion of n tokens (the model's end token ignored).
double timed_completion(uint16_t api, int n) {
    const auto t0 = std::chrono::steady_clock::now();
    const HttpReply r = http_post(
        api, "/v1/completions",
        {{"prompt", kPrompt}, {"max_tokens", n}, {"temperature", 0}, {"ignore_eos", true}}, 120);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r.status != 200)
        throw std::runtime_error("completion failed: " + r.body.dump());
    return s;
}

/// The emulated cluster: coordinator "coord" (0.12 GiB), workers "slow" (6x)
/// and "mem" (0.09 GiB, slow-down in a control file).
struct Emulated {
    TempDir dir;
    std::string model;
    std::unique_ptr<ServeProcess> serve;
    std::unique_ptr<JoinProcess> slow, mem;
    std::string mem_control;
    std::string error;  // why start() failed

    /// Starts everything; false (with `error` saying why, logs included)
    /// when the model cannot be written or a node does not come up.
    bool start(const std::vector<std::string> &serve_extra,
               const std::vector<std::string> &worker_extra) {
        model = write_model(dir, &error);
        if (model.empty())
            return false;
        // f32 hidden states: on this model's random weights the greedy
        // argmax is so close that f16 rounding at a stage boundary changes
        // the second token already, and the texts are compared with
        // single-process colony generate.
        std::vector<std::string> extra = {"--planner",   "measured", "--mem-limit",       "0.12",
                                          "-c",          "1024",     "--parallel",        "1",
                                          "--name",      "coord",    "--replan-cooldown", "1",
                                          "--wire-type", "f32"};
        extra.insert(extra.end(), serve_extra.begin(), serve_extra.end());
        // The first plan is made when one worker joined ("slow"); "mem" joins
        // later as a spare, measures itself on a probe shard, and the measured
        // planner re-plans. One process measures itself at a time: on this
        // machine they share two cores, which real devices do not.
        serve = std::make_unique<ServeProcess>(dir.file("coordinator"), model, 1, extra);
        if (!wait_profile("coord"))
            return false;
        std::vector<std::string> s = {"--debug-slowdown", "6"};
        s.insert(s.end(), worker_extra.begin(), worker_extra.end());
        slow = std::make_unique<JoinProcess>(dir.file("slow"), serve->coordinator(), serve->token(),
                                             s);
        if (!wait_profile("slow"))
            return false;
        if (!wait_health(serve->api_port(), "ok", 60000)) {
            error = "the coordinator and \"slow\" did not become ready:\n" +
                    http_get(serve->api_port(), "/health").body.dump(1) + "\n" + logs();
            return false;
        }
        mem_control = dir.file("mem.ctl");
        std::ofstream(mem_control) << "1\n";
        std::vector<std::string> m = {"--mem-limit", "0.09", "--debug-control-file", mem_control};
        m.insert(m.end(), worker_extra.begin(), worker_extra.end());
        mem =
            std::make_unique<JoinProcess>(dir.file("mem"), serve->coordinator(), serve->token(), m);
        return true;
    }

    /// Waits (up to 60 s) until node `name` has a measured profile; false
    /// (with `error` set) when it does not.
    bool wait_profile(const std::string &name) {
        nlohmann::json c;
        const bool ok = eventually(
            [&] {
                c = cluster_of(serve->api_port());
                for (const auto &n : c.value("nodes", nlohmann::json::array())) {
                    if (n.value("name", "") == name && n["profile"].is_object())
                        return true;
                }
                return false;
            },
            60000);
        if (!ok)
            error = "node \"" + name + "\" has no measured profile after 60 s:\n" + c.dump(1) +
                    "\n" + logs();
        return ok;
    }

    std::string logs() const {
        return (serve ? serve->log() : "") + (slow ? slow->log() : "") + (mem ? mem->log() : "");
    }

    /// Waits until a measured plan is adopted and ready; returns the view.
    /// Waits until a measured plan that weighed every node (each one is in
    /// its stages or left out for a reason other than "not in the plan") is
    /// adopted and ready; returns the view. The first plan, made before
    /// "mem" measured itself, does not count.
    nlohmann::json wait_measured_plan(int timeout_ms) const {
        nlohmann::json c;
        auto weighs = [](const nlohmann::json &plan, const std::string &id) {
            for (const auto &n : plan.value("stages", nlohmann::json::array())) {
                if (!id.empty() && n.value("node_id", "") == id)
                    return true;
            }
            for (const auto &n : plan.value("left_out", nlohmann::json::array())) {
                if (!id.empty() && n.value("node_id", "") == id)
                    return n.value("reason", "") != "not in the plan";
            }
            return false;
        };
        eventually(
            [&] {
                c = cluster_of(serve->api_port());
                if (!c.value("ready", false) || c["plan"].is_null() ||
                    c["plan"].value("method", "") != "optimal")
                    return false;
                for (const char *name : {"coord", "slow", "mem"}) {
                    if (!weighs(c["plan"], id_of(c, name)))
                        return false;
                }
                return true;
            },
            timeout_ms);
        return c;
    }
};

/// One measurement of the time per generated token (the fastest of three
/// long-minus-short differences, ms) and the plan's prediction read after it.
struct PredictionRound {
    double measured = 0;
    double predicted = 0;
    std::vector<double> runs;
    nlohmann::json cluster;
};

PredictionRound measure_round(uint16_t api) {
    PredictionRound r;
    for (int i = 0; i < 3; ++i) {
        const double t_short = timed_completion(api, 8);
        const double t_long = timed_completion(api, 88);
        r.runs.push_back((t_long - t_short) / 80 * 1000);
    }
    std::sort(r.runs.begin(), r.runs.end());
    // the fastest of three: interference from other processes only slows a run down
    r.measured = r.runs[0];
    // The plan's prediction from the per-stage decode times measured while
    // these requests ran (the cost model: blocks x time per block + head +
    // hops).
    r.cluster = cluster_of(api);
    for (const auto &n : r.cluster["nodes"]) {
        if (n["stage"].get<int>() >= 0) {
            EXPECT_TRUE(n["measured_decode_ms_per_layer"].is_number())
                << n["name"] << " has no rolling measurement: " << r.cluster.dump(1);
        }
    }
    r.predicted = r.cluster["plan"]["latency_ms_per_token"].get<double>();
    return r;
}

TEST(PlannerEmulation, LeavesTheSlowWorkerOutAndPredictsTheTimePerToken) {
    Emulated e;
    ASSERT_TRUE(e.start({}, {})) << e.error;
    const uint16_t api = e.serve->api_port();
    const nlohmann::json c = e.wait_measured_plan(90000);
    ASSERT_EQ(c["plan"].value("method", ""), "optimal") << c.dump(1) << e.logs();
    const nlohmann::json &plan = c["plan"];
    const std::string slow = id_of(c, "slow"), mem = id_of(c, "mem"), coord = id_of(c, "coord");
    ASSERT_EQ(plan["stages"].size(), 2u) << plan.dump(1);
    EXPECT_EQ(plan["stages"][0]["node_id"], coord);
    EXPECT_EQ(plan["stages"][1]["node_id"], mem);
    ASSERT_EQ(plan["left_out"].size(), 1u) << plan.dump(1);
    EXPECT_EQ(plan["left_out"][0]["node_id"], slow);
    EXPECT_EQ(plan["left_out"][0]["reason"].get<std::string>().rfind("would add", 0), 0u)
        << plan.dump(1);
    // The coordinator cannot hold the model alone under its limit.
    EXPECT_LT(plan["stages"][0]["last_layer"].get<int>(), 8);
    const nlohmann::json adopted = last_adopted(c);
    ASSERT_FALSE(adopted.is_null()) << c.dump(1);
    const double at_adoption = adopted["candidate_ms"].get<double>();

    // Time per generated token: the difference of a long and a short
    // completion removes the prompt and the request's fixed costs.
    ASSERT_GT(timed_completion(api, 8), 0);  // warm-up
    // Up to three rounds, each a measurement and the prediction made from the
    // per-stage decode times measured while it ran. The CI machine is shared
    // with other jobs: a round whose speed changed between the rolling
    // measurement and the timed requests (CI once saw 1.20 against 0.9-1.0
    // on a quiet machine) is measured again. A cost model that is wrong fails
    // every round.
    double ratio = 0;
    nlohmann::json now;
    for (int round = 0; round < 3; ++round) {
        const PredictionRound r = measure_round(api);
        now = r.cluster;
        ratio = r.measured / r.predicted;
        std::printf(
            "round %d: plan predicted %.2f ms per token (%.2f at adoption), measured %.2f ms "
            "(runs: %.2f %.2f %.2f), ratio %.3f\n",
            round, r.predicted, at_adoption, r.measured, r.runs[0], r.runs[1], r.runs[2], ratio);
        if (std::abs(ratio - 1.0) <= 0.2)
            break;
    }
    EXPECT_NEAR(ratio, 1.0, 0.2) << now.dump(1);
}

TEST(PlannerEmulation, ThrottledWorkerTriggersAReplanAndTheRunningRequestCompletes) {
    Emulated e;
    constexpr double kWindowS = 3;
    // A margin of 5 %: "mem" at 8x makes a plan without it (or with fewer of
    // its blocks) some 10 % faster, so the default 10 % margin sat on the
    // edge on a loaded machine (a fresh-clone CI run kept the plan: 23.81
    // against 26.27 ms per token). This test is about the drift trigger and
    // the running request, not the margin (ReplanPolicy's units test it).
    ASSERT_TRUE(e.start({"--replan-window", "3", "--replan-margin", "0.05"},
                        {"--status-interval-ms", "500"}))
        << e.error;
    // the single-process greedy texts that every plan must give
    const std::string ref_long = reference_greedy(e.model, kPrompt, kLong);
    const std::string ref_short = reference_greedy(e.model, kPrompt, 16);
    const uint16_t api = e.serve->api_port();
    const nlohmann::json c = e.wait_measured_plan(90000);
    ASSERT_EQ(c["plan"].value("method", ""), "optimal") << c.dump(1) << e.logs();
    const std::string mem = id_of(c, "mem");
    ASSERT_EQ(c["plan"]["stages"].back()["node_id"], mem) << c["plan"].dump(1);
    const size_t records_before = c["replans"].size();

    // A long request; "mem" gets 8x slower while it runs, once its first
    // tokens came back through the pipeline (stage 0 holds more positions
    // than the prompt has tokens).
    auto request = std::async(std::launch::async, [api] {
        return http_post(
            api, "/v1/completions",
            {{"prompt", kPrompt}, {"max_tokens", kLong}, {"temperature", 0}, {"ignore_eos", true}},
            180);
    });
    ASSERT_TRUE(wait_coordinator_kv_cells(api, 32, 60000))
        << "the request generated nothing: " << http_get(api, "/v1/cluster").body.dump(1)
        << e.logs();
    ASSERT_EQ(request.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
        << "the request ended before the slow-down: " << request.get().body.dump();
    const int64_t throttled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
    std::ofstream(e.mem_control) << "8\n";

    // The drift is noticed within the window (plus the control file poll and
    // a STATUS interval or two).
    nlohmann::json drift;
    ASSERT_TRUE(eventually(
        [&] {
            const nlohmann::json now = cluster_of(api);
            const auto &records = now.value("replans", nlohmann::json::array());
            for (size_t i = records_before; i < records.size(); ++i) {
                if (records[i].value("trigger", "").find("measured") != std::string::npos &&
                    records[i].value("trigger", "").find(mem) != std::string::npos) {
                    drift = records[i];
                    return true;
                }
            }
            return false;
        },
        30000))
        << cluster_of(api).dump(1) << e.logs();
    const double after_s = (drift["time_unix_ms"].get<int64_t>() - throttled_ms) / 1000.0;
    constexpr double kAllowedS = kWindowS + 4.0;
    std::printf("re-plan %.1f s after the slow-down (%.1f s allowed): %s -> %s\n", after_s,
                kAllowedS, drift["trigger"].get<std::string>().c_str(),
                drift["decision"].get<std::string>().c_str());
    EXPECT_LE(after_s, kAllowedS) << drift.dump(1);
    // the request was still running when the re-plan was decided
    EXPECT_EQ(request.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
        << "the request ended before the re-plan: choose a longer one";

    // The running request completes on the plan it started on.
    ASSERT_EQ(request.wait_for(std::chrono::seconds(170)), std::future_status::ready)
        << cluster_of(api).dump(1) << e.logs();
    const HttpReply r = request.get();
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_EQ(r.body["usage"]["completion_tokens"], kLong) << r.body.dump();
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(kPrompt + r.body["choices"][0].value("text", "") + "\n", ref_long)
        << "the request that ran across the re-plan";

    // Then the new plan runs without "mem", and serves. The adoption is one
    // after the drift was noticed: when "mem" joined after the first measured
    // plan, an earlier adoption (of its join) names "mem" too.
    nlohmann::json after;
    ASSERT_TRUE(eventually(
        [&] {
            after = cluster_of(api);
            const nlohmann::json a = last_adopted(after);
            return after.value("ready", false) && !a.is_null() &&
                   a["trigger"].get<std::string>().find(mem) != std::string::npos &&
                   a["time_unix_ms"].get<int64_t>() >= drift["time_unix_ms"].get<int64_t>();
        },
        60000))
        << after.dump(1) << e.logs();
    // The new plan takes work away from "mem": usually it leaves "mem" out
    // ("slow" at 6x beats "mem" at 8x), but when "slow"'s start-up
    // measurement was inflated by other work on this machine's two cores, a
    // plan that keeps "mem" with fewer blocks is the right answer to what the
    // planner measured. Either way the adopted plan must be predicted faster
    // than the plan it replaced, under the same (throttled) measurements.
    const int blocks_before = blocks_of(c["plan"], mem);
    const int blocks_after = blocks_of(after["plan"], mem);
    std::printf("\"mem\" ran %d block(s) before the re-plan and %d after\n", blocks_before,
                blocks_after);
    EXPECT_LT(blocks_after, blocks_before) << after["plan"].dump(1);
    const nlohmann::json adopted = last_adopted(after);
    ASSERT_TRUE(adopted["current_ms"].is_number() && adopted["candidate_ms"].is_number())
        << adopted.dump(1);
    EXPECT_LT(adopted["candidate_ms"].get<double>(), adopted["current_ms"].get<double>())
        << adopted.dump(1);
    EXPECT_EQ(kPrompt + complete_greedy(api, kPrompt, 16) + "\n", ref_short) << "the new plan";
}

TEST(PlannerCli, PlanTableLeavesTheSlowDeviceOutAndListsEachDeviceAlone) {
    TempDir dir;
    const std::string model = model_path("stories260K-f32.gguf");
    // Three devices: fast, 10x slower, and one with too little memory for
    // the whole model (stories260K needs about 1.2 MB with a 256-token KV cache).
    auto device = [](const std::string &id, double ms, uint64_t mem) {
        DeviceProfile d;
        d.node_id = d.name = id;
        d.decode_ms_per_layer = ms;
        d.prefill_ms_per_layer_per_token = ms / 5;
        d.decode_ms_output = ms / 2;
        d.mem_available_bytes = mem;
        return device_profile_to_json(d);
    };
    const nlohmann::json devices =
        nlohmann::json::array({device("fast", 1.0, 1ull << 30), device("slow", 10.0, 1ull << 30),
                               device("poor", 1.0, 300000)});
    std::ofstream(dir.file("devices.json")) << devices.dump();
    int rc = -1;
    std::string err;
    const std::string out = run_colony({"plan", "-m", model, "--devices", dir.file("devices.json"),
                                        "--coordinator", "fast", "-c", "256", "--parallel", "1"},
                                       &rc, &err);
    ASSERT_EQ(rc, 0) << err;
    EXPECT_NE(out.find("left out: would add"), std::string::npos) << out;
    EXPECT_NE(out.find("each device alone:"), std::string::npos) << out;
    const size_t poor_alone = out.find("  poor ", out.find("each device alone:"));
    ASSERT_NE(poor_alone, std::string::npos) << out;
    EXPECT_EQ(out.find("cannot hold the model", poor_alone),
              out.find_first_not_of(' ', poor_alone + 6))
        << out;
    const std::string json =
        run_colony({"plan", "-m", model, "--devices", dir.file("devices.json"), "--coordinator",
                    "fast", "-c", "256", "--parallel", "1", "--json"},
                   &rc, &err);
    ASSERT_EQ(rc, 0) << err;
    const nlohmann::json plan = nlohmann::json::parse(json);
    ASSERT_GE(plan["stages"].size(), 1u);
    EXPECT_EQ(plan["stages"][0]["node_id"], "fast");  // the coordinator runs stage 0
    for (const auto &s : plan["stages"])
        EXPECT_NE(s["node_id"], "slow") << plan.dump(1);
}

TEST(PlannerCli, RejectsBadPlannerAndDebugOptions) {
    const std::string model = model_path("stories260K-f32.gguf");
    int rc = -1;
    std::string err;
    run_colony({"serve", "-m", model, "--workers-expected", "1", "--planner", "fancy"}, &rc, &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("--planner must be measured or static"), std::string::npos) << err;
    run_colony({"serve", "-m", model, "--workers-expected", "1", "--replan-margin", "1.5"}, &rc,
               &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("--replan-margin"), std::string::npos) << err;
    run_colony({"join", "--coordinator", "127.0.0.1:1", "--insecure", "--debug-slowdown", "0.5"},
               &rc, &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("--debug-slowdown must be in [1, 1000]"), std::string::npos) << err;
    run_colony({"discover", "--seconds", "0"}, &rc, &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("--discover-seconds"), std::string::npos) << err;
}

}  // namespace
}  // namespace colony::test
