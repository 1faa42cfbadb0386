// The coordinator's layout decisions without sockets (coordinator_layout.h):
// a static --split, proportional splits by threads and by memory, trades onto
// ranges a worker holds in its shard cache (static and measured), a measured
// plan that leaves a slow device out, and the ASSIGN of every stage.
#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <tuple>

#include "net/keys.h"
#include "pipeline/coordinator_layout.h"
#include "pipeline/measured_planner.h"
#include "planning_fixtures.h"
#include "util/error.h"

namespace colony {

// Readable failures: "coordinator [0,3)" or "member 1 [3,5)".
void PrintTo(const PlannedStage &s, std::ostream *os) {
    *os << (s.member < 0 ? std::string("coordinator") : "member " + std::to_string(s.member)) << " "
        << s.range.str();
}

namespace {

constexpr uint64_t kGiB = 1ull << 30;

LayoutConfig config(uint32_t n_layer) {
    LayoutConfig c;
    c.n_layer = n_layer;
    c.n_embd = 64;
    c.n_vocab = 1000;
    c.model_hash.fill(0xab);
    c.wire_type = WIRE_DTYPE_Q8_0;
    c.n_ctx = 256;
    c.n_ubatch = 32;
    c.n_seq_max = 4;
    c.coordinator_id = "coord";
    c.coordinator_name = "the-coordinator";
    c.coordinator_data_endpoint = "tcp://10.0.0.1:7412";
    c.coordinator_threads = 4;
    c.secure = false;
    return c;
}

LayoutMember member(const std::string &id, uint32_t threads, uint64_t mem = 0,
                    std::vector<LayerRange> cached = {}) {
    LayoutMember m;
    m.fingerprint = id;
    m.name = "name-" + id;
    m.data_endpoint = "tcp://" + id + ":7500";
    m.n_threads = threads;
    m.mem_limit_bytes = mem;
    m.cached = std::move(cached);
    return m;
}

/// (member, range) of every stage, for compact comparisons.
std::vector<PlannedStage> stages(std::initializer_list<PlannedStage> s) {
    return s;
}

// ---- Static layouts ----

TEST(CoordinatorLayout, ManualSplitGivesExactlyItsRangesInJoinOrder) {
    LayoutConfig c = config(8);
    c.manual_split = std::vector<LayerRange>{{0, 3}, {3, 5}, {5, 8}};
    // Threads and memory do not matter to a manual split.
    const std::vector<LayoutMember> members = {member("a", 1, 8 * kGiB), member("b", 16)};
    const Layout l = plan_layout(c, members, nullptr);
    EXPECT_EQ(l.stages, stages({{-1, {0, 3}}, {0, {3, 5}}, {1, {5, 8}}}));
    EXPECT_EQ(l.plan.method, PlanMethod::kManual);
    EXPECT_EQ(l.plan.n_layer, 8);
    EXPECT_EQ(l.plan.coordinator_id, "coord");
    ASSERT_EQ(l.plan.stages.size(), 3u);
    EXPECT_EQ(l.plan.stages[0].node_id, "coord");
    EXPECT_EQ(l.plan.stages[0].name, "the-coordinator");
    EXPECT_EQ(l.plan.stages[1].node_id, "a");
    EXPECT_EQ(l.plan.stages[1].name, "name-a");
    EXPECT_EQ(l.plan.stages[2].layers, (LayerRange{5, 8}));
}

TEST(CoordinatorLayout, ManualSplitLeavesWorkersBeyondItsRangesSpare) {
    LayoutConfig c = config(8);
    c.manual_split = std::vector<LayerRange>{{0, 4}, {4, 8}};
    const Layout l = plan_layout(c, {member("a", 1), member("b", 1)}, nullptr);
    EXPECT_EQ(l.stages, stages({{-1, {0, 4}}, {0, {4, 8}}}));
}

TEST(CoordinatorLayout, ManualSplitWithMoreRangesThanNodesIsRefused) {
    LayoutConfig c = config(8);
    c.manual_split = std::vector<LayerRange>{{0, 3}, {3, 5}, {5, 8}};
    try {
        (void)plan_layout(c, {member("a", 1)}, nullptr);
        FAIL() << "a split of 3 ranges over 2 nodes was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
}

TEST(CoordinatorLayout, AStageOfOnlySkippedBlocksIsBypassed) {
    LayoutConfig c = config(8);
    c.manual_split = std::vector<LayerRange>{{0, 3}, {3, 5}, {5, 8}};
    c.skip = parse_layer_skip("1,3-4,6", 8);
    const std::vector<LayoutMember> members = {member("a", 1), member("b", 1)};
    const Layout l = plan_layout(c, members, nullptr);
    // [3,5) is all skipped: the coordinator's range takes it, b serves [5,8)
    EXPECT_EQ(l.stages, stages({{-1, {0, 5}}, {1, {5, 8}}}));
    ASSERT_EQ(l.plan.stages.size(), 2u);
    EXPECT_EQ(l.plan.stages[0].layers, (LayerRange{0, 5}));
    EXPECT_EQ(l.plan.stages[1].node_id, "b");
    // each ASSIGN carries its own range's skipped blocks
    const std::vector<StageAssign> as = stage_assigns(c, members, l.stages, 3);
    ASSERT_EQ(as.size(), 1u);
    EXPECT_EQ(as[0].assign.skip_layers, (std::vector<uint32_t>{6}));
    EXPECT_TRUE(as[0].assign.is_last);
    EXPECT_EQ(local_plan(c, members, l.stages).range, (LayerRange{0, 5}));
    // without skipping, the same split keeps its three stages
    c.skip = {};
    EXPECT_EQ(plan_layout(c, members, nullptr).stages.size(), 3u);
    // the last stage bypassed: the stage before it becomes the last
    c.skip = parse_layer_skip("5-7", 8);
    const Layout tail = plan_layout(c, members, nullptr);
    EXPECT_EQ(tail.stages, stages({{-1, {0, 3}}, {0, {3, 8}}}));
    const std::vector<StageAssign> tail_as = stage_assigns(c, members, tail.stages, 4);
    ASSERT_EQ(tail_as.size(), 1u);
    EXPECT_TRUE(tail_as[0].assign.is_last);
    EXPECT_EQ(tail_as[0].assign.skip_layers, (std::vector<uint32_t>{5, 6, 7}));
}

TEST(CoordinatorLayout, ManualSplitTradesWorkersOntoRangesTheyHold) {
    LayoutConfig c = config(8);
    c.manual_split = std::vector<LayerRange>{{0, 3}, {3, 5}, {5, 8}};
    // b joined second but holds [3,5): it serves it, a takes the other range.
    const Layout l = plan_layout(c, {member("a", 1), member("b", 1, 0, {{3, 5}})}, nullptr);
    EXPECT_EQ(l.stages, stages({{-1, {0, 3}}, {1, {3, 5}}, {0, {5, 8}}}));
    EXPECT_EQ(l.plan.stages[1].node_id, "b");
    EXPECT_EQ(l.plan.stages[2].node_id, "a");
}

TEST(CoordinatorLayout, ProportionalSplitByThreads) {
    LayoutConfig c = config(8);
    c.coordinator_threads = 4;
    const Layout l = plan_layout(c, {member("a", 2), member("b", 2)}, nullptr);
    EXPECT_EQ(l.stages, stages({{-1, {0, 4}}, {0, {4, 6}}, {1, {6, 8}}}));
    EXPECT_EQ(l.plan.method, PlanMethod::kProportional);
}

TEST(CoordinatorLayout, ProportionalSplitByMemoryWhenEveryNodeHasALimit) {
    LayoutConfig c = config(8);
    c.coordinator_threads = 1;
    c.coordinator_mem_limit_gib = 1;
    // By memory 1:2:1 (one layer each, the other 5 by 1.25, 2.5, 1.25: 2, 4, 2).
    const Layout l = plan_layout(c, {member("a", 6, 2 * kGiB), member("b", 1, 1 * kGiB)}, nullptr);
    EXPECT_EQ(l.stages, stages({{-1, {0, 2}}, {0, {2, 6}}, {1, {6, 8}}}));
    // One worker without a limit: threads decide, 1:6:1 (one layer each, the
    // other 5 by largest remainder of 0.625, 3.75, 0.625: 2, 5, 1).
    const Layout t = plan_layout(c, {member("a", 6, 2 * kGiB), member("b", 1, 0)}, nullptr);
    EXPECT_EQ(t.stages, stages({{-1, {0, 2}}, {0, {2, 7}}, {1, {7, 8}}}));
}

TEST(CoordinatorLayout, ProportionalSplitUsesAtMostOneNodePerLayer) {
    const Layout l =
        plan_layout(config(2), {member("a", 1), member("b", 1), member("c", 1)}, nullptr);
    ASSERT_EQ(l.stages.size(), 2u);
    EXPECT_EQ(l.stages[1].member, 0);
}

TEST(CoordinatorLayout, ProportionalSplitTradesOnlyBetweenWorkersOfEqualWeight) {
    LayoutConfig c = config(7);
    c.coordinator_threads = 2;
    // Weights 2:2:2:1 over 7 layers: [0,2) [2,4) [4,6) [6,7).
    const Layout alike =
        plan_layout(c, {member("a", 2), member("b", 2, 0, {{2, 4}}), member("c", 1)}, nullptr);
    EXPECT_EQ(alike.stages, stages({{-1, {0, 2}}, {1, {2, 4}}, {0, {4, 6}}, {2, {6, 7}}}));
    // c has half the weight: serving [2,4) would change the split, so it does not move.
    const Layout unlike =
        plan_layout(c, {member("a", 2), member("b", 2), member("c", 1, 0, {{2, 4}})}, nullptr);
    EXPECT_EQ(unlike.stages, stages({{-1, {0, 2}}, {0, {2, 4}}, {1, {4, 6}}, {2, {6, 7}}}));
}

// ---- Measured layouts ----

using planning_fixtures::profile;
using planning_fixtures::shape;

/// A worker's STATUS after a probe of blocks [2,6) (not the last stage).
WorkerStatus probe_status(const std::string &id, double ms_per_layer, uint64_t mem) {
    WorkerStatus st;
    st.profile = profile(id, ms_per_layer, mem);
    StageReport r;
    r.epoch = 1;
    r.first = 2;
    r.last = 6;
    r.probe_decode_ms = 4 * ms_per_layer;
    r.probe_prefill_ms_per_token = ms_per_layer;
    st.stage = r;
    return st;
}

/// A planner whose coordinator holds the embedding and at most 3 blocks
/// (55 MB), and workers (id, ms per block, memory) with equal links.
MeasuredPlanner planner(const std::vector<std::tuple<std::string, double, uint64_t>> &workers,
                        uint64_t coordinator_mem = 55'000'000) {
    MeasuredPlanner mp(shape(), "coord", {});
    mp.set_coordinator(profile("coord", 1.0, coordinator_mem), 1.0);
    for (const auto &[id, ms, mem] : workers) {
        mp.on_status(id, probe_status(id, ms, mem), 1);
        for (int i = 0; i < 4; ++i)
            mp.on_rtt(id, 0.2);
    }
    return mp;
}

TEST(CoordinatorLayout, MeasuredPlanLeavesATooSlowDeviceOut) {
    // The coordinator holds 5 blocks; "slow" is 6 ms per block, "poor" 1 ms
    // but with room for 3 blocks and the head only.
    MeasuredPlanner mp =
        planner({{"slow", 6.0, 1ull << 30}, {"poor", 1.0, 55'000'000}}, 75'000'000);
    const std::vector<LayoutMember> members = {member("slow", 8), member("poor", 1)};
    const Layout l = plan_layout(config(8), members, &mp);
    EXPECT_EQ(l.stages, stages({{-1, {0, 5}}, {1, {5, 8}}}));
    EXPECT_EQ(l.plan.method, PlanMethod::kOptimal);
    ASSERT_EQ(l.plan.left_out.size(), 1u);
    EXPECT_EQ(l.plan.left_out[0].node_id, "slow");
    EXPECT_GT(l.plan.predicted_ms_per_token, 0);
}

TEST(CoordinatorLayout, MeasuredPlanSkipsMembersWithoutAProfile) {
    MeasuredPlanner mp = planner({{"poor", 1.0, 55'000'000}}, 75'000'000);
    // "new" joined but has not measured itself: a spare, not an error.
    const Layout l = plan_layout(config(8), {member("new", 8), member("poor", 1)}, &mp);
    EXPECT_EQ(l.stages, stages({{-1, {0, 5}}, {1, {5, 8}}}));
}

TEST(CoordinatorLayout, MeasuredPlanThatFitsNoNodeThrows) {
    // 8 blocks do not fit the coordinator (3 blocks) and one 45 MB worker.
    MeasuredPlanner mp = planner({{"a", 1.0, 45'000'000}});
    EXPECT_THROW((void)plan_layout(config(8), {member("a", 1)}, &mp), Error);
}

/// Two workers of 45 MB: stage 1 and 2 both needed next to a 3-block coordinator.
TEST(CoordinatorLayout, MeasuredPlanTradesOntoACachedRangeWhenThePredictionStaysWithinTwoPercent) {
    MeasuredPlanner mp = planner({{"a", 1.0, 45'000'000}, {"b", 1.0, 45'000'000}});
    const LayoutConfig c = config(8);
    const Layout optimum = plan_layout(c, {member("a", 1), member("b", 1)}, &mp);
    ASSERT_EQ(optimum.stages.size(), 3u);
    const int first = optimum.stages[1].member, second = optimum.stages[2].member;
    // The worker of stage 2 holds stage 1's range: alike devices, alike links,
    // so the trade costs nothing and is made.
    std::vector<LayoutMember> members = {member("a", 1), member("b", 1)};
    members[second].cached = {optimum.stages[1].range};
    const Layout traded = plan_layout(c, members, &mp);
    ASSERT_EQ(traded.stages.size(), 3u);
    EXPECT_EQ(traded.stages[1].member, second);
    EXPECT_EQ(traded.stages[1].range, optimum.stages[1].range);
    EXPECT_EQ(traded.stages[2].member, first);
    EXPECT_EQ(traded.stages[2].range, optimum.stages[2].range);
    EXPECT_EQ(traded.plan.stages[1].node_id, members[second].fingerprint);
    EXPECT_LE(traded.plan.predicted_ms_per_token, optimum.plan.predicted_ms_per_token * 1.02);
    EXPECT_EQ(traded.plan.method, PlanMethod::kOptimal);
}

TEST(CoordinatorLayout, MeasuredPlanKeepsTheOptimumWhenATradeCostsMoreThanTwoPercent) {
    // "fast" is twice as fast as "slow": the optimum gives it the longer range.
    MeasuredPlanner mp = planner({{"fast", 1.0, 45'000'000}, {"slow", 2.0, 45'000'000}});
    const LayoutConfig c = config(8);
    const Layout optimum = plan_layout(c, {member("fast", 1), member("slow", 1)}, &mp);
    ASSERT_EQ(optimum.stages.size(), 3u);
    size_t fast_stage = optimum.stages[1].member == 0 ? 1 : 2;
    size_t slow_stage = 3 - fast_stage;
    ASSERT_GT(optimum.stages[fast_stage].range.size(), optimum.stages[slow_stage].range.size());
    // The swapped layout is predicted more than 2% slower...
    Plan swapped = optimum.plan;
    std::swap(swapped.stages[1].node_id, swapped.stages[2].node_id);
    const std::optional<Plan> swapped_prediction = mp.predict(swapped, {"fast", "slow"}, true);
    ASSERT_TRUE(swapped_prediction);
    ASSERT_GT(swapped_prediction->predicted_ms_per_token,
              optimum.plan.predicted_ms_per_token * 1.02);
    // ...so "slow" does not get the range it holds.
    const Layout l = plan_layout(
        c, {member("fast", 1), member("slow", 1, 0, {optimum.stages[fast_stage].range})}, &mp);
    EXPECT_EQ(l.stages, optimum.stages);
    EXPECT_DOUBLE_EQ(l.plan.predicted_ms_per_token, optimum.plan.predicted_ms_per_token);
}

TEST(CoordinatorLayout, StagesOfAPlanNeedEveryNodeAMemberAndTheCoordinatorFirst) {
    const LayoutConfig c = config(8);
    const std::vector<LayoutMember> members = {member("a", 1)};
    auto stage = [](const std::string &id, LayerRange layers) {
        PlanStage s;
        s.node_id = id;
        s.layers = layers;
        return s;
    };
    Plan p;
    p.stages = {stage("coord", {0, 4}), stage("a", {4, 8})};
    EXPECT_EQ(stages_of(c, members, p), stages({{-1, {0, 4}}, {0, {4, 8}}}));
    Plan gone = p;
    gone.stages[1].node_id = "left";
    EXPECT_FALSE(stages_of(c, members, gone));
    Plan reversed = p;
    std::swap(reversed.stages[0].node_id, reversed.stages[1].node_id);
    EXPECT_FALSE(stages_of(c, members, reversed));
}

// ---- ASSIGN ----

TEST(CoordinatorLayout, AssignOfEveryStagePointsAtTheNextAndTheLastAtTheCoordinator) {
    const CurveKeypair coordinator = curve_keypair_generate();
    const CurveKeypair ka = curve_keypair_generate(), kb = curve_keypair_generate();
    LayoutConfig c = config(8);
    c.secure = true;
    c.coordinator_key_z85 = coordinator.public_z85;
    std::vector<LayoutMember> members = {member("a", 1), member("b", 1)};
    members[0].key_z85 = ka.public_z85;
    members[1].key_z85 = kb.public_z85;
    // b serves stage 1, a stage 2 (the last).
    const std::vector<PlannedStage> layout = {{-1, {0, 3}}, {1, {3, 6}}, {0, {6, 8}}};
    const std::vector<StageAssign> assigns = stage_assigns(c, members, layout, 42);
    ASSERT_EQ(assigns.size(), 2u);

    const StageAssign &s1 = assigns[0];
    EXPECT_EQ(s1.member, 1);
    EXPECT_EQ(s1.assign.plan_epoch, 42u);
    EXPECT_EQ(s1.assign.layer_first, 3u);
    EXPECT_EQ(s1.assign.layer_last, 6u);
    EXPECT_FALSE(s1.assign.is_last);
    EXPECT_EQ(s1.assign.next_endpoint, "tcp://a:7500");
    EXPECT_EQ(s1.assign.next_key, curve_key_from_z85(ka.public_z85));
    EXPECT_EQ(s1.assign.prev_key, WireKey{});  // stage 0 is the coordinator: admitted anyway
    EXPECT_EQ(s1.assign.model_hash, c.model_hash);
    EXPECT_EQ(s1.assign.n_layer, 8u);
    EXPECT_EQ(s1.assign.n_embd, 64u);
    EXPECT_EQ(s1.assign.n_vocab, 1000u);
    EXPECT_EQ(s1.assign.dtype, WIRE_DTYPE_Q8_0);
    EXPECT_EQ(s1.assign.n_ctx, 256u);
    EXPECT_EQ(s1.assign.n_ubatch, 32u);
    EXPECT_EQ(s1.assign.n_seq_max, 4u);
    EXPECT_TRUE(s1.assign.sampling);

    const StageAssign &s2 = assigns[1];
    EXPECT_EQ(s2.member, 0);
    EXPECT_EQ(s2.assign.plan_epoch, 42u);
    EXPECT_EQ(s2.assign.layer_first, 6u);
    EXPECT_EQ(s2.assign.layer_last, 8u);
    EXPECT_TRUE(s2.assign.is_last);
    EXPECT_EQ(s2.assign.next_endpoint, "tcp://10.0.0.1:7412");  // the coordinator's data socket
    EXPECT_EQ(s2.assign.next_key, curve_key_from_z85(coordinator.public_z85));
    EXPECT_EQ(s2.assign.prev_key, curve_key_from_z85(kb.public_z85));

    // The coordinator's own part: stage 1's socket, and only the last stage sends tokens.
    const LocalPlan local = local_plan(c, members, layout);
    EXPECT_EQ(local.range, (LayerRange{0, 3}));
    EXPECT_FALSE(local.is_last);
    EXPECT_EQ(local.next_endpoint, "tcp://b:7500");
    EXPECT_EQ(local.next_key_z85, kb.public_z85);
    EXPECT_EQ(local.last_user_id, "a");
}

TEST(CoordinatorLayout, InsecureAssignsCarryNoKeys) {
    std::vector<LayoutMember> members = {member("a", 1), member("b", 1)};
    members[0].key_z85 = curve_keypair_generate().public_z85;
    members[1].key_z85 = curve_keypair_generate().public_z85;
    const LayoutConfig c = config(8);  // secure = false
    const std::vector<PlannedStage> layout = {{-1, {0, 3}}, {0, {3, 6}}, {1, {6, 8}}};
    for (const StageAssign &a : stage_assigns(c, members, layout, 7)) {
        EXPECT_EQ(a.assign.next_key, WireKey{});
        EXPECT_EQ(a.assign.prev_key, WireKey{});
    }
    const LocalPlan local = local_plan(c, members, layout);
    EXPECT_EQ(local.next_key_z85, "");
    EXPECT_EQ(local.last_user_id, "");
}

TEST(CoordinatorLayout, AOneStageLayoutHasNoAssignsAndTheCoordinatorSamples) {
    const std::vector<PlannedStage> layout = {{-1, {0, 8}}};
    EXPECT_TRUE(stage_assigns(config(8), {}, layout, 1).empty());
    const LocalPlan local = local_plan(config(8), {}, layout);
    EXPECT_TRUE(local.is_last);
    EXPECT_EQ(local.next_endpoint, "");
}

TEST(CoordinatorLayout, AssignsOfALayoutWithoutTheCoordinatorFirstAreRefused) {
    EXPECT_THROW((void)stage_assigns(config(8), {member("a", 1)}, {{0, {0, 8}}}, 1), Error);
}

TEST(CoordinatorLayout, ProbeAssignHasEpochZeroAndPointsAtTheCoordinator) {
    const WireAssign a = probe_assign(config(8), {2, 6});
    EXPECT_EQ(a.plan_epoch, 0u);
    EXPECT_EQ(a.layer_first, 2u);
    EXPECT_EQ(a.layer_last, 6u);
    EXPECT_FALSE(a.is_last);
    EXPECT_EQ(a.next_endpoint, "tcp://10.0.0.1:7412");
}

}  // namespace
}  // namespace colony
