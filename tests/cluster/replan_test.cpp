// The re-plan policy on a fake clock: sustained drift, short spikes,
// hysteresis (margin), cool-down, forced re-plans on leave and low battery,
// joins.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cluster/replan.h"
#include "util/error.h"

namespace colony {
namespace {

using std::chrono::steady_clock;

struct FakeClock {
    steady_clock::time_point now{};
    void advance(double seconds) {
        now += std::chrono::duration_cast<steady_clock::duration>(
            std::chrono::duration<double>(seconds));
    }
    ReplanPolicy::Clock fn() {
        return [this] { return now; };
    }
};

Plan two_stage_plan() {
    Plan plan;
    plan.n_layer = 28;
    PlanStage a;
    a.node_id = "a";
    a.layers = {0, 14};
    a.decode_ms_per_layer = 2.0;
    PlanStage b;
    b.node_id = "b";
    b.layers = {14, 28};
    b.decode_ms_per_layer = 1.0;
    plan.stages = {a, b};
    return plan;
}

bool has(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}

class Replan : public ::testing::Test {
  protected:
    // Feeds one sample per second for `seconds` seconds; returns the first
    // trigger that asked for a re-plan (or the last answer).
    ReplanTrigger feed(ReplanPolicy &policy, const std::string &node, double ms, int seconds) {
        ReplanTrigger t;
        for (int s = 0; s < seconds; ++s) {
            clock.advance(1);
            policy.record_sample(node, ms);
            t = policy.check();
            if (t.replan)
                return t;
        }
        return t;
    }

    FakeClock clock;
};

TEST_F(Replan, ForcesAPlanWhenNoneIsAdopted) {
    ReplanPolicy policy({}, clock.fn());
    const ReplanTrigger t = policy.check();
    EXPECT_TRUE(t.replan);
    EXPECT_TRUE(t.forced);
    EXPECT_EQ(t.reason, "no plan adopted yet");
}

TEST_F(Replan, SustainedSlowDownTriggersAfterTheWindow) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);  // past the cool-down
    EXPECT_FALSE(policy.check().replan);

    // b runs 50 % slower from t = 41 s. The first sample starts the
    // observation; 10 s later the window is covered.
    ReplanTrigger t = feed(policy, "b", 1.5, 10);
    EXPECT_FALSE(t.replan) << t.reason;
    t = feed(policy, "b", 1.5, 1);
    ASSERT_TRUE(t.replan);
    EXPECT_FALSE(t.forced);
    EXPECT_EQ(t.drifting_nodes, std::vector<std::string>{"b"});
    EXPECT_TRUE(
        has(t.reason, "stage 'b' measured 1.500 ms/layer vs planned 1.000 (+50%) for 10.0 s"))
        << t.reason;
}

TEST_F(Replan, ShortSpikeDoesNotTrigger) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    EXPECT_FALSE(feed(policy, "a", 4.0, 3).replan);  // 3 s at twice the time
    const ReplanTrigger t = feed(policy, "a", 2.0, 30);
    EXPECT_FALSE(t.replan) << t.reason;
    EXPECT_TRUE(has(t.reason, "no re-plan")) << t.reason;
}

TEST_F(Replan, DriftWithinTheThresholdIsIgnored) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    EXPECT_FALSE(feed(policy, "b", 1.2, 60).replan);  // +20 % < 25 %
}

TEST_F(Replan, SpeedUpAlsoCountsAsDrift) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    const ReplanTrigger t = feed(policy, "a", 1.0, 30);
    ASSERT_TRUE(t.replan);
    EXPECT_TRUE(has(t.reason, "(-50%)")) << t.reason;
}

TEST_F(Replan, MostlySlowSamplesStillCountAsSustained) {
    ReplanConfig config;
    config.sustained_fraction = 0.8;
    ReplanPolicy policy(config, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    // One normal sample in every ten: 90 % beyond the threshold.
    ReplanTrigger t;
    for (int s = 0; s < 30 && !t.replan; ++s) {
        clock.advance(1);
        policy.record_sample("b", s % 10 == 0 ? 1.0 : 1.6);
        t = policy.check();
    }
    EXPECT_TRUE(t.replan);
}

TEST_F(Replan, CooldownDefersUnforcedReplans) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    ReplanTrigger t = feed(policy, "b", 2.0, 15);  // t = 15 s, drift sustained since 1 s
    EXPECT_FALSE(t.replan);
    EXPECT_TRUE(has(t.reason, "cool-down has 15.0 s left")) << t.reason;
    EXPECT_TRUE(t.drifting_nodes.empty());
    t = feed(policy, "b", 2.0, 15);
    EXPECT_TRUE(t.replan) << t.reason;
    EXPECT_NEAR(std::chrono::duration<double>(clock.now.time_since_epoch()).count(), 30.0, 1e-6);
}

