// Unit tests of the link model (tools/netlab/link_model.h): delay, jitter
// without reordering, rate, loss, tail drop, cut, settings parsing.
#include "link_model.h"

#include <gtest/gtest.h>

#include <random>

#include "util/error.h"

namespace colony::netlab {
namespace {

constexpr int64_t kMs = 1000000;

LinkParams params_from(std::initializer_list<const char *> settings) {
    LinkParams p;
    for (const char *s : settings)
        apply_setting(p, s);
    return p;
}

TEST(LinkModel, DelayWithoutJitterIsExact) {
    LinkDirection link;
    link.set_params(params_from({"delay_ms=3"}));
    std::mt19937_64 rng(1);
    const Verdict v = link.admit(100 * kMs, 1514, rng);
    ASSERT_TRUE(v.depart_ns);
    EXPECT_EQ(*v.depart_ns, 103 * kMs);
}

TEST(LinkModel, JitterStaysInRangeAndNeverReorders) {
    LinkDirection link;
    link.set_params(params_from({"delay_ms=10", "jitter_ms=5"}));
    std::mt19937_64 rng(7);
    int64_t previous = 0;
    int64_t lowest = INT64_MAX, highest = 0;
    for (int i = 0; i < 10000; ++i) {
        const int64_t now = i * kMs / 10;  // 0.1 ms apart: jitter would reorder without FIFO
        const Verdict v = link.admit(now, 100, rng);
        ASSERT_TRUE(v.depart_ns);
        EXPECT_GE(*v.depart_ns, previous);
        EXPECT_GE(*v.depart_ns - now, 5 * kMs);
        EXPECT_LE(*v.depart_ns - now, 15 * kMs);
        lowest = std::min(lowest, *v.depart_ns - now);
        highest = std::max(highest, *v.depart_ns - now);
        previous = *v.depart_ns;
    }
    EXPECT_GT(highest - lowest, 2 * kMs);  // the jitter did vary the delay
}

TEST(LinkModel, IsolatedFramesSeeUniformJitter) {
    LinkDirection link;
    link.set_params(params_from({"delay_ms=3", "jitter_ms=1"}));
    std::mt19937_64 rng(3);
    double sum = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        const int64_t now = static_cast<int64_t>(i) * 100 * kMs;  // far apart: FIFO never binds
        sum += static_cast<double>(*link.admit(now, 100, rng).depart_ns - now);
    }
    EXPECT_NEAR(sum / n / kMs, 3.0, 0.02);
}

TEST(LinkModel, FramesWithinTheHoldShareOneJitterDraw) {
    LinkDirection link;
    link.set_params(params_from({"delay_ms=10", "jitter_ms=5", "jitter_hold_ms=1"}));
    std::mt19937_64 rng(5);
    for (int message = 0; message < 100; ++message) {
        const int64_t start = message * 20 * kMs;  // messages 20 ms apart, 12 frames 10 us apart
        const int64_t first = *link.admit(start, 1514, rng).depart_ns - start;
        for (int i = 1; i < 12; ++i) {
            const int64_t now = start + i * 10000;
            EXPECT_EQ(*link.admit(now, 1514, rng).depart_ns - now, first);
        }
    }
}

TEST(LinkModel, ZeroHoldDrawsPerFrame) {
    LinkDirection link;
    link.set_params(params_from({"delay_ms=10", "jitter_ms=5", "jitter_hold_ms=0"}));
    std::mt19937_64 rng(5);
    // 12 frames 10 us apart: FIFO makes each leave no earlier than the largest
    // draw so far, so the last one waits close to delay + jitter.
    double last_delay_sum = 0;
    for (int message = 0; message < 100; ++message) {
        const int64_t start = message * 20 * kMs;
        int64_t delay = 0;
        for (int i = 0; i < 12; ++i) {
            const int64_t now = start + i * 10000;
            delay = *link.admit(now, 1514, rng).depart_ns - now;
        }
        last_delay_sum += static_cast<double>(delay);
    }
    EXPECT_GT(last_delay_sum / 100 / kMs, 13.5);  // E[max of 12 draws] = 14.2 ms
}

TEST(LinkModel, RateSerializesFrames) {
    LinkDirection link;
    link.set_params(params_from({"rate_mbit=12", "delay_ms=1"}));  // 1500 B = 1 ms at 12 Mbit/s
    std::mt19937_64 rng(1);
    int64_t last = 0;
    for (int i = 0; i < 100; ++i)
        last = *link.admit(0, 1500, rng).depart_ns;
    EXPECT_EQ(last, 100 * kMs + 1 * kMs);  // 100 frames back to back, then the delay
    // After the link drained, a frame only pays its own transmission time.
    EXPECT_EQ(*link.admit(500 * kMs, 1500, rng).depart_ns, 502 * kMs);
}

TEST(LinkModel, TailDropsWhenBacklogExceedsQueue) {
    LinkDirection link;
    link.set_params(params_from({"rate_mbit=12", "queue_kb=15"}));  // room for 10 frames of 1500 B
    std::mt19937_64 rng(1);
    int forwarded = 0;
    for (int i = 0; i < 20; ++i)
        forwarded += link.admit(0, 1500, rng).depart_ns ? 1 : 0;
    EXPECT_EQ(forwarded, 10);
    EXPECT_EQ(link.counters().dropped_queue, 10u);
}

TEST(LinkModel, LossMatchesProbability) {
    LinkDirection link;
    link.set_params(params_from({"loss_pct=10"}));
    std::mt19937_64 rng(11);
    int lost = 0;
    const int n = 100000;
    for (int i = 0; i < n; ++i) {
        const Verdict v = link.admit(i, 100, rng);
        if (!v.depart_ns) {
            EXPECT_EQ(v.reason, DropReason::kLoss);
            ++lost;
        }
    }
    EXPECT_NEAR(static_cast<double>(lost) / n, 0.10, 0.005);
    EXPECT_EQ(link.counters().dropped_loss, static_cast<uint64_t>(lost));
}

TEST(LinkModel, CutDropsEverythingAndRestoreForwards) {
    LinkDirection link;
    std::mt19937_64 rng(1);
    link.set_cut(true);
    const Verdict cut = link.admit(0, 100, rng);
    EXPECT_FALSE(cut.depart_ns);
    EXPECT_EQ(cut.reason, DropReason::kCut);
    link.set_cut(false);
    EXPECT_TRUE(link.admit(1, 100, rng).depart_ns);
}

TEST(LinkModel, NamedProfilesMatchTheTable) {
    const LinkParams wifi_poor = profile_by_name("wifi-poor");
    EXPECT_EQ(wifi_poor.delay_ns, 10 * kMs);
    EXPECT_EQ(wifi_poor.jitter_ns, 5 * kMs);
    EXPECT_DOUBLE_EQ(wifi_poor.rate_bps, 30e6);
    EXPECT_DOUBLE_EQ(wifi_poor.loss, 0.005);
    EXPECT_EQ(profile_by_name("ethernet").delay_ns, kMs / 4);
    EXPECT_DOUBLE_EQ(profile_by_name("ethernet").rate_bps, 1e9);
    EXPECT_EQ(profile_by_name("loopback").delay_ns, 0);
    EXPECT_DOUBLE_EQ(profile_by_name("loopback").rate_bps, 0);
}

TEST(LinkModel, SettingsOverrideAProfile) {
    const LinkParams p = params_from({"profile=wifi", "loss_pct=1"});
    EXPECT_EQ(p.delay_ns, 3 * kMs);
    EXPECT_DOUBLE_EQ(p.loss, 0.01);
}

TEST(LinkModel, RejectsBadSettings) {
    LinkParams p;
    EXPECT_THROW(apply_setting(p, "delay_ms"), Error);
    EXPECT_THROW(apply_setting(p, "delay_ms=abc"), Error);
    EXPECT_THROW(apply_setting(p, "delay_ms=3x"), Error);
    EXPECT_THROW(apply_setting(p, "delay_ms=-1"), Error);
    EXPECT_THROW(apply_setting(p, "loss_pct=101"), Error);
    EXPECT_THROW(apply_setting(p, "bandwidth=3"), Error);
    EXPECT_THROW(apply_setting(p, "profile=lte"), Error);
    EXPECT_THROW(validate(params_from({"delay_ms=1", "jitter_ms=2"})), Error);
    EXPECT_THROW(validate(params_from({"rate_mbit=0.001"})), Error);
    LinkDirection link;
    EXPECT_THROW(link.set_params(params_from({"jitter_ms=1"})), Error);
}

}  // namespace
}  // namespace colony::netlab
