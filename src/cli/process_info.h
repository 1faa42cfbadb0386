// Facts about this process for timing lines and profiles.
#pragma once

#include <cstdint>

namespace colony {

/// Peak resident set size of this process so far, bytes (getrusage ru_maxrss).
uint64_t peak_rss_bytes();

/// Routes ggml's and libllama's log output into colony's log at debug level
/// (warnings and errors stay visible). Call once at start-up.
void install_library_logging();

}  // namespace colony
