// plan_optimal on hand-made clusters: who is left out and why, memory-poor
// clusters, errors, options, and speed on realistic sizes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "cluster/planner.h"
#include "cluster_fixtures.h"
#include "util/error.h"

namespace colony {
namespace {

using test::device;
using test::full_mesh;
using test::kGiB;
using test::kMiB;
using test::uniform_model;

PlannerInput two_devices(double fast_ms, double slow_ms) {
    PlannerInput in;
    in.model = uniform_model(28);
    in.devices = {device("fast", fast_ms, 8 * kGiB), device("slow", slow_ms, 8 * kGiB)};
    in.links = full_mesh({"fast", "slow"}, 10, 1e7);
    in.options.coordinator_id = "fast";
    return in;
}

const PlanExclusion &left_out(const Plan &plan, const std::string &id) {
    for (const PlanExclusion &e : plan.left_out) {
        if (e.node_id == id)
            return e;
    }
    throw std::runtime_error(id + " is not left out");
}

std::string expect_error(const PlannerInput &in, ErrorCode code) {
    try {
        plan_optimal(in);
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), code) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "plan_optimal did not throw";
    return "";
}

TEST(Planner, SlowDeviceIsLeftOutWhenItWouldAddTime) {
    const PlannerInput in = two_devices(1.0, 5.0);
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    EXPECT_EQ(plan.stages[0].node_id, "fast");
    EXPECT_EQ(plan.stages[0].layers, (LayerRange{0, 28}));
    EXPECT_DOUBLE_EQ(plan.predicted_ms_per_token, 28.0);  // coordinator computes: no hops
    // Best plan with "slow": it takes one block at either end, one hidden-state
    // hop (5 ms + 8 KiB at 10 MB/s) and one token hop (5 ms + 64 B).
    const double with_slow = 27 + 5 + (5 + 8192 / 1e7 * 1000) + (5 + 64 / 1e7 * 1000);
    char reason[64];
    std::snprintf(reason, sizeof reason, "would add %.2f ms per token", with_slow - 28.0);
    EXPECT_EQ(left_out(plan, "slow").reason, reason);
}

TEST(Planner, SkippedBlocksCostNeitherTimeNorMemory) {
    PlannerInput in = two_devices(1.0, 5.0);
    in.model.layer_skipped.assign(28, 0);
    for (int l = 10; l < 20; ++l)
        in.model.layer_skipped[l] = 1;  // --skip-layers 10-19
    // 18 computed blocks on the coordinator, which alone holds them: 28 x
    // 100 MiB would not fit 2.5 GiB, 18 x 100 MiB and the extras do
    in.devices[0].mem_available_bytes = 2560 * kMiB;
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    EXPECT_EQ(plan.stages[0].layers, (LayerRange{0, 28}));
    EXPECT_DOUBLE_EQ(plan.predicted_ms_per_token, 18.0);
    in.model.layer_skipped.clear();
    EXPECT_NE(plan_optimal(in).stages.size(), 1u);  // without skipping it needs "slow" too
    in.model.layer_skipped.assign(27, 0);
    expect_error(in, ErrorCode::kInvalidArgument);  // one entry per block or none
}

TEST(Planner, ADeviceWithItsOwnKvCacheTypeIsPlannedWithItsKvBytes) {
    PlannerInput in = two_devices(1.0, 5.0);
    in.model.n_ctx = 65536;  // f16 KV: 1024 B x 64 Ki tokens = 64 MiB per block
    // "fast" runs a 4-bit KV cache (-ctk/-ctv q4_0): a quarter of the bytes,
    // 28 x (100 + 16) MiB + 500 MiB of extras fit 4000 MiB, 28 x 164 would not
    in.devices[0].mem_available_bytes = 4000 * kMiB;
    in.devices[0].kv_bytes_per_token_per_layer = 256;
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    EXPECT_EQ(plan.stages[0].node_id, "fast");
    EXPECT_EQ(plan.stages[0].memory_bytes, 28 * 116 * kMiB + 500 * kMiB);
    in.devices[0].kv_bytes_per_token_per_layer = 0;  // the model's (f16) KV bytes
    EXPECT_EQ(plan_optimal(in).stages.size(), 2u);
}

TEST(Planner, FasterRemoteDeviceServesForASlowCoordinator) {
    PlannerInput in = two_devices(5.0, 1.0);  // the coordinator "fast" is now the slow one
    in.links = full_mesh({"fast", "slow"}, 2, 1e8);
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    EXPECT_EQ(plan.stages[0].node_id, "slow");
    EXPECT_NEAR(plan.predicted_ms_per_token, 28 + 2 * (1 + 64 / 1e8 * 1000), 1e-9);
    EXPECT_EQ(left_out(plan, "fast").reason.rfind("would add", 0), 0u);
}

TEST(Planner, CoordinatorMustParticipateWhenAsked) {
    PlannerInput in = two_devices(5.0, 1.0);
    in.options.coordinator_must_participate = true;
    const Plan plan = plan_optimal(in);
    bool has_coordinator = false;
    for (const PlanStage &s : plan.stages)
        has_coordinator |= s.node_id == "fast";
    EXPECT_TRUE(has_coordinator);
    // It takes a single block (the least time it can add).
    for (const PlanStage &s : plan.stages) {
        if (s.node_id == "fast") {
            EXPECT_EQ(s.layers.size(), 1);
        }
    }
}

TEST(Planner, MemoryPoorClusterStillPlacesTheModel) {
    // 28 x 101 MiB + 500 MiB = 3328 MiB; each device has 1.5 GiB, so no single
    // device and no pair can hold it, but three can.
    PlannerInput in;
    in.model = uniform_model(28);
    in.devices = {device("a", 1.0, 1536 * kMiB), device("b", 1.0, 1536 * kMiB),
                  device("c", 1.0, 1536 * kMiB)};
    in.links = full_mesh({"a", "b", "c"}, 1, 1e8);
    in.options.coordinator_id = "a";
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 3u);
    int next = 0;
    for (const PlanStage &s : plan.stages) {
        EXPECT_EQ(s.layers.first, next);
        next = s.layers.last;
        EXPECT_LE(s.memory_bytes, s.memory_available_bytes) << s.node_id;
    }
    EXPECT_EQ(next, 28);
    EXPECT_TRUE(plan.left_out.empty());
}

