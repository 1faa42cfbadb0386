// The coordinator's planning pieces in process: the STATUS schema of device
// profiles (worker_status.h), the measured planner's bookkeeping (per-layer
// times from whole-stage times, links, drift samples, battery and join
// events; measured_planner.h), the graceful re-plan handshake between control
// and scheduler (cluster_state.h) and the cluster view's JSON.
#include <gtest/gtest.h>

#include <chrono>

#include "cluster/planner.h"
#include "nlohmann/json.hpp"
#include "pipeline/cluster_state.h"
#include "pipeline/cluster_view.h"
#include "pipeline/measured_planner.h"
#include "pipeline/worker_status.h"
#include "planning_fixtures.h"
#include "util/error.h"

namespace colony {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

using planning_fixtures::profile;
using planning_fixtures::shape;

WorkerStatus status(const std::string &id, double stage_ms, uint32_t first, uint32_t last,
                    bool is_last, uint64_t epoch, uint64_t mem = 1ull << 30) {
    WorkerStatus st;
    st.profile = profile(id, stage_ms / (last - first), mem);
    StageReport r;
    r.epoch = epoch;
    r.first = first;
    r.last = last;
    r.is_last = is_last;
    r.probe_decode_ms = stage_ms;
    r.probe_prefill_ms_per_token = stage_ms / 4;
    st.stage = r;
    return st;
}

/// A clock the test moves by hand.
struct FakeClock {
    Clock::time_point now = Clock::now();
    ReplanPolicy::Clock fn() {
        return [this] { return now; };
    }
    void advance(double s) {
        now += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    }
};

TEST(WorkerStatusJson, RoundTripsAndIgnoresOtherStatuses) {
    WorkerStatus st = status("w1", 12, 4, 8, true, 3);
    st.stage->recent_decode_ms = 13.5;
    st.stage->recent_samples = 40;
    st.shard_throughput_bytes_per_s = 5e7;
    st.slowdown = 2.5;
    st.profile.battery = BatteryState{55, false};
    const std::optional<WorkerStatus> back = worker_status_parse(worker_status_to_json(st).dump());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->profile.node_id, "w1");
    ASSERT_TRUE(back->stage);
    EXPECT_EQ(back->stage->epoch, 3u);
    EXPECT_EQ(back->stage->first, 4u);
    EXPECT_EQ(back->stage->last, 8u);
    EXPECT_TRUE(back->stage->is_last);
    EXPECT_DOUBLE_EQ(back->stage->probe_decode_ms, 12);
    EXPECT_DOUBLE_EQ(back->stage->recent_decode_ms, 13.5);
    EXPECT_EQ(back->stage->recent_samples, 40u);
    EXPECT_DOUBLE_EQ(*back->shard_throughput_bytes_per_s, 5e7);
    EXPECT_DOUBLE_EQ(back->slowdown, 2.5);
    ASSERT_TRUE(back->profile.battery);
    EXPECT_DOUBLE_EQ(back->profile.battery->percent, 55);
    // node_status.h's run-time reports share the STATUS type: not ours.
    EXPECT_FALSE(worker_status_parse(R"({"runtime":{"phase":"ready"}})"));
}

