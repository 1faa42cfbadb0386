// Child processes for `colony run` and the multi-process tests: started with
// fork/exec, their output sent to files, and bound to the parent's life
// (prctl PR_SET_PDEATHSIG: the kernel kills a child when its parent dies,
// even by SIGKILL).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace colony {

class ChildProcess {
  public:
    /// Starts argv[0] (a path) with argv. stdout and stderr go to the given
    /// files (appended; "" = inherit the parent's). The child gets SIGKILL
    /// when the parent dies. Throws Error(kResource) when fork or exec fails
    /// (exec failure is reported by the child's exit code 127).
    ChildProcess(const std::vector<std::string> &argv, const std::string &stdout_path,
                 const std::string &stderr_path);
    /// Stops the child (SIGTERM, then SIGKILL after 3 s) if it still runs.
    ~ChildProcess();
    ChildProcess(const ChildProcess &) = delete;
    ChildProcess &operator=(const ChildProcess &) = delete;

    pid_t pid() const { return pid_; }
    /// True while the child has not exited (reaps it when it has).
    bool running();
    /// Exit status once exited: the exit code, or 128 + signal; -1 while running.
    int exit_code() const { return exit_code_; }
    /// Sends a signal (no effect once reaped).
    void signal(int sig);
    /// Waits up to timeout_ms for the exit; returns true when it exited.
    bool wait(int timeout_ms);
    /// SIGTERM, wait up to grace_ms, then SIGKILL and wait.
    void stop(int grace_ms = 3000);

  private:
    pid_t pid_ = -1;
    int exit_code_ = -1;
};

/// Path of the running executable (/proc/self/exe).
std::string self_executable();

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
/// the port, close). Throws Error(kResource) when no socket can be bound.
uint16_t pick_free_port();

}  // namespace colony
