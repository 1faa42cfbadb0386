// Network-lab fixtures for the multi-process tests: a lab of hosts in network
// namespaces (scripts/netlab/netlab.sh) and a way to run code inside one.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "pipeline/child_process.h"

namespace colony::test {

/// Path of the `ip` tool, or "" when absent.
inline std::string find_ip() {
    for (const char *p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
        if (::access(p, X_OK) == 0)
            return p;
    }
    return "";
}

/// Runs f on a thread that has entered network namespace `ns`.
template <class F>
auto in_netns(const std::string &ns, F f) {
    return std::async(std::launch::async,
                      [ns, f] {
                          const int fd =
                              ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
                          if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
                              throw std::runtime_error("cannot enter network namespace " + ns);
                          }
                          ::close(fd);
                          return f();
                      })
        .get();
}

/// `netlab.sh up 3` with its own lab id (prefix + pid), torn down at scope
/// exit. Every script run's output (stdout and stderr) is kept for failure
/// messages: a lab that does not come up is a test failure, never a skip.
class Lab {
  public:
    explicit Lab(const std::string &prefix) {
        id_ = prefix + std::to_string(::getpid() % 100000);
        ::setenv("COLONY_NETLAB_ID", id_.c_str(), 1);
        ::setenv("COLONY_NETEM", COLONY_TEST_NETEM, 1);
        const int rc = script({"up", "3", "--profile", "ethernet"});
        up_ = rc == 0;
        up_output_ =
            "netlab.sh up 3 --profile ethernet: exit " + std::to_string(rc) + "\n" + last_output_;
    }
    ~Lab() {
        if (up_)
            script({"down"});
    }
    Lab(const Lab &) = delete;
    Lab &operator=(const Lab &) = delete;
    bool up() const { return up_; }
    /// What `netlab.sh up` printed, with its exit code.
    const std::string &up_output() const { return up_output_; }
    std::string ns(int host) const { return "cl-" + id_ + "-h" + std::to_string(host); }
    /// Runs netlab.sh with args (at most 60 s); returns its exit code and
    /// keeps what it printed for last_output().
    int script(const std::vector<std::string> &args) {
        std::vector<std::string> argv = {"/bin/bash", COLONY_TEST_NETLAB_SH};
        argv.insert(argv.end(), args.begin(), args.end());
        const std::string out = dir_.file("netlab-" + std::to_string(++n_runs_) + ".out");
        bool exited = false;
        int rc = -1;
        {
            ChildProcess p(argv, out, out);  // both appended to one file, in order
            exited = p.wait(60000);
            if (!exited)
                p.stop(1000);
            rc = p.exit_code();
        }
        last_output_ = read_text(out) + (exited ? "" : "\n(netlab.sh timed out after 60 s)");
        return rc;
    }
    /// Output of the latest script() run (stdout and stderr).
    const std::string &last_output() const { return last_output_; }

  private:
    TempDir dir_;
    std::string id_;
    bool up_ = false;
    int n_runs_ = 0;
    std::string up_output_, last_output_;
};

}  // namespace colony::test
