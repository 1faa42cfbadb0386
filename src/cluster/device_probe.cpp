#include "cluster/device_probe.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <sys/utsname.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif

#include "cluster/cpu_placement.h"
#include "cluster/subprocess.h"
#include "nlohmann/json.hpp"
#include "util/log.h"

namespace colony {
namespace {

namespace fs = std::filesystem;

fs::path under(const std::string &root, const char *rel) {
    return fs::path(root) / rel;
}

/// First `max_bytes` of a small text file; nullopt when it cannot be read
/// (sysfs attributes may fail to read with EINVAL/ENODATA).
std::optional<std::string> read_text(const fs::path &path, size_t max_bytes = 64 * 1024) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::string s(max_bytes, '\0');
    in.read(s.data(), static_cast<std::streamsize>(max_bytes));
    if (in.bad())
        return std::nullopt;
    s.resize(static_cast<size_t>(in.gcount()));
    return s;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::optional<int64_t> parse_int(std::string_view s) {
    s = trim(s);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
        return std::nullopt;
    return v;
}

std::optional<int64_t> read_int(const fs::path &path) {
    auto text = read_text(path, 256);
    if (!text)
        return std::nullopt;
    return parse_int(*text);
}

std::string read_word(const fs::path &path) {
    auto text = read_text(path, 256);
    return text ? std::string(trim(*text)) : std::string();
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// Entries of `dir` whose names start with `prefix`, sorted; empty when the
/// directory cannot be listed.
std::vector<fs::path> list_dir(const fs::path &dir, std::string_view prefix) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.compare(0, prefix.size(), prefix) == 0)
            out.push_back(it->path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<int> present_cores(const std::string &root) {
    const fs::path cpu_dir = under(root, "sys/devices/system/cpu");
    if (auto online = read_text(cpu_dir / "online", 4096)) {
        if (auto list = parse_cpu_list(*online))
            return *list;
    }
    std::vector<int> cores;
    for (const fs::path &p : list_dir(cpu_dir, "cpu")) {
        if (auto id = parse_int(p.filename().string().substr(3)))
            cores.push_back(static_cast<int>(*id));
    }
    if (!cores.empty()) {
        std::sort(cores.begin(), cores.end());
        return cores;
    }
    if (auto cpuinfo = read_text(under(root, "proc/cpuinfo"), 1 << 20)) {
        std::istringstream lines(*cpuinfo);
        int n = 0;
        for (std::string line; std::getline(lines, line);)
            n += line.rfind("processor", 0) == 0;
        for (int i = 0; i < n; ++i)
            cores.push_back(i);
    }
    if (cores.empty() && fs::path(root) == fs::path("/")) {
        const unsigned n = std::max(1u, std::thread::hardware_concurrency());
        for (unsigned i = 0; i < n; ++i)
            cores.push_back(static_cast<int>(i));
    }
    return cores;
}

bool is_cpu_zone(const std::string &type) {
    static const char *const kNames[] = {"cpu",     "soc",          "core",   "tsens",
                                         "cluster", "x86_pkg_temp", "k10temp"};
    for (const char *name : kNames) {
        if (type.find(name) != std::string::npos)
            return true;
    }
    return false;
}

}  // namespace

std::optional<std::vector<int>> parse_cpu_list(std::string_view text) {
    text = trim(text);
    std::vector<int> out;
    if (text.empty())
        return out;
    while (true) {
        const size_t comma = text.find(',');
        const std::string_view item = trim(text.substr(0, comma));
        const size_t dash = item.find('-');
        auto first = parse_int(item.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : parse_int(item.substr(dash + 1));
        if (!first || !last || *first < 0 || *last < *first || *last > 65535)
            return std::nullopt;
        for (int64_t c = *first; c <= *last; ++c)
            out.push_back(static_cast<int>(c));
        if (comma == std::string_view::npos)
            break;
        text.remove_prefix(comma + 1);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::optional<uint64_t> probe_mem_available_bytes(const std::string &root) {
    auto text = read_text(under(root, "proc/meminfo"), 1 << 20);
    if (!text)
        return std::nullopt;
    std::map<std::string, uint64_t> kib;
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string_view value = trim(std::string_view(line).substr(colon + 1));
        if (value.size() >= 2 && value.substr(value.size() - 2) == "kB") {
            value = trim(value.substr(0, value.size() - 2));
        }
        if (auto v = parse_int(value); v && *v >= 0)
            kib[line.substr(0, colon)] = static_cast<uint64_t>(*v);
    }
    if (auto it = kib.find("MemAvailable"); it != kib.end())
        return it->second * 1024;
    if (kib.count("MemFree"))
        return (kib["MemFree"] + kib["Buffers"] + kib["Cached"]) * 1024;
    return std::nullopt;
}

CpuTopology probe_cpu_topology(const std::string &root) {
    CpuTopology topo;
    topo.cores = present_cores(root);
    const fs::path cpu_dir = under(root, "sys/devices/system/cpu");
    // per core: cpu_capacity when the kernel has it, else cpuinfo_max_freq
    auto read_all = [&](const char *rel) {
        std::map<int, int64_t> values;
        for (int core : topo.cores) {
            const fs::path f = cpu_dir / ("cpu" + std::to_string(core)) / rel;
            if (auto v = read_int(f); v && *v > 0)
                values[core] = *v;
        }
        return values;
    };
    const std::map<int, int64_t> capacity = read_all("cpu_capacity");
    const std::map<int, int64_t> max_khz = read_all("cpufreq/cpuinfo_max_freq");
    topo.has_capacity = !capacity.empty();
    topo.has_cpufreq = !max_khz.empty();
    const std::map<int, int64_t> &speed = topo.has_capacity ? capacity : max_khz;
    const double threshold = topo.has_capacity ? 0.5 : 0.8;
    int64_t highest = 0;
    for (const auto &[core, v] : speed)
        highest = std::max(highest, v);
    for (int core : topo.cores) {
        auto it = speed.find(core);
        const bool big = speed.empty() || (it != speed.end() &&
                                           static_cast<double>(it->second) >= threshold * highest);
        (big ? topo.big_cores : topo.little_cores).push_back(core);
    }
    if (fs::path(root) == fs::path("/"))
        return restrict_to_cores(std::move(topo), allowed_cores());
    return topo;
}

CpuTopology restrict_to_cores(CpuTopology t, const std::vector<int> &allowed) {
    auto keep = [&](std::vector<int> v) {
        std::vector<int> out;
        for (int c : v)
            if (std::binary_search(allowed.begin(), allowed.end(), c))
                out.push_back(c);
        return out;
    };
    std::vector<int> cores = keep(t.cores);
    if (cores.empty())
        return t;
    t.cores = std::move(cores);
    t.big_cores = keep(t.big_cores);
    t.little_cores = keep(t.little_cores);
    return t;
}

int default_thread_count(const CpuTopology &topology) {
    return place_threads(topology, CpuOptions{}).n_threads;
}

std::optional<BatteryState> probe_battery_sysfs(const std::string &root) {
    double capacity_sum = 0;
    int n_batteries = 0;
    bool charging = false;
    for (const fs::path &supply : list_dir(under(root, "sys/class/power_supply"), "")) {
        const std::string type = read_word(supply / "type");
        if (type == "Mains" || type == "USB" || type == "Wireless") {
            charging |= read_int(supply / "online").value_or(0) == 1;
            continue;
        }
        if (type != "Battery" || read_word(supply / "scope") == "Device")
            continue;
        auto capacity = read_int(supply / "capacity");
        if (!capacity || *capacity < 0 || *capacity > 100)
            continue;
        capacity_sum += static_cast<double>(*capacity);
        ++n_batteries;
        const std::string status = read_word(supply / "status");
        charging |= status == "Charging" || status == "Full";
    }
    if (n_batteries == 0)
        return std::nullopt;
    return BatteryState{capacity_sum / n_batteries, charging};
}

std::optional<BatteryState> parse_termux_battery_status(std::string_view text) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        COLONY_LOG_WARN("termux-battery-status: output is not a JSON object");
        return std::nullopt;
    }
    auto pct = j.find("percentage");
    if (pct == j.end() || !pct->is_number()) {
        COLONY_LOG_WARN("termux-battery-status: no numeric \"percentage\"");
        return std::nullopt;
    }
    const double percent = pct->get<double>();
    if (!(percent >= 0 && percent <= 100)) {
        COLONY_LOG_WARN("termux-battery-status: percentage %g outside 0..100", percent);
        return std::nullopt;
    }
    auto word = [&](const char *key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const std::string status = word("status");
    const std::string plugged = word("plugged");
    const bool charging =
        status == "CHARGING" || status == "FULL" || (!plugged.empty() && plugged != "UNPLUGGED");
    return BatteryState{percent, charging};
}

std::optional<BatteryState> probe_battery_termux(const std::string &command, int timeout_ms) {
    const std::optional<std::string> path = find_executable(command);
    if (!path)
        return std::nullopt;
    const std::optional<std::string> out = run_and_capture(*path, timeout_ms, 64 * 1024);
    if (!out) {
        COLONY_LOG_WARN("%s failed or timed out after %d ms; battery state unknown", path->c_str(),
                        timeout_ms);
        return std::nullopt;
    }
    return parse_termux_battery_status(*out);
}

std::optional<BatteryState> probe_battery(const std::string &root) {
    if (auto b = probe_battery_sysfs(root))
        return b;
    if (fs::path(root) == fs::path("/"))
        return probe_battery_termux();
    return std::nullopt;
}

std::optional<double> probe_temperature_c(const std::string &root) {
    std::optional<double> hottest_cpu;
    std::optional<double> hottest_any;
    for (const fs::path &zone : list_dir(under(root, "sys/class/thermal"), "thermal_zone")) {
        auto raw = read_int(zone / "temp");
        if (!raw)
            continue;
        const double c = std::llabs(*raw) < 1000 ? static_cast<double>(*raw) : *raw / 1000.0;
        if (c < -40 || c > 150)
            continue;
        hottest_any = std::max(hottest_any.value_or(c), c);
        if (is_cpu_zone(lower(read_word(zone / "type")))) {
            hottest_cpu = std::max(hottest_cpu.value_or(c), c);
        }
    }
    return hottest_cpu ? hottest_cpu : hottest_any;
}

OsInfo probe_os(const std::string &root) {
    OsInfo info;
    struct utsname u {};
    std::string release;
    if (uname(&u) == 0) {
        info.os = u.sysname;
        release = u.release;
        info.arch = u.machine;
    }
    std::error_code ec;
    if (fs::exists(under(root, "system/build.prop"), ec))
        info.os = "Android";
    if (fs::path(root) == fs::path("/") && std::getenv("TERMUX_VERSION"))
        info.os = "Android (Termux)";
    if (!release.empty())
        info.os += " " + release;
    return info;
}

DeviceProfile probe_device_profile(const std::string &root,
                                   std::optional<uint64_t> mem_limit_bytes) {
    DeviceProfile p;
    std::optional<uint64_t> mem = probe_mem_available_bytes(root);
    if (!mem)
        COLONY_LOG_WARN("could not read MemAvailable under %s", root.c_str());
    if (mem_limit_bytes)
        mem = std::min(mem.value_or(*mem_limit_bytes), *mem_limit_bytes);
    p.mem_available_bytes = mem.value_or(0);
    const CpuTopology topo = probe_cpu_topology(root);
    p.n_big_cores = static_cast<int>(topo.big_cores.size());
    p.n_little_cores = static_cast<int>(topo.little_cores.size());
    const CpuPlacement placement = place_threads(topo, CpuOptions{});
    p.n_threads = placement.n_threads;  // default_thread_count(topo)
    p.cpu_cores = format_cpu_list(placement.cores);
    p.battery = probe_battery(root);
    p.temperature_c = probe_temperature_c(root);
    const OsInfo os = probe_os(root);
    p.os = os.os;
    p.arch = os.arch;
    return p;
}

}  // namespace colony
