// Device probes on fake procfs/sysfs trees built in a temporary directory,
// termux-battery-status through fake commands, and thread pinning.
#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cluster/device_probe.h"
#include "fake_root.h"

namespace colony {
namespace {

namespace fs = std::filesystem;

TEST_F(FakeRoot, MemAvailableFromMeminfo) {
    write("proc/meminfo",
          "MemTotal:       16318412 kB\nMemFree:         1023452 kB\n"
          "MemAvailable:    9216000 kB\nBuffers:          204800 kB\n");
    EXPECT_EQ(probe_mem_available_bytes(root), uint64_t{9216000} * 1024);
}

TEST_F(FakeRoot, MemAvailableFallsBackOnOldKernels) {
    write("proc/meminfo", "MemTotal: 4000 kB\nMemFree: 1000 kB\nBuffers: 200 kB\nCached: 300 kB\n");
    EXPECT_EQ(probe_mem_available_bytes(root), uint64_t{1500} * 1024);
}

TEST_F(FakeRoot, MemAvailableMissing) {
    EXPECT_FALSE(probe_mem_available_bytes(root).has_value());
    write("proc/meminfo", "garbage\n");
    EXPECT_FALSE(probe_mem_available_bytes(root).has_value());
}

TEST(CpuList, ParsesKernelLists) {
    EXPECT_EQ(parse_cpu_list("0-3,6,8-9\n"), (std::vector<int>{0, 1, 2, 3, 6, 8, 9}));
    EXPECT_EQ(parse_cpu_list("5"), (std::vector<int>{5}));
    EXPECT_EQ(parse_cpu_list(""), (std::vector<int>{}));
    EXPECT_FALSE(parse_cpu_list("3-1").has_value());
    EXPECT_FALSE(parse_cpu_list("0-3,x").has_value());
    EXPECT_FALSE(parse_cpu_list("-1").has_value());
    EXPECT_FALSE(parse_cpu_list("0-70000").has_value());
}

TEST_F(FakeRoot, BigAndLittleCoresFromCpufreq) {
    // A phone: 4 x 1.8 GHz little, 3 x 2.4 GHz and 1 x 2.8 GHz big
    // (2.4 >= 0.8 x 2.8).
    for (int c = 0; c < 4; ++c)
        cpu(c, "1800000");
    for (int c = 4; c < 7; ++c)
        cpu(c, "2400000");
    cpu(7, "2800000");
    write("sys/devices/system/cpu/online", "0-7\n");
    CpuTopology t = probe_cpu_topology(root);
    EXPECT_TRUE(t.has_cpufreq);
    EXPECT_EQ(t.cores, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(t.big_cores, (std::vector<int>{4, 5, 6, 7}));
    EXPECT_EQ(t.little_cores, (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(default_thread_count(t), 4);

    write("sys/devices/system/cpu/online", "0-5\n");  // two big cores offline
    t = probe_cpu_topology(root);
    EXPECT_EQ(t.big_cores, (std::vector<int>{4, 5}));
}

TEST_F(FakeRoot, AllCoresBigWithoutCpufreq) {
    for (int c = 0; c < 4; ++c)
        cpu(c, nullptr);
    const CpuTopology t = probe_cpu_topology(root);
    EXPECT_FALSE(t.has_cpufreq);
    EXPECT_EQ(t.big_cores, (std::vector<int>{0, 1, 2, 3}));
    EXPECT_TRUE(t.little_cores.empty());
}

TEST_F(FakeRoot, CoresFromCpuinfoWithoutSysfs) {
    write("proc/cpuinfo", "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n");
    const CpuTopology t = probe_cpu_topology(root);
    EXPECT_EQ(t.cores, (std::vector<int>{0, 1}));
    EXPECT_EQ(t.big_cores.size(), 2u);
}

TEST_F(FakeRoot, BatteryDischarging) {
    write("sys/class/power_supply/BAT0/type", "Battery\n");
    write("sys/class/power_supply/BAT0/capacity", "42\n");
    write("sys/class/power_supply/BAT0/status", "Discharging\n");
    write("sys/class/power_supply/AC/type", "Mains\n");
    write("sys/class/power_supply/AC/online", "0\n");
    const auto b = probe_battery_sysfs(root);
    ASSERT_TRUE(b.has_value());
    EXPECT_DOUBLE_EQ(b->percent, 42);
    EXPECT_FALSE(b->charging);
}

TEST_F(FakeRoot, BatteryOnExternalPowerCountsAsCharging) {
    write("sys/class/power_supply/battery/type", "Battery\n");
    write("sys/class/power_supply/battery/capacity", "80\n");
    write("sys/class/power_supply/battery/status", "Not charging\n");
    write("sys/class/power_supply/usb/type", "USB\n");
    write("sys/class/power_supply/usb/online", "1\n");
    EXPECT_TRUE(probe_battery_sysfs(root)->charging);
}

TEST_F(FakeRoot, BatteryFullCountsAsCharging) {
    write("sys/class/power_supply/BAT1/type", "Battery\n");
    write("sys/class/power_supply/BAT1/capacity", "100\n");
    write("sys/class/power_supply/BAT1/status", "Full\n");
    EXPECT_TRUE(probe_battery_sysfs(root)->charging);
}

TEST_F(FakeRoot, PeripheralBatteriesAndMissingBatteryAreIgnored) {
    EXPECT_FALSE(probe_battery_sysfs(root).has_value());
    write("sys/class/power_supply/hid-mouse/type", "Battery\n");
    write("sys/class/power_supply/hid-mouse/scope", "Device\n");
    write("sys/class/power_supply/hid-mouse/capacity", "5\n");
    EXPECT_FALSE(probe_battery_sysfs(root).has_value());
    EXPECT_FALSE(probe_battery(root).has_value());  // a fake root never runs termux
}

TEST(TermuxBattery, ParsesTermuxBatteryStatus) {
    const char *json = R"({"health":"GOOD","percentage":17,"plugged":"UNPLUGGED",
                           "status":"DISCHARGING","temperature":31.2,"current":-420000})";
    auto b = parse_termux_battery_status(json);
    ASSERT_TRUE(b.has_value());
    EXPECT_DOUBLE_EQ(b->percent, 17);
    EXPECT_FALSE(b->charging);
    b = parse_termux_battery_status(
        R"({"percentage":60,"plugged":"PLUGGED_USB","status":"NOT_CHARGING"})");
    EXPECT_TRUE(b->charging);
    b = parse_termux_battery_status(R"({"percentage":99,"status":"CHARGING"})");
    EXPECT_TRUE(b->charging);
}

TEST(TermuxBattery, RejectsBadOutput) {
    EXPECT_FALSE(parse_termux_battery_status("").has_value());
    EXPECT_FALSE(parse_termux_battery_status("not json").has_value());
    EXPECT_FALSE(parse_termux_battery_status("[1,2]").has_value());
    EXPECT_FALSE(parse_termux_battery_status(R"({"status":"CHARGING"})").has_value());
    EXPECT_FALSE(parse_termux_battery_status(R"({"percentage":"50"})").has_value());
    EXPECT_FALSE(parse_termux_battery_status(R"({"percentage":150})").has_value());
}

TEST_F(FakeRoot, TermuxCommandIsRunAndParsed) {
    const std::string ok = script(
        "battery-ok", R"(echo '{"percentage":33,"plugged":"PLUGGED_AC","status":"CHARGING"}')");
    const auto b = probe_battery_termux(ok, 5000);
    ASSERT_TRUE(b.has_value());
    EXPECT_DOUBLE_EQ(b->percent, 33);
    EXPECT_TRUE(b->charging);

    EXPECT_FALSE(probe_battery_termux(script("battery-fails", "exit 3"), 5000).has_value());
    EXPECT_FALSE(probe_battery_termux(root + "/no-such-command", 5000).has_value());
    EXPECT_FALSE(probe_battery_termux("colony-no-such-command-in-path", 5000).has_value());
}

TEST_F(FakeRoot, HangingTermuxCommandIsKilledAtTheTimeout) {
    // Like termux-battery-status without the Termux:API app: never answers.
    // The sleep is a child of the script: the whole process group must go.
    const std::string hang = script("battery-hangs", "sleep 30 & wait");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(probe_battery_termux(hang, 300).has_value());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // A probe that waited for the script would take its 30 s; the margin is
    // for a loaded machine.
    constexpr double kAllowedS = 20.0;
    std::printf("the hanging probe returned after %.2f s (%.0f s allowed)\n", s, kAllowedS);
    EXPECT_LT(s, kAllowedS);
}

TEST_F(FakeRoot, TemperatureIsTheHottestCpuZone) {
    write("sys/class/thermal/thermal_zone0/type", "cpu-0-0-usr\n");
    write("sys/class/thermal/thermal_zone0/temp", "45000\n");
    write("sys/class/thermal/thermal_zone1/type", "cpu-1-0-usr\n");
    write("sys/class/thermal/thermal_zone1/temp", "52500\n");
    write("sys/class/thermal/thermal_zone2/type", "battery\n");
    write("sys/class/thermal/thermal_zone2/temp", "61000\n");
    write("sys/class/thermal/thermal_zone3/type", "x86_pkg_temp\n");
    write("sys/class/thermal/thermal_zone3/temp", "-273000\n");  // broken sensor, ignored
    EXPECT_DOUBLE_EQ(*probe_temperature_c(root), 52.5);
}

TEST_F(FakeRoot, TemperatureFallsBackToAnyZoneAndDegrees) {
    EXPECT_FALSE(probe_temperature_c(root).has_value());
    write("sys/class/thermal/thermal_zone0/type", "acpitz\n");
    write("sys/class/thermal/thermal_zone0/temp", "47\n");  // some kernels report degrees
    write("sys/class/thermal/thermal_zone1/type", "skin\n");
    write("sys/class/thermal/thermal_zone1/temp", "unreadable\n");
    EXPECT_DOUBLE_EQ(*probe_temperature_c(root), 47);
}

TEST_F(FakeRoot, AndroidIsRecognisedByBuildProp) {
    EXPECT_EQ(probe_os(root).os.rfind("Android", 0), std::string::npos);
    write("system/build.prop", "ro.build.version.release=14\n");
    const OsInfo os = probe_os(root);
    EXPECT_EQ(os.os.rfind("Android ", 0), 0u) << os.os;
    EXPECT_FALSE(os.arch.empty());
}

TEST_F(FakeRoot, DeviceProfileFromAFakePhone) {
    write("proc/meminfo", "MemAvailable: 4194304 kB\n");
    for (int c = 0; c < 6; ++c)
        cpu(c, "1700000");
    for (int c = 6; c < 8; ++c)
        cpu(c, "2900000");
    write("sys/class/power_supply/battery/type", "Battery\n");
    write("sys/class/power_supply/battery/capacity", "64\n");
    write("sys/class/power_supply/battery/status", "Discharging\n");
    write("sys/class/thermal/thermal_zone0/type", "soc_thermal\n");
    write("sys/class/thermal/thermal_zone0/temp", "39000\n");

    DeviceProfile p = probe_device_profile(root);
    EXPECT_EQ(p.mem_available_bytes, uint64_t{4} << 30);
    EXPECT_EQ(p.n_big_cores, 2);
    EXPECT_EQ(p.n_little_cores, 6);
    EXPECT_EQ(p.n_threads, 2);
    ASSERT_TRUE(p.battery.has_value());
    EXPECT_DOUBLE_EQ(p.battery->percent, 64);
    EXPECT_DOUBLE_EQ(*p.temperature_c, 39);

    p = probe_device_profile(root, uint64_t{1} << 30);  // --mem-limit 1G
    EXPECT_EQ(p.mem_available_bytes, uint64_t{1} << 30);
}

TEST(RealSystem, ProbesThisMachine) {
    const auto mem = probe_mem_available_bytes();
    ASSERT_TRUE(mem.has_value());
    EXPECT_GT(*mem, 0u);
    const CpuTopology t = probe_cpu_topology();
    EXPECT_FALSE(t.cores.empty());
    EXPECT_EQ(t.big_cores.size() + t.little_cores.size(), t.cores.size());
    EXPECT_FALSE(probe_os().os.empty());
}

TEST(ThreadPinning, PinsTheCallingThreadOnly) {
    cpu_set_t before;
    ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; ++c) {
        if (CPU_ISSET(c, &before))
            first = c;
    }
    ASSERT_GE(first, 0);
    std::thread worker([first] {
        ASSERT_TRUE(pin_current_thread({first}));
        cpu_set_t now;
        ASSERT_EQ(sched_getaffinity(0, sizeof now, &now), 0);
        EXPECT_EQ(CPU_COUNT(&now), 1);
        EXPECT_TRUE(CPU_ISSET(first, &now));
    });
    worker.join();
    cpu_set_t after;
    ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&before, &after));  // this thread is untouched
}

TEST(ThreadPinning, RefusesBadCoreLists) {
    EXPECT_FALSE(pin_current_thread({}));
    EXPECT_FALSE(pin_current_thread({-1}));
    EXPECT_FALSE(pin_current_thread({CPU_SETSIZE}));
}

}  // namespace
}  // namespace colony
