// Device probes: what a node can learn about itself from Linux procfs and
// sysfs (also Android under Termux): available memory, big and little cores,
// battery, temperature, OS and architecture.
// Every reader takes the file-system root ("/" on a real system) so tests can
// build a fake tree in a temporary directory. Readers never throw on missing
// or malformed files: they return what they could read (a file that is not
// there is a normal outcome on many devices).
//
// Sources (Linux ABI documentation):
//   /proc/meminfo                           MemAvailable (kB), Documentation/filesystems/proc.rst
//   /sys/devices/system/cpu/online          core list "0-3,6", ABI/stable/sysfs-devices-system-cpu
//   /sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq   kHz, Documentation/cpu-freq/
//   /sys/devices/system/cpu/cpuN/cpu_capacity   0..1024, ABI/testing/sysfs-devices-system-cpu
//   /sys/class/power_supply/*/{type,scope,capacity,status,online}   ABI/testing/sysfs-class-power
//   /sys/class/thermal/thermal_zone*/{type,temp}   temp in millidegrees C,
//   ABI/testing/sysfs-class-thermal termux-battery-status (Termux:API)      JSON with "percentage",
//   "status", "plugged"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/profile.h"
#include "util/thread_affinity.h"  // pin_current_thread

namespace colony {

/// Big and little cores. Where the kernel reports cpu_capacity (arm64 and
/// Android: the scheduler's relative performance of a core at its highest
/// frequency, 1024 for the fastest), a core is big when its capacity is at
/// least 0.5 x the highest: the prime and middle cores of a 1+4+3 phone are
/// big, the in-order little cores (about a third of the prime's capacity) are
/// not. Otherwise a core is big when its cpuinfo_max_freq is at least 0.8 x
/// the highest core's (a frequency gap is a weaker sign: a 2x A76 2.2 GHz +
/// 6x A55 1.8 GHz chip looks uniform by frequency). Without either every
/// core is big; a core lacking the value its system reports counts as
/// little.
struct CpuTopology {
    std::vector<int> cores;         // online core ids, ascending
    std::vector<int> big_cores;     // subset of cores
    std::vector<int> little_cores;  // cores \ big_cores
    bool has_cpufreq = false;       // at least one core reported cpuinfo_max_freq
    bool has_capacity = false;      // at least one core reported cpu_capacity (used first)
};

struct OsInfo {
    std::string os;    // "Linux 6.1.0-18-amd64", "Android 5.10.198", "Android (Termux) 5.10.198"
    std::string arch;  // uname machine: "x86_64", "aarch64"
};

/// Parses a kernel CPU list such as "0-3,6,8-9" (trailing newline allowed).
/// Returns nullopt when malformed (reversed range, junk, ids over 65535).
std::optional<std::vector<int>> parse_cpu_list(std::string_view text);

/// MemAvailable from <root>/proc/meminfo, bytes. Kernels before 3.14 lack it:
/// then MemFree + Buffers + Cached. nullopt when unreadable.
std::optional<uint64_t> probe_mem_available_bytes(const std::string &root = "/");

/// Online cores (<root>/sys/devices/system/cpu/online, else every cpuN
/// directory, else "processor" lines of /proc/cpuinfo, else
/// std::thread::hardware_concurrency when root is "/") and their classes.
/// With root "/" only the cores this process may run on count
/// (restrict_to_cores with allowed_cores()): Android's cpusets keep a
/// background app on the little cores.
CpuTopology probe_cpu_topology(const std::string &root = "/");

/// `t` less the cores not in `allowed` (ascending ids). Unchanged when
/// `allowed` is empty or holds none of t's cores (a wrong mask must not leave
/// a machine without cores).
CpuTopology restrict_to_cores(CpuTopology t, const std::vector<int> &allowed);

/// Threads to use by default: those of the default placement
/// (place_threads, cluster/cpu_placement.h), the big cores where there are
/// big and little ones.
int default_thread_count(const CpuTopology &topology);

/// Battery from <root>/sys/class/power_supply: mean capacity of the device's
/// own batteries (type Battery, scope not "Device"); charging when a battery
/// reports Charging or Full, or a Mains/USB/Wireless supply is online.
/// nullopt without a battery.
std::optional<BatteryState> probe_battery_sysfs(const std::string &root = "/");

/// Parses the JSON that termux-battery-status prints. charging when status is
/// CHARGING or FULL, or plugged is not UNPLUGGED. nullopt when the JSON is
/// malformed or lacks "percentage" (logged as a warning).
std::optional<BatteryState> parse_termux_battery_status(std::string_view json);

/// Runs `command` (looked up in PATH unless it contains a '/') with no
/// arguments, reads at most 64 KiB of its output, kills it after timeout_ms
/// (termux-battery-status hangs when the Termux:API app is missing) and
/// parses it. nullopt when the command is absent, fails or times out.
std::optional<BatteryState> probe_battery_termux(
    const std::string &command = "termux-battery-status", int timeout_ms = 5000);

/// probe_battery_sysfs, then (only when root is "/" and sysfs shows no
/// battery, as under Termux where SELinux hides it) probe_battery_termux.
std::optional<BatteryState> probe_battery(const std::string &root = "/");

/// Hottest CPU thermal zone (type containing cpu, soc, core, tsens, cluster,
/// x86_pkg_temp or k10temp), else the hottest zone, °C. Values under 1000 in
/// magnitude are taken as degrees (some Android kernels), others as
/// millidegrees; readings outside -40..150 °C are ignored. nullopt when no
/// zone can be read.
std::optional<double> probe_temperature_c(const std::string &root = "/");

/// uname sysname/release and machine; "Android" when <root>/system/build.prop
/// exists, "(Termux)" when TERMUX_VERSION is set (root "/" only).
OsInfo probe_os(const std::string &root = "/");

/// Everything a probe can fill in a DeviceProfile: mem_available_bytes
/// (MemAvailable, lowered to mem_limit_bytes when given; 0 when neither is
/// known), n_big_cores, n_little_cores, n_threads and cpu_cores (the default
/// placement, place_threads), battery, temperature_c, os, arch. Times, model bytes, node id, name,
/// headroom and backend are left for the caller.
DeviceProfile probe_device_profile(const std::string &root = "/",
                                   std::optional<uint64_t> mem_limit_bytes = std::nullopt);

}  // namespace colony
