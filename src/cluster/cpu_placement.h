// Where a stage's compute threads run: how many, on which cores, how strictly
// and at which priority. On a big.LITTLE phone, threads on the little cores
// hold the big ones back at every barrier of a graph (the Snapdragon 8 Gen 2
// lesson in the source documents: 30-40 % of decode), so by default a stage
// uses as many threads as the device has big cores and keeps them there.
//
// The options are llama.cpp's (common/arg.cpp, common_cpu_params):
// -C/--cpu-mask (hex), -Cr/--cpu-range (lo-hi), --cpu-strict <0|1>,
// --prio N. What ggml does with them: ggml-cpu.c, ggml_threadpool_new_impl
// (without --cpu-strict every thread may run on any core of the set; with it
// thread i is pinned to the i-th core of the set, wrapping around).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster/device_probe.h"

namespace colony {

/// What the user asked for (every field optional).
struct CpuOptions {
    int n_threads = 0;    // -t; 0 = the default below
    std::string mask;     // -C: hex mask, bit i = core i ("0xf0", "F0"); "" = none
    std::string range;    // -Cr: "lo-hi", "lo-" or "-hi"; "" = none (unions with mask)
    bool strict = false;  // --cpu-strict 1: one core per thread
    int prio = 0;  // --prio: -1 low, 0 normal, 1 medium, 2 high, 3 realtime (ggml_sched_priority)
};

/// The decision: n_threads threads on `cores` (empty: no affinity, the OS
/// places them) with ggml's strict placement and priority.
struct CpuPlacement {
    int n_threads = 1;
    std::vector<int> cores;  // ascending core ids; empty = not pinned
    bool strict = false;
    int prio = 0;
    std::string reason;  // "big cores", "--cpu-mask", "all cores" (for logs and profiles)

    /// "4 threads on cores 4-7 (big cores)" or "8 threads, not pinned (all cores)".
    std::string describe() const;
};

/// Parses llama.cpp's --cpu-mask: hex digits with an optional 0x prefix, the
/// last digit holds cores 0-3. Throws Error(kInvalidArgument) on an empty
/// mask, a non-hex digit, or a set bit at core 512 or above (ggml's
/// threadpool masks hold GGML_MAX_N_THREADS = 512 cores).
std::vector<int> parse_cpu_mask(std::string_view mask);

/// Parses llama.cpp's --cpu-range "lo-hi" (inclusive; "lo-" runs to core
/// 511, "-hi" starts at 0). Throws Error(kInvalidArgument) when malformed,
/// reversed or beyond core 511.
std::vector<int> parse_cpu_range(std::string_view range);

/// "0-3,6,8-9" (the kernel's cpu list format; "" when empty).
std::string format_cpu_list(const std::vector<int> &cores);

/// Decides the placement on `topology`:
///   - --cpu-mask / --cpu-range: their union, kept to the online cores;
///     threads default to that many cores. Throws Error(kInvalidArgument)
///     when no online core is left.
///   - otherwise, on a CPU with big and little cores: the big cores, threads
///     default to their count. Asking for more threads than big cores leaves
///     the threads unpinned on every core (pinning them would stack threads
///     on the big cores).
///   - otherwise (one kind of core): not pinned, threads default to the
///     online cores.
/// --cpu-strict and --prio pass through. n_threads and prio are checked
/// (1..512 threads, prio -1..3) and throw Error(kInvalidArgument).
CpuPlacement place_threads(const CpuTopology &topology, const CpuOptions &options);

}  // namespace colony
