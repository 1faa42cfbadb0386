// The --max-temp guard's thread counts over a sequence of readings.
#include <gtest/gtest.h>

#include "cluster/thermal_guard.h"

namespace colony {
namespace {

TEST(ThermalGuard, HalvesAtTheLimitAndDoublesBackBelowTheHysteresis) {
    ThermalGuard g(8, 60.0);  // hysteresis 5 °C
    EXPECT_EQ(g.update(50.0), 8);
    EXPECT_FALSE(g.limiting());
    EXPECT_EQ(g.update(60.0), 4);  // at the limit
    EXPECT_TRUE(g.limiting());
    EXPECT_EQ(g.update(63.0), 2);
    EXPECT_EQ(g.update(70.0), 1);
    EXPECT_EQ(g.update(75.0), 1);          // never below one
    EXPECT_EQ(g.update(57.0), 1);          // inside the hysteresis band: stays
    EXPECT_EQ(g.update(std::nullopt), 1);  // no reading: stays
    EXPECT_EQ(g.update(54.9), 2);          // one step per reading
    EXPECT_EQ(g.update(50.0), 4);
    EXPECT_EQ(g.update(50.0), 8);
    EXPECT_EQ(g.update(40.0), 8);  // never above the configured count
    EXPECT_FALSE(g.limiting());
}

TEST(ThermalGuard, OddCountsAndOffSwitch) {
    ThermalGuard g(5, 45.0, 2.0);
    EXPECT_EQ(g.update(45.0), 2);
    EXPECT_EQ(g.update(42.0), 4);
    EXPECT_EQ(g.update(42.0), 5);  // capped at 5, not 8
    ThermalGuard off(4, 0.0);
    EXPECT_FALSE(off.enabled());
    EXPECT_EQ(off.update(120.0), 4);
    ThermalGuard one(0, 50.0);  // at least one thread
    EXPECT_EQ(one.max_threads(), 1);
    EXPECT_EQ(one.update(90.0), 1);
}

}  // namespace
}  // namespace colony
