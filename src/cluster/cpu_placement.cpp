#include "cluster/cpu_placement.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "util/error.h"

namespace colony {
namespace {

constexpr int kMaxCores = 512;  // GGML_MAX_N_THREADS (ggml.h)

std::optional<int> parse_core(std::string_view s) {
    if (s.empty() || s.size() > 4)
        return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c)))
            return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

}  // namespace

std::string CpuPlacement::describe() const {
    std::string s = std::to_string(n_threads) + (n_threads == 1 ? " thread" : " threads");
    if (cores.empty())
        s += ", not pinned";
    else
        s += " on cores " + format_cpu_list(cores) + (strict ? " (strict)" : "");
    if (!reason.empty())
        s += " (" + reason + ")";
    return s;
}

std::vector<int> parse_cpu_mask(std::string_view mask) {
    const std::string text(mask);
    if (mask.size() >= 2 && mask[0] == '0' && (mask[1] == 'x' || mask[1] == 'X'))
        mask.remove_prefix(2);
    if (mask.empty())
        throw Error(ErrorCode::kInvalidArgument, "--cpu-mask '" + text + "' is empty");
    std::vector<int> cores;
    const size_t n = mask.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = mask[n - 1 - i];  // the last digit holds cores 0-3
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            throw Error(
                ErrorCode::kInvalidArgument,
                "--cpu-mask '" + text + "': '" + std::string(1, c) + "' is not a hex digit");
        const int v = std::isdigit(static_cast<unsigned char>(c))
                          ? c - '0'
                          : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
        for (int bit = 0; bit < 4; ++bit) {
            if (!(v & (1 << bit)))
                continue;
            const size_t core = 4 * i + bit;
            if (core >= kMaxCores)
                throw Error(ErrorCode::kInvalidArgument,
                            "--cpu-mask '" + text + "' sets core " + std::to_string(core) +
                                "; ggml places threads on cores 0-511 only");
            cores.push_back(static_cast<int>(core));
        }
    }
    std::sort(cores.begin(), cores.end());
    return cores;
}

std::vector<int> parse_cpu_range(std::string_view range) {
    const std::string text(range);
    const size_t dash = range.find('-');
    auto bad = [&](const std::string &why) {
        return Error(ErrorCode::kInvalidArgument, "--cpu-range '" + text + "': " + why);
    };
    if (dash == std::string_view::npos)
        throw bad("expected lo-hi, lo- or -hi");
    const std::string_view lo_s = range.substr(0, dash), hi_s = range.substr(dash + 1);
    const std::optional<int> lo = lo_s.empty() ? std::optional<int>(0) : parse_core(lo_s);
    const std::optional<int> hi =
        hi_s.empty() ? std::optional<int>(kMaxCores - 1) : parse_core(hi_s);
    if (!lo || !hi)
        throw bad("the bounds must be core numbers");
    if (*lo >= kMaxCores || *hi >= kMaxCores)
        throw bad("ggml places threads on cores 0-511 only");
    if (*hi < *lo)
        throw bad("the range is reversed");
    std::vector<int> cores;
    for (int c = *lo; c <= *hi; ++c)
        cores.push_back(c);
    return cores;
}

std::string format_cpu_list(const std::vector<int> &cores) {
    std::string s;
    for (size_t i = 0; i < cores.size();) {
        size_t j = i;
        while (j + 1 < cores.size() && cores[j + 1] == cores[j] + 1)
            ++j;
        if (!s.empty())
            s += ',';
        s += std::to_string(cores[i]);
        if (j > i)
            s += '-' + std::to_string(cores[j]);
        i = j + 1;
    }
    return s;
}

CpuPlacement place_threads(const CpuTopology &topology, const CpuOptions &options) {
    if (options.n_threads < 0 || options.n_threads > kMaxCores)
        throw Error(ErrorCode::kInvalidArgument,
                    "--threads " + std::to_string(options.n_threads) + " is outside 0..512");
    if (options.prio < -1 || options.prio > 3)
        throw Error(ErrorCode::kInvalidArgument, "--prio " + std::to_string(options.prio) +
                                                     " is outside -1 (low) .. 3 (realtime)");
    CpuPlacement p;
    p.strict = options.strict;
    p.prio = options.prio;
    const int n_online = std::max<int>(1, static_cast<int>(topology.cores.size()));
    if (!options.mask.empty() || !options.range.empty()) {
        std::set<int> asked;
        if (!options.mask.empty())
            for (int c : parse_cpu_mask(options.mask))
                asked.insert(c);
        if (!options.range.empty())
            for (int c : parse_cpu_range(options.range))
                asked.insert(c);
        for (int c : topology.cores)
            if (asked.count(c))
                p.cores.push_back(c);
        if (p.cores.empty())
            throw Error(ErrorCode::kInvalidArgument,
                        "--cpu-mask/--cpu-range select no online core (online: " +
                            format_cpu_list(topology.cores) + ")");
        p.reason = options.mask.empty() ? "--cpu-range" : "--cpu-mask";
        p.n_threads = options.n_threads > 0 ? options.n_threads : static_cast<int>(p.cores.size());
        return p;
    }
    const int n_big = static_cast<int>(topology.big_cores.size());
    if (!topology.little_cores.empty() && n_big > 0 &&
        (options.n_threads == 0 || options.n_threads <= n_big)) {
        p.cores = topology.big_cores;
        p.reason = "big cores";
        p.n_threads = options.n_threads > 0 ? options.n_threads : n_big;
        return p;
    }
    p.reason = topology.little_cores.empty() ? "all cores"
               : n_big == 0                  ? "no big core may be used"
                                             : "more threads than big cores";
    p.n_threads = options.n_threads > 0 ? options.n_threads : n_online;
    return p;
}

}  // namespace colony
