#include "util/thread_affinity.h"

#include <sched.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace colony {

bool pin_current_thread(const std::vector<int> &cores) {
    if (cores.empty()) {
        COLONY_LOG_WARN("thread pinning: no cores given, not pinning");
        return false;
    }
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cores) {
        if (c < 0 || c >= CPU_SETSIZE) {
            COLONY_LOG_WARN("thread pinning: core %d outside 0..%d, not pinning", c,
                            CPU_SETSIZE - 1);
            return false;
        }
        CPU_SET(c, &set);
    }
    // pid 0: the calling thread (Linux affinity is per thread).
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        COLONY_LOG_WARN("thread pinning: sched_setaffinity failed: %s", std::strerror(errno));
        return false;
    }
    return true;
#else
    COLONY_LOG_WARN("thread pinning is not supported on this system; threads are not pinned");
    return false;
#endif
}

std::vector<int> allowed_cores() {
    std::vector<int> cores;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return cores;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set))
            cores.push_back(c);
#endif
    return cores;
}

}  // namespace colony
