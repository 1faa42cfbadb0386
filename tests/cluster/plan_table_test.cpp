// The `colony plan` table and the /v1/cluster JSON of a plan.
#include <gtest/gtest.h>

#include <limits>

#include "cluster/plan_table.h"
#include "cluster/planner.h"
#include "cluster_fixtures.h"
#include "nlohmann/json.hpp"

namespace colony {
namespace {

using test::device;
using test::full_mesh;
using test::kGiB;
using test::kMiB;
using test::uniform_model;

/// One fast node, one slow node and one memory-poor node (the issue's
/// emulated cluster), as the optimal planner places a 28-block model.
Plan emulated_cluster_plan() {
    PlannerInput in;
    in.model = uniform_model(28);
    in.devices = {device("fast", 1.0, 2 * kGiB), device("slow", 6.0, 8 * kGiB),
                  device("poor", 1.2, 64 * kMiB)};
    in.devices[0].name = "";  // shown by node id
    in.links = full_mesh({"fast", "slow", "poor"}, 2, 1e8);
    in.options.coordinator_id = "fast";
    in.options.epoch = 7;
    return plan_optimal(in);
}

TEST(PlanTable, ShowsStagesAndWhyDevicesWereLeftOut) {
    const Plan plan = emulated_cluster_plan();
    const std::string table = render_plan_table(plan);
    SCOPED_TRACE(table);
    EXPECT_NE(table.find("plan 7 (optimal, latency): 28 layers on 2 of 3 devices"),
              std::string::npos);
    EXPECT_NE(table.find("#  device  layers"), std::string::npos);
    // "fast" holds as much as 2 GiB allows (the embedding and the first
    // blocks); "slow" takes the rest; "poor" cannot hold one block.
    ASSERT_EQ(plan.stages.size(), 2u);
    EXPECT_EQ(plan.stages[0].node_id, "fast");
    const std::string fast_layers = "0-" + std::to_string(plan.stages[0].layers.last - 1);
    EXPECT_NE(table.find("0  fast    " + fast_layers), std::string::npos);
    EXPECT_NE(table.find("stage 1"), std::string::npos);
    EXPECT_NE(table.find("left out: not enough memory: needs 101.0 MiB"), std::string::npos);
    EXPECT_EQ(table.back(), '\n');
}

TEST(PlanTable, JsonCarriesEveryStageAndReason) {
    const Plan plan = emulated_cluster_plan();
    const nlohmann::json j = plan_to_json(plan);
    EXPECT_EQ(j["epoch"], 7);
    EXPECT_EQ(j["method"], "optimal");
    EXPECT_EQ(j["objective"], "latency");
    EXPECT_EQ(j["n_layer"], 28);
    ASSERT_EQ(j["stages"].size(), 2u);
    EXPECT_EQ(j["stages"][0]["first_layer"], 0);
    EXPECT_EQ(j["stages"][1]["last_layer"], 28);
    EXPECT_EQ(j["stages"][1]["node_id"], "slow");
    EXPECT_DOUBLE_EQ(j["predicted_ms_per_token"].get<double>(), plan.predicted_ms_per_token);
    ASSERT_EQ(j["left_out"].size(), 1u);
    EXPECT_EQ(j["left_out"][0]["node_id"], "poor");
    EXPECT_NE(j["left_out"][0]["reason"].get<std::string>().find("not enough memory"),
              std::string::npos);
}

TEST(PlanTable, InfiniteTimesAreNullInJsonAndInfInText) {
    Plan plan = emulated_cluster_plan();
    plan.stages[0].hop_out_ms = std::numeric_limits<double>::infinity();
    plan.predicted_ms_per_token = std::numeric_limits<double>::infinity();
    const nlohmann::json j = plan_to_json(plan);
    EXPECT_TRUE(j["stages"][0]["hop_out_ms"].is_null());
    EXPECT_TRUE(j["predicted_ms_per_token"].is_null());
    EXPECT_NE(render_plan_table(plan).find("inf ms per token"), std::string::npos);
}

}  // namespace
}  // namespace colony
