// Time for timings, timeouts and timestamps.
#pragma once

#include <chrono>
#include <cstdint>

namespace colony {

/// Microseconds on the steady clock (arbitrary epoch; only differences mean anything).
inline int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Seconds since the Unix epoch (wall clock), for timestamps in API responses.
inline int64_t unix_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Microseconds from `a` to `b` on the steady clock (negative when b < a).
inline int64_t us_between(std::chrono::steady_clock::time_point a,
                          std::chrono::steady_clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

/// Milliseconds elapsed on the steady clock since `t` (negative when `t` lies
/// ahead; a default time point gives the time since the clock's epoch, i.e. a
/// large number, so "never" counts as long ago).
inline int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
}

/// Wall-clock time, milliseconds since the Unix epoch (for timestamps people
/// or other hosts read; never for durations).
inline int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Wall-clock time, whole seconds since the Unix epoch.
inline int64_t unix_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace colony
