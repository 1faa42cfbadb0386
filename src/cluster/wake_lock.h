// An Android wake lock held through Termux:API while a worker serves, so the
// phone does not suspend its CPU (and drop out of the cluster) when the
// screen goes off. termux-wake-lock / termux-wake-unlock come with Termux
// (its termux-tools package; https://wiki.termux.com/wiki/Termux-wake-lock):
// they ask the Termux app's service to take or release a partial wake lock
// and return.
#pragma once

#include <memory>
#include <string>

namespace colony {

class WakeLock {
  public:
    /// Runs `lock_command` (looked up in PATH) and, on destruction,
    /// `unlock_command`. A missing command, a failure or a timeout
    /// (timeout_ms: the command talks to the Termux app, which may not answer) is a
    /// warning: the lock is then not held and nothing is released.
    WakeLock(std::string lock_command, std::string unlock_command, int timeout_ms = 5000);
    ~WakeLock();
    WakeLock(const WakeLock &) = delete;
    WakeLock &operator=(const WakeLock &) = delete;

    /// Whether the lock command succeeded.
    bool held() const { return held_; }

    /// A WakeLock with termux-wake-lock / termux-wake-unlock when running
    /// under Termux (TERMUX_VERSION set, as Termux sets it), else null.
    static std::unique_ptr<WakeLock> for_termux();

  private:
    std::string unlock_command_;
    int timeout_ms_;
    bool held_ = false;
};

}  // namespace colony
