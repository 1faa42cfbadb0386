// Thread placement options shared by the commands that run a stage on this
// machine: -t/--threads, -C/--cpu-mask, -Cr/--cpu-range, --cpu-strict and
// --prio (llama.cpp's names, common/arg.cpp), decided by place_threads
// (cluster/cpu_placement.h) on this machine's cores.
#pragma once

#include <string>

#include "cli/args.h"
#include "cluster/cpu_placement.h"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

/// The options as parsed (--cpu-strict is 0 or 1, as llama.cpp takes it).
struct CpuArgs {
    int32_t n_threads = 0;
    std::string mask, range;
    int32_t strict = 0;
    int32_t prio = 0;
};

/// Adds -t/--threads (with `threads_help`), -C, -Cr, --cpu-strict and --prio.
inline void add_cpu_args(ArgParser &p, CpuArgs *a,
                         const std::string &threads_help =
                             "compute threads (default: the big cores of a big.LITTLE CPU, "
                             "else all cores)") {
    p.add("-t", "--threads", "N", threads_help, &a->n_threads);
    p.add("-C", "--cpu-mask", "M",
          "cores the compute threads run on, a hex mask (0xf0 = cores 4-7); with --cpu-range, "
          "their union (default: the big cores of a big.LITTLE CPU, else not pinned)",
          &a->mask);
    p.add("-Cr", "--cpu-range", "lo-hi", "cores the compute threads run on, a range", &a->range);
    p.add("", "--cpu-strict", "<0|1>", "1: thread i on the i-th core of the set only", &a->strict);
    p.add("", "--prio", "N",
          "compute thread priority: -1 low, 0 normal, 1 medium, 2 high, 3 realtime", &a->prio);
}

/// Decides the placement on this machine's cores. Throws
/// Error(kInvalidArgument) on a bad mask, range, --cpu-strict or --prio.
inline CpuPlacement resolve_cpu_args(const CpuArgs &a) {
    if (a.strict != 0 && a.strict != 1)
        throw Error(ErrorCode::kInvalidArgument,
                    "--cpu-strict takes 0 or 1, not " + std::to_string(a.strict));
    CpuOptions o;
    o.n_threads = a.n_threads;
    o.mask = a.mask;
    o.range = a.range;
    o.strict = a.strict == 1;
    o.prio = a.prio;
    const CpuPlacement p = place_threads(probe_cpu_topology(), o);
    COLONY_LOG_DEBUG("compute threads: %s", p.describe().c_str());
    return p;
}

/// The placement as a stage takes it.
inline CpuAffinity stage_affinity(const CpuPlacement &p) {
    return CpuAffinity{p.cores, p.strict, p.prio};
}

}  // namespace colony