TEST_F(Replan, CandidateMustBeBetterByTheMargin) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    const ReplanTrigger t = feed(policy, "b", 1.5, 30);
    ASSERT_TRUE(t.replan);

    AdoptDecision d = policy.decide(t, 100.0, 95.0);
    EXPECT_FALSE(d.adopt);
    EXPECT_TRUE(has(d.reason, "keeping the current plan")) << d.reason;
    EXPECT_TRUE(has(d.reason, "not 10% faster")) << d.reason;
    // The measured speed became b's new baseline: the same drift is quiet.
    EXPECT_FALSE(feed(policy, "b", 1.5, 30).replan);
    // A further slow-down is drift again.
    const ReplanTrigger again = feed(policy, "b", 3.0, 30);
    ASSERT_TRUE(again.replan);
    EXPECT_TRUE(has(again.reason, "vs planned 1.500")) << again.reason;

    d = policy.decide(again, 100.0, 85.0);
    EXPECT_TRUE(d.adopt) << d.reason;
    EXPECT_TRUE(has(d.reason, "(15% faster)")) << d.reason;
}

TEST_F(Replan, AdoptionRestartsTheCooldown) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(40);
    const ReplanTrigger t = feed(policy, "b", 1.5, 30);
    ASSERT_TRUE(t.replan);
    policy.adopt(two_stage_plan());  // the candidate, adopted now
    clock.advance(5);
    const AdoptDecision d = policy.decide(t, 100.0, 50.0);
    EXPECT_FALSE(d.adopt);
    EXPECT_TRUE(has(d.reason, "cool-down has 25.0 s left")) << d.reason;
}

TEST_F(Replan, LeaveOfAStageForcesAReplanDuringTheCooldown) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(1);
    policy.record_event(NodeEventKind::kLeave, "c");  // not in the plan
    EXPECT_FALSE(policy.check().replan);
    policy.record_event(NodeEventKind::kLeave, "b");
    const ReplanTrigger t = policy.check();
    ASSERT_TRUE(t.replan);
    EXPECT_TRUE(t.forced);
    EXPECT_EQ(t.reason, "node 'b' left");
    const AdoptDecision d = policy.decide(t, std::numeric_limits<double>::infinity(), 80.0);
    EXPECT_TRUE(d.adopt) << d.reason;
    EXPECT_FALSE(policy.check().replan);  // consumed
}

TEST_F(Replan, LowBatteryOfAStageForcesAdoptionOfASlowerPlan) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    policy.record_event(NodeEventKind::kBatteryLow, "z");  // not in the plan
    EXPECT_FALSE(policy.check().replan);
    policy.record_event(NodeEventKind::kBatteryLow, "a");
    const ReplanTrigger t = policy.check();
    ASSERT_TRUE(t.forced);
    EXPECT_EQ(t.reason, "battery of 'a' is low and not charging");
    // Dropping a device makes the plan slower; forced triggers ignore the margin.
    EXPECT_TRUE(policy.decide(t, 40.0, 55.0).adopt);
}

TEST_F(Replan, JoinWaitsForTheCooldownAndLeaveCancelsIt) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    clock.advance(5);
    policy.record_event(NodeEventKind::kJoin, "c");
    ReplanTrigger t = policy.check();
    EXPECT_FALSE(t.replan);
    EXPECT_TRUE(has(t.reason, "node 'c' joined")) << t.reason;
    EXPECT_TRUE(has(t.reason, "cool-down has 25.0 s left")) << t.reason;
    clock.advance(25);
    t = policy.check();
    EXPECT_TRUE(t.replan);
    EXPECT_EQ(t.reason, "node 'c' joined");
    EXPECT_FALSE(policy.check().replan);  // consumed

    policy.record_event(NodeEventKind::kJoin, "d");
    policy.record_event(NodeEventKind::kLeave, "d");
    EXPECT_FALSE(policy.check().replan);
}

TEST_F(Replan, MeasuredTimeIsTheMedianWithinTheWindow) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    EXPECT_FALSE(policy.measured_ms_per_layer("a").has_value());
    EXPECT_FALSE(policy.measured_ms_per_layer("nobody").has_value());
    for (double ms : {9.0, 2.0, 2.2, 2.1, 50.0}) {
        clock.advance(1);
        policy.record_sample("a", ms);
    }
    EXPECT_DOUBLE_EQ(*policy.measured_ms_per_layer("a"), 2.2);
    policy.record_sample("a", -1);  // ignored
    policy.record_sample("a", std::nan(""));
    EXPECT_DOUBLE_EQ(*policy.measured_ms_per_layer("a"), 2.2);
    clock.advance(30);  // everything ages out of the window
    EXPECT_FALSE(policy.measured_ms_per_layer("a").has_value());
}

TEST_F(Replan, RejectsBadConfig) {
    ReplanConfig c;
    c.drift_threshold = 0;
    EXPECT_THROW(ReplanPolicy(c, clock.fn()), Error);
    c = {};
    c.improvement_margin = 1.0;
    EXPECT_THROW(ReplanPolicy(c, clock.fn()), Error);
    c = {};
    c.cooldown_s = -1;
    EXPECT_THROW(ReplanPolicy(c, clock.fn()), Error);
    c = {};
    c.min_samples = 0;
    EXPECT_THROW(ReplanPolicy(c, clock.fn()), Error);
}

TEST_F(Replan, DecideWithoutATriggerKeepsThePlan) {
    ReplanPolicy policy({}, clock.fn());
    policy.adopt(two_stage_plan());
    EXPECT_FALSE(policy.decide(ReplanTrigger{}, 100, 1).adopt);
}

}  // namespace
}  // namespace colony
