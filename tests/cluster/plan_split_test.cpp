// The manual split parser, manual plans, the proportional baseline and
// re-prediction of a plan.
#include <gtest/gtest.h>

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

PlannerInput cluster(int n_layer, std::vector<DeviceProfile> devices) {
    PlannerInput in;
    in.model = uniform_model(n_layer);
    std::vector<std::string> ids;
    for (const DeviceProfile &d : devices)
        ids.push_back(d.node_id);
    in.devices = std::move(devices);
    in.links = full_mesh(ids, 2, 1e8);
    in.options.coordinator_id = ids.front();
    return in;
}

TEST(LayerSplit, ParsesValidSplits) {
    EXPECT_EQ(parse_layer_split("0:10,10:20,20:28", 28),
              (std::vector<LayerRange>{{0, 10}, {10, 20}, {20, 28}}));
    EXPECT_EQ(parse_layer_split(" 0 : 5 , 5:8 ", 8), (std::vector<LayerRange>{{0, 5}, {5, 8}}));
    EXPECT_EQ(parse_layer_split("0:1", 1), (std::vector<LayerRange>{{0, 1}}));
}

TEST(LayerSplit, RejectsBadSplitsWithTheOffendingRange) {
    struct Bad {
        const char *spec;
        const char *message_part;
    };
    const Bad bad[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"0:10,12:28", "starts at 12, expected 10 (ranges must be contiguous)"},
        {"0:10,5:28", "starts at 5, expected 10"},
        {"1:28", "expected 0 (the first range starts at 0)"},
        {"0:10,10:27", "covers layers 0..27, the model has 28"},
        {"0:10,10:30", "ends past the model's 28 layers"},
        {"0:0,0:28", "range 1 '0:0' is empty or reversed"},
        {"10:0", "empty or reversed"},
        {"0:10,", "range 2 '' is not first:last"},
        {",0:10", "range 1 '' is not first:last"},
        {"a:b", "not first:last"},
        {"-1:5", "not first:last"},
        {"+0:28", "not first:last"},
        {"0:10:20", "not first:last"},
        {"0-28", "not first:last"},
        {"0:99999999999999999999", "not first:last"},
        {"0:28 junk", "not first:last"},
    };
    for (const Bad &b : bad) {
        try {
            parse_layer_split(b.spec, 28);
            ADD_FAILURE() << "accepted '" << b.spec << "'";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            EXPECT_NE(std::string(e.what()).find(b.message_part), std::string::npos)
                << "'" << b.spec << "': " << e.what();
        }
    }
    EXPECT_THROW(parse_layer_split("0:1", 0), Error);
}

TEST(ManualPlan, BuildsTheGivenStages) {
    const PlannerInput in = cluster(
        28, {device("a", 1.0, 8 * kGiB), device("b", 2.0, 8 * kGiB), device("c", 1.0, 8 * kGiB)});
    const Plan plan = plan_manual(in, parse_layer_split("0:10,10:28", 28), {"b", "a"});
    EXPECT_EQ(plan.method, PlanMethod::kManual);
    ASSERT_EQ(plan.stages.size(), 2u);
    EXPECT_EQ(plan.stages[0].node_id, "b");
    EXPECT_EQ(plan.stages[1].layers, (LayerRange{10, 28}));
    // coordinator a -> b (token), b: 10 x 2 ms, b -> a (hidden), a: 18 x 1 ms, a is the
    // coordinator.
    const double expected = (1 + 64 / 1e8 * 1000) + 20 + (1 + 8192 / 1e8 * 1000) + 18;
    EXPECT_NEAR(plan.latency_ms_per_token, expected, 1e-9);
    ASSERT_EQ(plan.left_out.size(), 1u);
    EXPECT_EQ(plan.left_out[0].reason, "not in the manual split");
}

