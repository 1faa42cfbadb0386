#include "cluster/plan.h"

#include <cstdio>

namespace colony {

const char *plan_objective_name(PlanObjective objective) {
    switch (objective) {
        case PlanObjective::kLatency:
            return "latency";
        case PlanObjective::kThroughput:
            return "throughput";
    }
    return "unknown";
}

const char *plan_method_name(PlanMethod method) {
    switch (method) {
        case PlanMethod::kOptimal:
            return "optimal";
        case PlanMethod::kProportional:
            return "proportional";
        case PlanMethod::kManual:
            return "manual";
    }
    return "unknown";
}

std::string format_bytes(uint64_t bytes) {
    constexpr double kKiB = 1024.0;
    constexpr double kMiB = kKiB * 1024;
    constexpr double kGiB = kMiB * 1024;
    char buf[64];
    const double b = static_cast<double>(bytes);
    if (b >= kGiB) {
        std::snprintf(buf, sizeof buf, "%.2f GiB", b / kGiB);
    } else if (b >= kMiB) {
        std::snprintf(buf, sizeof buf, "%.1f MiB", b / kMiB);
    } else if (b >= kKiB) {
        std::snprintf(buf, sizeof buf, "%.1f KiB", b / kKiB);
    } else {
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    }
    return buf;
}

}  // namespace colony
