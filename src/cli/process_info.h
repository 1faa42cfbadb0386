// Process set-up shared by the commands (library logging).
#pragma once

#include <cstdint>

#include "util/process_stats.h"  // peak_rss_bytes for the commands' timing lines

namespace colony {

/// Routes ggml's and libllama's log output into colony's log at debug level
/// (warnings and errors stay visible). Call once at start-up.
void install_library_logging();

}  // namespace colony
