// Thread placement on fake sysfs trees of real CPU layouts (cpu_capacity and
// cpuinfo_max_freq as the kernels of those devices report them), and
// llama.cpp's --cpu-mask / --cpu-range parsing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cluster/cpu_placement.h"
#include "fake_root.h"
#include "util/error.h"

namespace colony {
namespace {

/// One core kind of a layout: how many, their max frequency (kHz) and their
/// cpu_capacity (0 = the kernel does not report it).
struct CoreKind {
    int count;
    int max_khz;
    int capacity;
};

class Layout : public FakeRoot {
  protected:
    /// Cores numbered from 0 in the order given (little clusters first, as
    /// Android kernels number them).
    CpuTopology build(std::initializer_list<CoreKind> kinds) {
        int core = 0;
        for (const CoreKind &k : kinds) {
            for (int i = 0; i < k.count; ++i, ++core) {
                const std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(core);
                write(dir + "/cpufreq/cpuinfo_max_freq", std::to_string(k.max_khz) + "\n");
                if (k.capacity > 0)
                    write(dir + "/cpu_capacity", std::to_string(k.capacity) + "\n");
            }
        }
        write("sys/devices/system/cpu/online", "0-" + std::to_string(core - 1) + "\n");
        return probe_cpu_topology(root);
    }
};

std::vector<int> range(int first, int last) {
    std::vector<int> v;
    for (int c = first; c <= last; ++c)
        v.push_back(c);
    return v;
}

// Snapdragon 8 Gen 2: 3x Cortex-A510 2.02 GHz, 2x A715 + 2x A710 2.8 GHz,
// 1x Cortex-X3 3.19 GHz ("1+4+3"). The prime and the four middle cores are
// big; the three A510 are not.
TEST_F(Layout, Snapdragon8Gen2OnePlusFourPlusThree) {
    const CpuTopology t = build({{3, 2016000, 325}, {4, 2803200, 870}, {1, 3187200, 1024}});
    EXPECT_TRUE(t.has_capacity);
    EXPECT_EQ(t.big_cores, range(3, 7));
    EXPECT_EQ(t.little_cores, range(0, 2));
    const CpuPlacement p = place_threads(t, {});
    EXPECT_EQ(p.n_threads, 5);
    EXPECT_EQ(p.cores, range(3, 7));
    EXPECT_EQ(p.reason, "big cores");
    EXPECT_EQ(p.describe(), "5 threads on cores 3-7 (big cores)");
}

// Snapdragon 730: 6x Cortex-A55 1.8 GHz, 2x Cortex-A76 2.2 GHz ("2+6"). By
// frequency alone the A55 pass the 0.8 rule (1.8 / 2.2 = 0.82); their
// capacity (about 40 % of the A76) marks them little.
TEST_F(Layout, Snapdragon730TwoPlusSix) {
    const CpuTopology t = build({{6, 1804800, 411}, {2, 2208000, 1024}});
    EXPECT_EQ(t.big_cores, range(6, 7));
    const CpuPlacement p = place_threads(t, {});
    EXPECT_EQ(p.n_threads, 2);
    EXPECT_EQ(p.cores, range(6, 7));
}

TEST_F(Layout, TwoPlusSixWithoutCapacityLooksUniform) {
    // The documented weakness of the frequency rule (device_probe.h).
    const CpuTopology t = build({{6, 1804800, 0}, {2, 2208000, 0}});
    EXPECT_FALSE(t.has_capacity);
    EXPECT_TRUE(t.little_cores.empty());
    const CpuPlacement p = place_threads(t, {});
    EXPECT_EQ(p.n_threads, 8);
    EXPECT_TRUE(p.cores.empty());
}

// Snapdragon 845: 4x Cortex-A55 1.77 GHz, 4x Cortex-A75 2.8 GHz ("4+4"), by
// capacity and by frequency alone.
TEST_F(Layout, Snapdragon845FourPlusFour) {
    CpuTopology t = build({{4, 1766400, 395}, {4, 2803200, 1024}});
    EXPECT_EQ(t.big_cores, range(4, 7));
    EXPECT_EQ(place_threads(t, {}).cores, range(4, 7));
    fs::remove_all(root);
    t = build({{4, 1766400, 0}, {4, 2803200, 0}});
    EXPECT_FALSE(t.has_capacity);
    EXPECT_EQ(t.big_cores, range(4, 7));
    const CpuPlacement p = place_threads(t, {});
    EXPECT_EQ(p.n_threads, 4);
    EXPECT_EQ(p.cores, range(4, 7));
}

// A laptop or server: one kind of core. Nothing is pinned.
TEST_F(Layout, UniformCoresAreNotPinned) {
    const CpuTopology t = build({{8, 3000000, 0}});
    EXPECT_TRUE(t.little_cores.empty());
    const CpuPlacement p = place_threads(t, {});
    EXPECT_EQ(p.n_threads, 8);
    EXPECT_TRUE(p.cores.empty());
    EXPECT_EQ(p.describe(), "8 threads, not pinned (all cores)");
    CpuOptions o;
    o.n_threads = 3;
    EXPECT_EQ(place_threads(t, o).n_threads, 3);
}

TEST_F(Layout, ThreadCountWithinTheBigCoresStaysThere) {
    const CpuTopology t = build({{3, 2016000, 325}, {4, 2803200, 870}, {1, 3187200, 1024}});
    CpuOptions o;
    o.n_threads = 2;
    CpuPlacement p = place_threads(t, o);
    EXPECT_EQ(p.n_threads, 2);
    EXPECT_EQ(p.cores, range(3, 7));
    // more threads than big cores: pinning them would stack two on a core
    o.n_threads = 8;
    p = place_threads(t, o);
    EXPECT_EQ(p.n_threads, 8);
    EXPECT_TRUE(p.cores.empty());
    EXPECT_EQ(p.reason, "more threads than big cores");
}

TEST_F(Layout, MaskAndRangeOverrideAndKeepToOnlineCores) {
    const CpuTopology t = build({{4, 1766400, 395}, {4, 2803200, 1024}});
    CpuOptions o;
    o.mask = "0x3";   // cores 0-1 (little, as the user asks)
    o.range = "6-9";  // 8 and 9 are not online
    o.strict = true;
    o.prio = 2;
    const CpuPlacement p = place_threads(t, o);
    EXPECT_EQ(p.cores, (std::vector<int>{0, 1, 6, 7}));
    EXPECT_EQ(p.n_threads, 4);
    EXPECT_TRUE(p.strict);
    EXPECT_EQ(p.prio, 2);
    EXPECT_EQ(p.reason, "--cpu-mask");
    EXPECT_EQ(p.describe(), "4 threads on cores 0-1,6-7 (strict) (--cpu-mask)");

    CpuOptions off;
    off.range = "8-15";
    EXPECT_THROW(place_threads(t, off), Error);
    CpuOptions prio;
    prio.prio = 4;
    EXPECT_THROW(place_threads(t, prio), Error);
    CpuOptions threads;
    threads.n_threads = -2;
    EXPECT_THROW(place_threads(t, threads), Error);
}

// Android's cpusets keep a background app on some cores: only those count.
TEST_F(Layout, OnlyTheCoresThisProcessMayUseCount) {
    const CpuTopology t = build({{3, 2016000, 325}, {4, 2803200, 870}, {1, 3187200, 1024}});
    CpuTopology r = restrict_to_cores(t, range(0, 4));  // the little cores and two middle ones
    EXPECT_EQ(r.cores, range(0, 4));
    EXPECT_EQ(r.big_cores, range(3, 4));
    CpuPlacement p = place_threads(r, {});
    EXPECT_EQ(p.n_threads, 2);
    EXPECT_EQ(p.cores, range(3, 4));
    r = restrict_to_cores(t, range(0, 2));  // the little cores only: not pinned, every one used
    EXPECT_TRUE(r.big_cores.empty());
    p = place_threads(r, {});
    EXPECT_EQ(p.n_threads, 3);
    EXPECT_TRUE(p.cores.empty());
    EXPECT_EQ(p.reason, "no big core may be used");
    EXPECT_EQ(restrict_to_cores(t, {}).cores, t.cores);     // unknown: unchanged
    EXPECT_EQ(restrict_to_cores(t, {100}).cores, t.cores);  // none of them: unchanged
}

TEST(CpuMask, ParsesLlamaCppHexMasks) {
    EXPECT_EQ(parse_cpu_mask("0xf0"), range(4, 7));
    EXPECT_EQ(parse_cpu_mask("F0"), range(4, 7));
    EXPECT_EQ(parse_cpu_mask("1"), (std::vector<int>{0}));
    EXPECT_EQ(parse_cpu_mask("0x100000000"), (std::vector<int>{32}));
    EXPECT_EQ(parse_cpu_mask("0"), (std::vector<int>{}));
    EXPECT_THROW(parse_cpu_mask(""), Error);
    EXPECT_THROW(parse_cpu_mask("0x"), Error);
    EXPECT_THROW(parse_cpu_mask("0xg1"), Error);
    EXPECT_THROW(parse_cpu_mask("1" + std::string(128, '0')), Error);  // core 512
    EXPECT_EQ(parse_cpu_mask("8" + std::string(127, '0')), (std::vector<int>{511}));
}

TEST(CpuRange, ParsesLlamaCppRanges) {
    EXPECT_EQ(parse_cpu_range("4-7"), range(4, 7));
    EXPECT_EQ(parse_cpu_range("-2"), range(0, 2));
    EXPECT_EQ(parse_cpu_range("510-"), range(510, 511));
    EXPECT_EQ(parse_cpu_range("3-3"), (std::vector<int>{3}));
    EXPECT_THROW(parse_cpu_range("4"), Error);
    EXPECT_THROW(parse_cpu_range("7-4"), Error);
    EXPECT_THROW(parse_cpu_range("a-b"), Error);
    EXPECT_THROW(parse_cpu_range("0-512"), Error);
    EXPECT_THROW(parse_cpu_range("0-99999"), Error);
}

TEST(CpuList, FormatsKernelLists) {
    EXPECT_EQ(format_cpu_list({}), "");
    EXPECT_EQ(format_cpu_list({5}), "5");
    EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
    EXPECT_EQ(parse_cpu_list(format_cpu_list(range(4, 11))), range(4, 11));
}

}  // namespace
}  // namespace colony