TEST(ManualPlan, RejectsUnknownNodesMismatchedCountsAndMemoryOverflow) {
    const PlannerInput in = cluster(28, {device("a", 1.0, 8 * kGiB), device("b", 2.0, kGiB)});
    const auto ranges = parse_layer_split("0:10,10:28", 28);
    EXPECT_THROW(plan_manual(in, ranges, {"a", "zz"}), Error);
    EXPECT_THROW(plan_manual(in, ranges, {"a"}), Error);
    EXPECT_THROW(plan_manual(in, ranges, {"a", "a"}), Error);
    try {
        plan_manual(in, ranges, {"a", "b"});  // b: 18 x 101 MiB + 300 MiB > 1 GiB
        ADD_FAILURE() << "accepted a stage that does not fit";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kResource);
        EXPECT_NE(std::string(e.what()).find("stage 1 on 'b' (layers 10..28) needs 2.07 GiB"),
                  std::string::npos)
            << e.what();
    }
}

TEST(ProportionalPlan, SplitsBySpeed) {
    const PlannerInput in = cluster(30, {device("a", 1.0, 8 * kGiB), device("b", 2.0, 8 * kGiB)});
    const Plan plan = plan_proportional(in);
    EXPECT_EQ(plan.method, PlanMethod::kProportional);
    ASSERT_EQ(plan.stages.size(), 2u);
    EXPECT_EQ(plan.stages[0].layers, (LayerRange{0, 20}));
    EXPECT_EQ(plan.stages[1].layers, (LayerRange{20, 30}));
}

TEST(ProportionalPlan, CapsByMemoryAndGivesTheRestToOthers) {
    // a holds its embedding (200 MiB) and ten 101 MiB blocks.
    const PlannerInput in =
        cluster(30, {device("a", 1.0, 1210 * kMiB), device("b", 1.0, 8 * kGiB)});
    const Plan plan = plan_proportional(in);
    ASSERT_EQ(plan.stages.size(), 2u);
    EXPECT_EQ(plan.stages[0].layers, (LayerRange{0, 10}));
    EXPECT_EQ(plan.stages[1].layers, (LayerRange{10, 30}));
    for (const PlanStage &s : plan.stages)
        EXPECT_LE(s.memory_bytes, s.memory_available_bytes);
}

TEST(ProportionalPlan, UsesSlowDevicesTheOptimalPlanLeavesOut) {
    const PlannerInput in = cluster(28, {device("a", 1.0, 8 * kGiB), device("b", 3.0, 8 * kGiB)});
    const Plan proportional = plan_proportional(in);
    const Plan optimal = plan_optimal(in);
    EXPECT_EQ(proportional.stages.size(), 2u);
    EXPECT_EQ(optimal.stages.size(), 1u);
    EXPECT_LT(optimal.predicted_ms_per_token, proportional.predicted_ms_per_token);
}

TEST(ProportionalPlan, LeavesOutADeviceWhoseShareRoundsToZero) {
    const PlannerInput in = cluster(28, {device("a", 1.0, 8 * kGiB), device("b", 100.0, 8 * kGiB)});
    const Plan plan = plan_proportional(in);
    ASSERT_EQ(plan.stages.size(), 1u);
    ASSERT_EQ(plan.left_out.size(), 1u);
    EXPECT_EQ(plan.left_out[0].reason, "proportional share rounds to 0 layers");
}

TEST(ProportionalPlan, ThrowsResourceWhenTheModelDoesNotFit) {
    const PlannerInput in = cluster(28, {device("a", 1.0, kGiB), device("b", 1.0, kGiB)});
    try {
        plan_proportional(in);
        ADD_FAILURE() << "no exception";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kResource);
        EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    }
}

TEST(PredictPlan, UsesUpdatedProfilesOnTheSameLayout) {
    PlannerInput in = cluster(28, {device("a", 1.0, 8 * kGiB), device("b", 1.0, 8 * kGiB)});
    const Plan plan = plan_manual(in, parse_layer_split("0:14,14:28", 28), {"a", "b"});
    in.devices[1].decode_ms_per_layer = 3.0;  // b measured 3x slower
    const Plan again = predict_plan(in, plan);
    ASSERT_EQ(again.stages.size(), 2u);
    EXPECT_EQ(again.stages[1].layers, (LayerRange{14, 28}));
    EXPECT_NEAR(again.latency_ms_per_token - plan.latency_ms_per_token, 28.0, 1e-9);
    EXPECT_EQ(again.method, PlanMethod::kManual);

    in.devices.pop_back();  // b left
    EXPECT_THROW(predict_plan(in, plan), Error);
}

}  // namespace
}  // namespace colony
