// Pinning the calling thread to cores (sched_setaffinity on Linux and
// Android; Linux affinity is per thread).
#pragma once

#include <vector>

namespace colony {

/// Pins the calling thread to `cores` (sched_setaffinity on Linux and
/// Android). Returns false and logs a warning when cores is empty or holds an
/// id outside 0..CPU_SETSIZE-1, when the kernel refuses, or on systems without
/// thread affinity (then it does nothing).
bool pin_current_thread(const std::vector<int> &cores);

/// The cores the calling thread may run on (sched_getaffinity), ascending;
/// empty when unknown (other systems, or the call failed).
std::vector<int> allowed_cores();

}  // namespace colony
