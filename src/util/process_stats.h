// Memory figures of this process, for timing lines, node status and profiles.
#pragma once

#include <cstdint>

namespace colony {

/// Resident set size now, bytes (/proc/self/statm); 0 where unknown.
uint64_t current_rss_bytes();

/// Peak resident set size so far, bytes (getrusage ru_maxrss).
uint64_t peak_rss_bytes();

}  // namespace colony
