#include "util/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace colony {
namespace {

LogLevel level_from_env() {
    const char *env = std::getenv("COLONY_LOG");
    if (!env) return LogLevel::kInfo;
    if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
    if (!std::strcmp(env, "warn")) return LogLevel::kWarn;
    if (!std::strcmp(env, "error")) return LogLevel::kError;
    if (!std::strcmp(env, "quiet")) return LogLevel::kQuiet;
    return LogLevel::kInfo;
}

std::atomic<int> g_level{static_cast<int>(level_from_env())};

const char *level_name(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return "debug";
        case LogLevel::kInfo: return "info";
        case LogLevel::kWarn: return "warning";
        case LogLevel::kError: return "error";
        default: return "";
    }
}

}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_printf(LogLevel level, const char *fmt, ...) {
    if (static_cast<int>(level) < g_level.load()) return;
    char body[2048];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(body, sizeof(body), fmt, args);
    va_end(args);
    std::string line = std::string("colony: ") + level_name(level) + ": " + body;
    if (line.empty() || line.back() != '\n') line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace colony