TEST(Planner, ThrowsResourceWhenTheModelDoesNotFit) {
    PlannerInput in;
    in.model = uniform_model(28);
    in.devices = {device("a", 1.0, kGiB), device("b", 1.0, kGiB)};
    in.links = full_mesh({"a", "b"}, 1, 1e8);
    const std::string msg = expect_error(in, ErrorCode::kResource);
    EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
    EXPECT_NE(msg.find("needs 3.25 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("have 2.00 GiB"), std::string::npos) << msg;
}

TEST(Planner, ThrowsResourceWhenBlocksDoNotPack) {
    // Three 100 MiB blocks, two devices of 150 MiB: 300 MiB in total, but each
    // device holds only one block.
    PlannerInput in;
    in.model = uniform_model(3);
    in.model.kv_bytes_per_token_per_layer = 0;
    in.model.first_stage_extra_bytes = in.model.last_stage_extra_bytes = 0;
    in.devices = {device("a", 1.0, 150 * kMiB), device("b", 1.0, 150 * kMiB)};
    in.links = full_mesh({"a", "b"}, 1, 1e8);
    const std::string msg = expect_error(in, ErrorCode::kResource);
    EXPECT_NE(msg.find("no placement fits"), std::string::npos) << msg;
}

TEST(Planner, DevicesWithoutALinkAreNeverNeighbours) {
    PlannerInput in;
    in.model = uniform_model(4);
    in.devices = {device("a", 1.0, 300 * kMiB + 200 * kMiB),
                  device("b", 1.0, 300 * kMiB + 300 * kMiB)};
    // Each holds two blocks with one extra; no link between them.
    EXPECT_NE(expect_error(in, ErrorCode::kResource).find("no placement fits"), std::string::npos);
    in.options.default_link = LinkProfile{"", "", 4, 1e7};
    const Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 2u);
    EXPECT_NEAR(plan.stages[0].hop_out_ms, 2 + 8192 / 1e7 * 1000, 1e-9);
}

TEST(Planner, LowBatteryNotChargingIsLeftOut) {
    PlannerInput in = two_devices(5.0, 1.0);
    in.devices[1].battery = BatteryState{12, false};
    Plan plan = plan_optimal(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    EXPECT_EQ(plan.stages[0].node_id, "fast");
    EXPECT_EQ(left_out(plan, "slow").reason, "battery low (12%) and not charging");

    in.devices[1].battery->charging = true;
    plan = plan_optimal(in);
    EXPECT_EQ(plan.stages[0].node_id, "slow");
}

TEST(Planner, HotDeviceIsLeftOutWithALimit) {
    PlannerInput in = two_devices(5.0, 1.0);
    in.devices[1].temperature_c = 81;
    EXPECT_EQ(plan_optimal(in).stages[0].node_id, "slow");  // no limit set
    in.options.max_temperature_c = 75;
    const Plan plan = plan_optimal(in);
    EXPECT_EQ(plan.stages[0].node_id, "fast");
    EXPECT_EQ(left_out(plan, "slow").reason, "too hot: 81 °C, limit 75 °C");
}

TEST(Planner, DeviceThatCannotHoldOneBlockSaysHowMuchItNeeds) {
    PlannerInput in = two_devices(1.0, 0.5);
    in.devices[1].mem_available_bytes = 50 * kMiB;
    in.devices[1].headroom_bytes = 10 * kMiB;
    const Plan plan = plan_optimal(in);
    EXPECT_EQ(left_out(plan, "slow").reason,
              "not enough memory: needs 111.0 MiB for one layer with its KV cache and headroom, "
              "has 50.0 MiB");
}

TEST(Planner, ThroughputObjectiveSplitsAcrossEqualDevices) {
    PlannerInput in;
    in.model = uniform_model(28);
    in.devices = {device("a", 1.0, 8 * kGiB), device("b", 1.0, 8 * kGiB)};
    in.links = full_mesh({"coord", "a", "b"}, 1, 1e9);
    in.options.coordinator_id = "coord";
    const Plan latency = plan_optimal(in);
    EXPECT_EQ(latency.stages.size(), 1u);  // a split only adds a hop to one token's path

    in.options.objective = PlanObjective::kThroughput;
    const Plan throughput = plan_optimal(in);
    ASSERT_EQ(throughput.stages.size(), 2u);
    EXPECT_EQ(throughput.stages[0].layers, (LayerRange{0, 14}));
    EXPECT_EQ(throughput.stages[1].layers, (LayerRange{14, 28}));
    EXPECT_LT(throughput.predicted_ms_per_token, 15.0);
    EXPECT_DOUBLE_EQ(throughput.predicted_ms_per_token, throughput.bottleneck_ms_per_token);
}

TEST(Planner, ComparesAtMostMaxDevicesAndSaysSo) {
    PlannerInput in;
    in.model = uniform_model(8);
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) {
        ids.push_back("d" + std::to_string(i));
        in.devices.push_back(device(ids.back(), 1.0 + i, 8 * kGiB));
    }
    in.links = full_mesh(ids, 1, 1e8);
    in.options.max_devices = 3;
    const Plan plan = plan_optimal(in);
    for (const char *id : {"d3", "d4", "d5"}) {
        EXPECT_EQ(left_out(plan, id).reason.rfind("not compared", 0), 0u) << id;
    }
}

TEST(Planner, RejectsBadInput) {
    PlannerInput in = two_devices(1.0, 2.0);
    in.devices[1].node_id = "fast";
    EXPECT_NE(expect_error(in, ErrorCode::kInvalidArgument).find("appears twice"),
              std::string::npos);

    in = two_devices(1.0, 2.0);
    in.model.layer_weight_bytes.pop_back();
    EXPECT_NE(expect_error(in, ErrorCode::kInvalidArgument).find("layer_weight_bytes"),
              std::string::npos);

    in = two_devices(1.0, 2.0);
    in.model.n_ctx = 0;
    expect_error(in, ErrorCode::kInvalidArgument);

    in = two_devices(1.0, 2.0);
    in.devices[0].decode_ms_per_layer = 0;
    EXPECT_NE(expect_error(in, ErrorCode::kInvalidArgument).find("decode_ms_per_layer"),
              std::string::npos);

    in = two_devices(1.0, 2.0);
    in.options.coordinator_id = "nobody";
    in.options.coordinator_must_participate = true;
    expect_error(in, ErrorCode::kInvalidArgument);

    in = two_devices(1.0, 2.0);
    in.devices.clear();
    expect_error(in, ErrorCode::kResource);
}

TEST(Planner, EpochAndMethodAreRecorded) {
    PlannerInput in = two_devices(1.0, 5.0);
    in.options.epoch = 42;
    const Plan plan = plan_optimal(in);
    EXPECT_EQ(plan.epoch, 42u);
    EXPECT_EQ(plan.method, PlanMethod::kOptimal);
    EXPECT_EQ(plan.coordinator_id, "fast");
}

/// Realistic size: 8 heterogeneous devices, 128 blocks, roomy and
/// memory-poor, both objectives: tens of ms in a release build on an idle
/// machine, and 10 devices (the default cap) well under a second. The bounds
/// are generous (other tests share the cores): they catch a search that
/// blows up, not a slow machine; each run prints its margin.
TEST(Planner, RealisticSizesPlanWithinGenerousBounds) {
    for (auto [k, max_gib] :
         {std::pair{8, 16}, std::pair{8, 4}, std::pair{10, 16}, std::pair{10, 4}}) {
        std::mt19937_64 rng(7);
        PlannerInput in;
        in.model = uniform_model(128);  // 13.1 GiB in all
        std::vector<std::string> ids = {"coord"};
        for (int i = 0; i < k; ++i) {
            ids.push_back(std::string("n").append(
                std::to_string(i)));  // GCC 12 -Wrestrict false positive on "n" + s
            const double ms = std::uniform_real_distribution<double>(0.2, 3.0)(rng);
            const uint64_t mem = std::uniform_int_distribution<uint64_t>(2, max_gib)(rng) * kGiB;
            in.devices.push_back(device(ids.back(), ms, mem));
        }
        in.links = full_mesh(ids, 3, 5e7);
        in.options.coordinator_id = "coord";
        for (PlanObjective objective : {PlanObjective::kLatency, PlanObjective::kThroughput}) {
            in.options.objective = objective;
            const auto t0 = std::chrono::steady_clock::now();
            const Plan plan = plan_optimal(in);
            const double s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // Up to ~8 devices is the realistic size; 10 is the default cap.
            const double allowed_s = k <= 8 ? 20.0 : 60.0;
            std::printf(
                "%d devices (2..%d GiB), 128 layers, %s: %zu stages, %.2f ms per token, "
                "planned in %.3f s of the %.0f s allowed\n",
                k, max_gib, plan_objective_name(objective), plan.stages.size(),
                plan.predicted_ms_per_token, s, allowed_s);
            EXPECT_LT(s, allowed_s);
            EXPECT_EQ(plan.stages.size() + plan.left_out.size(), static_cast<size_t>(k));
        }
    }
}

}  // namespace
}  // namespace colony
