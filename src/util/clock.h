// Monotonic time for timings.
#pragma once

#include <chrono>
#include <cstdint>

namespace colony {

/// Microseconds on the steady clock (arbitrary epoch; only differences mean anything).
inline int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace colony
