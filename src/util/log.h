// Minimal leveled logging to stderr: "colony: <level>: message".
// The level is set once at start-up (COLONY_LOG=debug|info|warn|error, or
// set_log_level); logging is thread-safe (one write per line).
#pragma once

#include <cstdarg>

namespace colony {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kQuiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_printf(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace colony

#define COLONY_LOG_DEBUG(...) ::colony::log_printf(::colony::LogLevel::kDebug, __VA_ARGS__)
#define COLONY_LOG_INFO(...) ::colony::log_printf(::colony::LogLevel::kInfo, __VA_ARGS__)
#define COLONY_LOG_WARN(...) ::colony::log_printf(::colony::LogLevel::kWarn, __VA_ARGS__)
#define COLONY_LOG_ERROR(...) ::colony::log_printf(::colony::LogLevel::kError, __VA_ARGS__)
