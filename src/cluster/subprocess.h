// Running a small helper program with a deadline and capturing its output
// (used for termux-battery-status, which can hang forever).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace colony {

/// Runs the executable at `path` with no arguments in its own process group,
/// stdout captured (at most max_bytes), stderr and stdin on /dev/null. When it
/// has not finished within timeout_ms, the process group is killed
/// (SIGKILL). Returns stdout when it exits with status 0 in time, nullopt
/// otherwise (spawn failure, non-zero exit, signal, timeout).
std::optional<std::string> run_and_capture(const std::string &path, int timeout_ms,
                                           size_t max_bytes);

/// Locates an executable: `command` itself when it contains a '/', else the
/// first PATH directory holding an executable of that name. nullopt when
/// there is none.
std::optional<std::string> find_executable(const std::string &command);

}  // namespace colony
