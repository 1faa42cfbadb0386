#include "cluster/wake_lock.h"

#include <cstdlib>
#include <optional>

#include "cluster/subprocess.h"
#include "util/log.h"

namespace colony {
namespace {

/// Runs `command` from PATH; true when it exits 0 within timeout_ms.
bool run_command(const std::string &command, int timeout_ms) {
    const std::optional<std::string> path = find_executable(command);
    if (!path) {
        COLONY_LOG_WARN("%s is not on PATH (Termux ships it in its termux-tools package)",
                        command.c_str());
        return false;
    }
    if (!run_and_capture(*path, timeout_ms, 4096)) {
        COLONY_LOG_WARN("%s failed or did not finish within %d ms", path->c_str(), timeout_ms);
        return false;
    }
    return true;
}

}  // namespace

WakeLock::WakeLock(std::string lock_command, std::string unlock_command, int timeout_ms)
    : unlock_command_(std::move(unlock_command)), timeout_ms_(timeout_ms) {
    held_ = run_command(lock_command, timeout_ms_);
    if (held_)
        COLONY_LOG_INFO("wake lock taken (%s): the phone stays awake while this worker serves",
                        lock_command.c_str());
    else
        COLONY_LOG_WARN(
            "no wake lock: the phone may sleep and drop out of the cluster when its "
            "screen is off");
}

WakeLock::~WakeLock() {
    if (held_ && run_command(unlock_command_, timeout_ms_))
        COLONY_LOG_INFO("wake lock released (%s)", unlock_command_.c_str());
}

std::unique_ptr<WakeLock> WakeLock::for_termux() {
    if (!std::getenv("TERMUX_VERSION"))
        return nullptr;
    return std::make_unique<WakeLock>("termux-wake-lock", "termux-wake-unlock");
}

}  // namespace colony
