// Run-time reports of the nodes (pipeline/node_status.h): the STATUS JSON a
// worker sends in answer to a heartbeat, its validation on the coordinator,
// the link round trip measured from the echoed timestamp, and lost members.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "pipeline/node_status.h"
#include "util/error.h"

namespace colony {
namespace {

using nlohmann::json;

NodeRuntime sample_runtime() {
    NodeRuntime r;
    r.phase = "ready";
    r.progress = 1;
    r.plan_epoch = 3;
    r.stage.range = {2, 5};
    r.stage.loaded = true;
    r.stage.load_progress = 1;
    r.stage.ubatches = 40;
    r.stage.compute_seconds = 0.25;
    r.stage.hops = 39;
    r.stage.hop_seconds = 0.002;
    r.stage.kv_used_cells = 17;
    r.stage.kv_size_cells = 4096;
    r.stage.weights_bytes = 700000;
    r.stage.kv_bytes = 65536;
    r.stage.tokens_per_s = 12.5;
    r.host = "phone";
    r.device = "Cortex-A76";
    r.os = "Android (Termux) 5.10";
    r.arch = "aarch64";
    r.rss_bytes = 123456789;
    r.available_bytes = 987654321;
    r.battery = BatteryState{78, false};
    r.temperature_c = 41.5;
    return r;
}

int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

TEST(NodeStatus, RuntimeRoundTripsThroughJson) {
    const NodeRuntime r = sample_runtime();
    const std::optional<NodeRuntime> back = node_runtime_from_json(node_runtime_to_json(r));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->phase, "ready");
    EXPECT_EQ(back->plan_epoch, 3u);
    EXPECT_EQ(back->stage.range, (LayerRange{2, 5}));
    EXPECT_TRUE(back->stage.loaded);
    EXPECT_EQ(back->stage.ubatches, 40u);
    EXPECT_DOUBLE_EQ(back->stage.compute_seconds, 0.25);
    EXPECT_EQ(back->stage.hops, 39u);
    EXPECT_EQ(back->stage.kv_used_cells, 17u);
    EXPECT_EQ(back->stage.kv_size_cells, 4096u);
    EXPECT_EQ(back->stage.weights_bytes, 700000u);
    EXPECT_DOUBLE_EQ(back->stage.tokens_per_s, 12.5);
    EXPECT_EQ(back->device, "Cortex-A76");
    EXPECT_EQ(back->rss_bytes, 123456789u);
    EXPECT_EQ(back->available_bytes, 987654321u);
    ASSERT_TRUE(back->battery.has_value());
    EXPECT_DOUBLE_EQ(back->battery->percent, 78);
    EXPECT_FALSE(back->battery->charging);
    EXPECT_DOUBLE_EQ(*back->temperature_c, 41.5);
}

TEST(NodeStatus, StatusWithoutARuntimePartIsNotOurs) {
    EXPECT_FALSE(node_runtime_from_json(R"({"profile":{"node_id":"x"}})").has_value());
}

TEST(NodeStatus, MalformedReportsAreRefusedNamingTheField) {
    auto refuse = [](const std::function<void(json &)> &edit, const std::string &field) {
        json j = json::parse(node_runtime_to_json(sample_runtime()));
        edit(j["runtime"]);
        try {
            (void)node_runtime_from_json(j.dump());
            ADD_FAILURE() << "accepted a bad " << field;
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kProtocol);
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    };
    refuse([](json &r) { r["phase"] = "dancing"; }, "phase");
    refuse([](json &r) { r["progress"] = 1.5; }, "progress");
    refuse([](json &r) { r["stage"]["kv_used_cells"] = 5000; }, "kv_used_cells");
    refuse([](json &r) { r["stage"]["compute_seconds"] = -1; }, "compute_seconds");
    refuse([](json &r) { r["stage"]["last"] = 1; }, "stage.last");
    refuse([](json &r) { r["stage"].erase("ubatches"); }, "ubatches");
    refuse([](json &r) { r["device"] = std::string(300, 'x'); }, "device");
    refuse([](json &r) { r["host"] = "a\nb"; }, "host");
    refuse([](json &r) { r["battery"]["percent"] = 140; }, "battery.percent");
    refuse([](json &r) { r["temperature_c"] = 900; }, "temperature_c");
    refuse([](json &r) { r["echo_ns"] = "soon"; }, "echo_ns");
    EXPECT_THROW((void)node_runtime_from_json("{not json"), Error);
    EXPECT_THROW((void)node_runtime_from_json("[1,2]"), Error);
}

TEST(NodeStatus, WorkerStatusReportsItsPhase) {
    const auto now = std::chrono::steady_clock::now();
    StageRuntime stage;
    stage.load_progress = 0.4;
    auto phase = [&](uint64_t assigned, std::optional<std::pair<uint64_t, uint64_t>> dl,
                     uint64_t loaded, const std::string &err) {
        const WireStatus st = worker_runtime_status(77, now, assigned, dl, loaded, err, stage);
        return *node_runtime_from_json(st.json);
    };
    EXPECT_EQ(phase(0, std::nullopt, 0, "").phase, "waiting");
    const NodeRuntime dl = phase(2, std::make_pair(uint64_t(250), uint64_t(1000)), 0, "");
    EXPECT_EQ(dl.phase, "downloading");
    EXPECT_DOUBLE_EQ(dl.progress, 0.25);
    const NodeRuntime loading = phase(2, std::nullopt, 0, "");
    EXPECT_EQ(loading.phase, "loading");
    EXPECT_DOUBLE_EQ(loading.progress, 0.4);
    EXPECT_EQ(phase(2, std::nullopt, 2, "").phase, "ready");
    const NodeRuntime failed = phase(2, std::nullopt, 0, "out of memory");
    EXPECT_EQ(failed.phase, "failed");
    EXPECT_EQ(failed.error, "out of memory");
    EXPECT_EQ(failed.echo_ns, 77u);
    EXPECT_GE(failed.hold_us, 0);
    EXPECT_FALSE(failed.host.empty());
    EXPECT_GT(failed.rss_bytes, 0u);
}

TEST(NodeStatus, ThreadsTravelWithTheReportAndAreChecked) {
    const auto now = std::chrono::steady_clock::now();
    const WireStatus st = worker_runtime_status(1, now, 2, std::nullopt, 2, "", StageRuntime{},
                                                FenceCounts{}, NodeThreads{2, "4-7", true});
    const NodeRuntime r = *node_runtime_from_json(st.json);
    EXPECT_EQ(r.threads.n, 2);
    EXPECT_EQ(r.threads.cores, "4-7");
    EXPECT_TRUE(r.threads.thermal_limited);

    json doc = json::parse(st.json);
    doc["runtime"].erase("threads");  // a worker from before thread placement
    EXPECT_EQ(node_runtime_from_json(doc.dump())->threads.n, 0);
    doc["runtime"]["threads"] = {{"n", 99999}, {"cores", ""}, {"thermal_limited", false}};
    EXPECT_THROW((void)node_runtime_from_json(doc.dump()), Error);
    doc["runtime"]["threads"] = {{"n", 2}, {"cores", "0-3\n"}, {"thermal_limited", "yes"}};
    EXPECT_THROW((void)node_runtime_from_json(doc.dump()), Error);
    doc["runtime"]["threads"] = 4;
    EXPECT_THROW((void)node_runtime_from_json(doc.dump()), Error);
}

TEST(NodeStatus, BoardMeasuresTheRoundTripFromTheEchoedHeartbeat) {
    NodeReports board;
    NodeRuntime r = sample_runtime();
    // the heartbeat left 30 ms ago, and the worker held it 2 ms
    r.echo_ns = static_cast<uint64_t>(steady_ns() - 30'000'000);
    r.hold_us = 2000;
    board.on_status(4, "worker-1", "KEY1", node_runtime_to_json(r));
    const std::vector<NodeReport> all = board.all();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].node_id, 4u);
    EXPECT_EQ(all[0].name, "worker-1");
    ASSERT_TRUE(all[0].rtt_ms.has_value());
    EXPECT_GE(*all[0].rtt_ms, 27.0);  // 30 ms waited, minus the 2 ms held
    EXPECT_LT(*all[0].rtt_ms, 2000.0);
    EXPECT_EQ(all[0].runtime.stage.kv_used_cells, 17u);

    // a heartbeat of the plan-time keepalive (timestamp 0) measures nothing
    NodeRuntime keepalive = sample_runtime();
    board.on_status(5, "worker-2", "KEY2", node_runtime_to_json(keepalive));
    // malformed reports change nothing
    board.on_status(5, "worker-2", "KEY2", R"({"runtime":{"phase":"x"}})");
    const std::vector<NodeReport> after = board.all();
    ASSERT_EQ(after.size(), 2u);
    const auto worker2 = std::find_if(after.begin(), after.end(),
                                      [](const NodeReport &n) { return n.node_id == 5; });
    ASSERT_NE(worker2, after.end()) << "the keepalive's report is on the board";
    EXPECT_EQ(worker2->name, "worker-2");
    EXPECT_FALSE(worker2->rtt_ms.has_value());
    EXPECT_EQ(worker2->runtime.phase, "ready") << "the malformed report replaced the good one";
}

TEST(NodeStatus, ALostMemberLeavesTheBoard) {
    NodeReports board;
    board.on_status(1, "worker-1", "KEY1", node_runtime_to_json(sample_runtime()));
    board.on_status(2, "worker-2", "KEY2", node_runtime_to_json(sample_runtime()));
    board.on_lost(1);
    board.on_lost(7);  // never reported: nothing happens
    const std::vector<NodeReport> all = board.all();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].node_id, 2u);
    EXPECT_EQ(all[0].key, "KEY2");
}

}  // namespace
}  // namespace colony
