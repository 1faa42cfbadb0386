// StallWatch: a slow pipeline gets time in proportion to its work, a silent
// one is overdue after the base timeout.
#include <gtest/gtest.h>

#include "pipeline/stall_watch.h"

namespace colony {
namespace {

using ms = std::chrono::milliseconds;
const StallWatch::clock::time_point t0{};

TEST(StallWatch, NothingInFlightIsNeverOverdue) {
    StallWatch w(1000);
    EXPECT_FALSE(w.waited_ms(t0 + ms(50000)).has_value());
    EXPECT_FALSE(w.overdue(t0 + ms(50000)));
    EXPECT_EQ(w.allowance_ms(), 1000);
}

TEST(StallWatch, ASilentPipelineIsOverdueAfterTheBaseTimeout) {
    StallWatch w(1000);
    w.sent(1, t0);
    EXPECT_FALSE(w.overdue(t0 + ms(1000)));
    EXPECT_TRUE(w.overdue(t0 + ms(1001)));
    EXPECT_EQ(*w.waited_ms(t0 + ms(1500)), 1500);
}

TEST(StallWatch, LearnsTheTimePerTokenAndAllowsForTheTokensInFlight) {
    StallWatch w(1000);
    // 100 tokens answered after 5 s: 50 ms per token
    const uint64_t a = w.sent(100, t0);
    w.answered(a, t0 + ms(5000));
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 50.0);
    EXPECT_EQ(w.tokens_in_flight(), 0u);
    // 8 prompts of 64 tokens: 512 tokens at 50 ms = 25.6 s of work, with the
    // slack, plus the base
    const StallWatch::clock::time_point t1 = t0 + ms(6000);
    w.sent(512, t1);
    EXPECT_EQ(w.allowance_ms(), 1000 + 10 * 25600);
    EXPECT_FALSE(w.overdue(t1 + ms(257000)));
    EXPECT_TRUE(w.overdue(t1 + ms(257001)));
}

TEST(StallWatch, AnAnswerFinishesEveryOlderUbatchAndRestartsTheClock) {
    StallWatch w(1000);
    w.sent(10, t0);                     // a prefill chunk without outputs
    const uint64_t b = w.sent(10, t0);  // its last chunk
    const uint64_t c = w.sent(1, t0 + ms(10));
    w.answered(b, t0 + ms(200));  // 20 tokens in 200 ms
    EXPECT_EQ(w.tokens_in_flight(), 1u);
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 10.0);
    EXPECT_EQ(*w.waited_ms(t0 + ms(700)), 500);  // from the last answer, not from c's send
    w.answered(b, t0 + ms(800));                 // a repeated answer changes nothing
    EXPECT_EQ(w.tokens_in_flight(), 1u);
    w.answered(c, t0 + ms(900));
    EXPECT_EQ(w.tokens_in_flight(), 0u);
    EXPECT_FALSE(w.waited_ms(t0 + ms(5000)).has_value());
}

TEST(StallWatch, HintsRaiseTheEstimateAndSlowSamplesCountAtOnce) {
    StallWatch w(0);
    w.hint_ms_per_token(20);
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 20.0);
    w.hint_ms_per_token(5);  // a hint is a lower bound
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 20.0);
    const uint64_t a = w.sent(10, t0);
    w.answered(a, t0 + ms(1000));  // 100 ms per token: slower counts at once
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 100.0);
    const uint64_t b = w.sent(10, t0 + ms(1000));
    w.answered(b, t0 + ms(1100));  // 10 ms per token: fades in
    EXPECT_DOUBLE_EQ(w.ms_per_token(), 0.9 * 100 + 0.1 * 10);
}

TEST(StallWatch, IdleRestartsTheClockAndClearForgetsEverything) {
    StallWatch w(1000);
    w.sent(5, t0);  // a chunk of a cancelled prompt: no answer will come
    w.idle(t0 + ms(60000));
    EXPECT_FALSE(w.overdue(t0 + ms(60500)));
    EXPECT_TRUE(w.overdue(t0 + ms(61001)));
    w.clear();
    EXPECT_EQ(w.tokens_in_flight(), 0u);
    EXPECT_FALSE(w.overdue(t0 + ms(90000)));
}

}  // namespace
}  // namespace colony