TEST(WorkerStatusJson, RejectsBadFields) {
    const json good = worker_status_to_json(status("w1", 12, 4, 8, true, 3));
    auto with = [&](const char *path, json value) {
        json j = good;
        j[json::json_pointer(path)] = std::move(value);
        return j.dump();
    };
    const std::vector<std::pair<std::string, std::string>> cases = {
        {with("/stage/last", 4), "stage.last"},
        {with("/stage/first", -1), "first"},
        {with("/stage/probe_decode_ms", -3.0), "probe_decode_ms"},
        {with("/stage/probe_decode_ms", 1e12), "probe_decode_ms"},
        {with("/stage/is_last", "yes"), "is_last"},
        {with("/stage/recent_samples", 1e9), "recent_samples"},
        {with("/shard_throughput_bytes_per_s", 0.0), "shard_throughput"},
        {with("/slowdown", 0.5), "slowdown"},
        {with("/profile/decode_ms_per_layer", -1.0), "decode_ms_per_layer"},
        {with("/profile/node_id", ""), "node_id"},
        {R"({"profile": 3})", "profile"},
    };
    for (const auto &[text, field] : cases) {
        try {
            (void)worker_status_parse(text);
            ADD_FAILURE() << "accepted: " << text;
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kProtocol);
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW((void)worker_status_parse("{not json"), Error);
}

TEST(MeasuredPlanner, SeparatesTheOutputHeadFromWholeStageTimes) {
    MeasuredPlanner mp(shape(), "coord", {});
    DeviceProfile c = profile("coord", 1.0, 1ull << 30);
    c.decode_ms_output = 2.0;
    mp.set_coordinator(c, 2.0);  // the head costs two blocks
    // The last stage: 4 blocks + head = 6 block-times of 2 ms.
    EXPECT_TRUE(mp.on_status("w1", status("w1", 12, 4, 8, true, 1), 1));
    EXPECT_DOUBLE_EQ(mp.profile("w1")->decode_ms_per_layer, 2.0);
    EXPECT_DOUBLE_EQ(mp.profile("w1")->decode_ms_output, 4.0);
    // A middle stage: no head.
    EXPECT_TRUE(mp.on_status("w2", status("w2", 6, 2, 4, false, 1), 1));
    EXPECT_DOUBLE_EQ(mp.profile("w2")->decode_ms_per_layer, 3.0);
    EXPECT_DOUBLE_EQ(mp.profile("w2")->decode_ms_output, 6.0);
    EXPECT_FALSE(mp.on_status("w2", status("w2", 6, 2, 4, false, 1), 1));  // not the first
    EXPECT_THROW(mp.on_status("coord", status("coord", 1, 0, 1, false, 1), 1), Error);
}

TEST(MeasuredPlanner, LinksFromHeartbeatsAndTheirApproximations) {
    MeasuredPlannerConfig cfg;
    cfg.default_rtt_ms = 5;
    cfg.default_throughput_bytes_per_s = 1e6;
    MeasuredPlanner mp(shape(), "coord", cfg);
    mp.set_coordinator(profile("coord", 1, 1ull << 30), 0);
    WorkerStatus a = status("a", 4, 0, 4, false, 1);
    a.shard_throughput_bytes_per_s = 8e7;
    mp.on_status("a", a, 1);
    mp.on_status("b", status("b", 4, 0, 4, false, 1), 1);
    for (double rtt : {9.0, 1.0, 1.2, 50.0, 1.1, 1.3, 1.0, 1.4})
        mp.on_rtt("a", rtt);
    // The lower quartile of the samples: busy control threads inflate some.
    EXPECT_DOUBLE_EQ(*mp.rtt_ms("a"), 1.0);
    EXPECT_FALSE(mp.rtt_ms("b"));
    for (int i = 0; i < 3; ++i)
        mp.on_rtt("b", 0.5);
    EXPECT_FALSE(mp.rtt_ms("b")) << "three samples are not enough";
    const PlannerInput in = mp.input({"a", "b", "nobody"}, false);
    ASSERT_EQ(in.devices.size(), 3u);
    EXPECT_EQ(in.devices[0].node_id, "coord");
    EXPECT_TRUE(in.options.coordinator_must_participate);
    EXPECT_TRUE(in.options.coordinator_first);
    const LinkProfile *ca = find_link(in.links, "coord", "a");
    const LinkProfile *cb = find_link(in.links, "coord", "b");
    const LinkProfile *ab = find_link(in.links, "a", "b");
    ASSERT_TRUE(ca && cb && ab);
    EXPECT_DOUBLE_EQ(ca->rtt_ms, 1.0);
    EXPECT_DOUBLE_EQ(ca->throughput_bytes_per_s, 8e7);
    EXPECT_DOUBLE_EQ(cb->rtt_ms, 5.0);  // not measured: the default
    EXPECT_DOUBLE_EQ(cb->throughput_bytes_per_s, 1e6);
    EXPECT_DOUBLE_EQ(ab->rtt_ms, 3.0);  // worker <-> worker: mean RTT, lower throughput
    EXPECT_DOUBLE_EQ(ab->throughput_bytes_per_s, 1e6);
}

TEST(MeasuredPlanner, LeavesASlowWorkerOutAndUsesAMemoryPoorOne) {
    MeasuredPlanner mp(shape(), "coord", {});
    // The coordinator holds the embedding and 5 blocks, not the whole model.
    mp.set_coordinator(profile("coord", 1.0, 75'000'000), 1.0);
    mp.on_status("slow", status("slow", 4 * 6.0, 2, 6, false, 1), 1);  // 6 ms per block
    // 3 blocks and the head fit in 55 MB, 4 would not.
    mp.on_status("poor", status("poor", 4 * 1.0, 2, 6, false, 1, 55'000'000), 1);
    for (const char *id : {"slow", "poor"}) {
        for (int i = 0; i < 4; ++i)
            mp.on_rtt(id, 0.2);
    }
    const Plan p = mp.optimal({"slow", "poor"}, false, 7);
    ASSERT_EQ(p.stages.size(), 2u);
    EXPECT_EQ(p.stages[0].node_id, "coord");
    EXPECT_EQ(p.stages[0].layers, (LayerRange{0, 5}));
    EXPECT_EQ(p.stages[1].node_id, "poor");
    ASSERT_EQ(p.left_out.size(), 1u);
    EXPECT_EQ(p.left_out[0].node_id, "slow");
    EXPECT_EQ(p.left_out[0].reason.rfind("would add", 0), 0u) << p.left_out[0].reason;
    // 8 blocks of 1 ms, the head 1 ms, the hidden state (2048 B) to the worker
    // and the token id (64 B) back, each RTT/2 + bytes at the default 12.5 MB/s.
    EXPECT_NEAR(p.latency_ms_per_token,
                9.0 + (0.1 + 2048 / 12.5e6 * 1000) + (0.1 + 64 / 12.5e6 * 1000), 1e-9);
    // The same layout re-predicted, and an unknown node makes it unpredictable.
    const std::optional<Plan> again = mp.predict(p, {"slow", "poor"}, false);
    ASSERT_TRUE(again);
    EXPECT_TRUE(same_layout(*again, p));
    EXPECT_NEAR(again->latency_ms_per_token, p.latency_ms_per_token, 1e-9);
    mp.on_leave("poor");
    EXPECT_FALSE(mp.predict(p, {"slow"}, false));
}

TEST(MeasuredPlanner, SustainedDriftOfARunningStageAsksForAReplan) {
    FakeClock clock;
    MeasuredPlannerConfig cfg;
    cfg.replan.drift_window_s = 3;
    cfg.replan.min_samples = 2;
    cfg.replan.cooldown_s = 1;
    MeasuredPlanner mp(shape(), "coord", cfg, clock.fn());
    mp.set_coordinator(profile("coord", 1.0, 1ull << 30), 1.0);
    mp.on_status("w", status("w", 3 + 1, 5, 8, true, 4), 4);  // 1 ms per block
    mp.on_rtt("w", 0.2);
    Plan plan = mp.optimal({"w"}, false, 4);
    // Force a two-stage layout to have a worker stage to watch.
    plan = *mp.predict(
        [&] {
            Plan l = plan;
            l.stages = {PlanStage{"coord", "coord", {0, 5}}, PlanStage{"w", "w", {5, 8}}};
            return l;
        }(),
        {"w"}, false);
    mp.policy().adopt(plan);
    mp.policy().settle_joins({"w"});
    EXPECT_FALSE(mp.policy().check().replan);
    clock.advance(2);
    // The worker runs 5x slower: its rolling decode time of epoch 4.
    for (int i = 0; i < 4; ++i) {
        WorkerStatus st = status("w", 4, 5, 8, true, 4);
        st.stage->recent_decode_ms = 20;  // 3 blocks + head(1) = 4 block-times of 5 ms
        st.stage->recent_samples = 100;
        mp.on_status("w", st, 4);
        clock.advance(1);
    }
    EXPECT_NEAR(*mp.measured_ms_per_layer("w"), 5.0, 1e-9);
    const ReplanTrigger t = mp.policy().check();
    EXPECT_TRUE(t.replan) << t.reason;
    EXPECT_NE(t.reason.find("'w'"), std::string::npos) << t.reason;
    // Candidates use the measured speed: the worker is no longer worth it.
    const Plan candidate = mp.optimal({"w"}, true, 5);
    ASSERT_EQ(candidate.stages.size(), 1u);
    EXPECT_EQ(candidate.stages[0].node_id, "coord");
    // Samples of another epoch (a stage not of the running plan) are ignored.
    MeasuredPlanner other(shape(), "coord", cfg, clock.fn());
    other.set_coordinator(profile("coord", 1.0, 1ull << 30), 1.0);
    other.on_status("w", status("w", 4, 5, 8, true, 4), 4);
    other.policy().adopt(plan);
    WorkerStatus stale = status("w", 4, 5, 8, true, 3);
    stale.stage->recent_decode_ms = 20;
    stale.stage->recent_samples = 10;
    other.on_status("w", stale, 4);
    EXPECT_FALSE(other.measured_ms_per_layer("w"));
}

TEST(MeasuredPlanner, LowBatteryForcesAReplanOncePerDischarge) {
    FakeClock clock;
    MeasuredPlanner mp(shape(), "coord", {}, clock.fn());
    mp.set_coordinator(profile("coord", 1.0, 1ull << 30), 1.0);
    mp.on_status("w", status("w", 4, 5, 8, true, 4), 4);
    Plan plan;
    plan.stages = {PlanStage{"coord", "coord", {0, 5}}, PlanStage{"w", "w", {5, 8}}};
    plan.stages[1].decode_ms_per_layer = 1;
    mp.policy().adopt(plan);
    mp.policy().settle_joins({"w"});
    EXPECT_FALSE(mp.policy().check().replan);
    WorkerStatus low = status("w", 4, 5, 8, true, 4);
    low.profile.battery = BatteryState{12, false};
    mp.on_status("w", low, 4);
    const ReplanTrigger t = mp.policy().check();
    EXPECT_TRUE(t.replan && t.forced) << t.reason;
    EXPECT_NE(t.reason.find("battery"), std::string::npos);
    mp.on_status("w", low, 4);  // still low: no second event
    EXPECT_FALSE(mp.policy().check().forced);
    // The planner leaves it out now.
    const Plan p = mp.optimal({"w"}, false, 5);
    ASSERT_EQ(p.left_out.size(), 1u);
    EXPECT_NE(p.left_out[0].reason.find("battery"), std::string::npos) << p.left_out[0].reason;
}

TEST(MeasuredPlanner, AFasterProbeOfASpareCountsAsAJoin) {
    FakeClock clock;
    MeasuredPlannerConfig cfg;
    cfg.replan.cooldown_s = 0;
    MeasuredPlanner mp(shape(), "coord", cfg, clock.fn());
    mp.set_coordinator(profile("coord", 1.0, 1ull << 30), 1.0);
    mp.on_status("spare", status("spare", 8, 4, 5, false, 0), 0);
    Plan plan;
    plan.stages = {PlanStage{"coord", "coord", {0, 8}}};
    plan.stages[0].decode_ms_per_layer = 1;
    mp.policy().adopt(plan);
    mp.policy().settle_joins({"spare"});
    EXPECT_FALSE(mp.policy().check().replan);
    mp.on_status("spare", status("spare", 7, 4, 5, false, 0), 0);  // 12 % faster: noise
    EXPECT_FALSE(mp.policy().check().replan);
    mp.on_status("spare", status("spare", 2, 4, 5, false, 0), 0);  // cooled down
    const ReplanTrigger t = mp.policy().check();
    EXPECT_TRUE(t.replan) << t.reason;
    EXPECT_NE(t.reason.find("'spare'"), std::string::npos);
}

TEST(ClusterStateReplan, AdmissionPausesUntilTheSchedulerHasDrained) {
    ClusterState s;
    LocalPlan plan;
    const uint64_t e1 = s.set_plan(plan, "first");
    s.set_ready(e1);
    EXPECT_FALSE(s.scheduler_tick(2));  // admitting
    s.pause_admission("drift");
    EXPECT_TRUE(s.snapshot().replanning);
    EXPECT_TRUE(s.snapshot().ready);  // still serving the running requests
    EXPECT_FALSE(s.drained());        // the scheduler has not seen the pause yet
    EXPECT_TRUE(s.scheduler_tick(2));
    EXPECT_FALSE(s.drained());  // two requests still run
    EXPECT_TRUE(s.scheduler_tick(0));
    EXPECT_TRUE(s.drained());
    const uint64_t e2 = s.set_plan(plan, "re-plan", true);
    EXPECT_GT(e2, e1);
    EXPECT_TRUE(s.snapshot().replanning);  // queued requests wait for the new plan
    EXPECT_FALSE(s.snapshot().ready);
    EXPECT_FALSE(s.scheduler_tick(0));  // admission is open again (readiness gates it)
    s.set_ready(e2);
    EXPECT_FALSE(s.snapshot().replanning);
    // A re-plan that is given up.
    s.pause_admission("join");
    EXPECT_TRUE(s.scheduler_tick(1));
    s.resume_admission();
    EXPECT_FALSE(s.scheduler_tick(1));
    EXPECT_FALSE(s.snapshot().replanning);
    EXPECT_FALSE(s.drained());
    // A broken plan ends a re-plan too.
    s.pause_admission("battery");
    s.invalidate("degraded", "worker lost");
    EXPECT_FALSE(s.snapshot().replanning);
    EXPECT_FALSE(s.scheduler_tick(0));
}

TEST(ClusterStateReplan, ViewCarriesNodesPlanAndReasons) {
    ClusterState s;
    ClusterView v;
    v.planner = "measured";
    v.objective = "latency";
    NodeView n;
    n.id = "0123456789abcdef";
    n.name = "phone";
    n.role = "worker";
    n.state = "loading";
    n.load_progress = 0.25;
    n.layers = LayerRange{4, 8};
    n.stage = 1;
    n.profile = profile(n.id, 2.0, 1ull << 30);
    n.rtt_ms = 3.5;
    v.nodes.push_back(n);
    Plan p;
    p.n_layer = 8;
    p.stages = {PlanStage{"c", "coord", {0, 4}}, PlanStage{n.id, "phone", {4, 8}}};
    v.plan = p;
    ReplanRecord r;
    r.trigger = "stage 'phone' measured 5.0 ms/layer vs planned 2.0";
    r.decision = "adopted";
    r.adopted = true;
    r.candidate_ms = 12.5;
    v.replans.push_back(r);
    s.set_view(v);
    const uint64_t e = s.set_plan({}, "x");
    const json j = cluster_view_to_json(s.cluster_view());
    EXPECT_EQ(j["epoch"], e);
    EXPECT_EQ(j["ready"], false);
    EXPECT_EQ(j["planner"], "measured");
    ASSERT_EQ(j["nodes"].size(), 1u);
    EXPECT_EQ(j["nodes"][0]["state"], "loading");
    EXPECT_EQ(j["nodes"][0]["layers"]["first"], 4);
    EXPECT_EQ(j["nodes"][0]["layers"]["last"], 8);
    EXPECT_DOUBLE_EQ(j["nodes"][0]["rtt_ms"].get<double>(), 3.5);
    EXPECT_TRUE(j["nodes"][0]["throughput_bytes_per_s"].is_null());
    EXPECT_DOUBLE_EQ(j["nodes"][0]["profile"]["decode_ms_per_layer"].get<double>(), 2.0);
    EXPECT_EQ(j["plan"]["stages"].size(), 2u);
    EXPECT_EQ(j["replans"][0]["trigger"], r.trigger);
    EXPECT_TRUE(j["replans"][0]["current_ms"].is_null());
}

}  // namespace
}  // namespace colony
