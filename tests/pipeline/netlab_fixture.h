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

/// `netlab.sh up 3` with its own lab id (prefix + pid), torn down at scope exit.
class Lab {
  public:
    explicit Lab(const std::string &prefix) {
        id_ = prefix + std::to_string(::getpid() % 100000);
        ::setenv("COLONY_NETLAB_ID", id_.c_str(), 1);
        ::setenv("COLONY_NETEM", COLONY_TEST_NETEM, 1);
        up_ = script({"up", "3", "--profile", "ethernet"}) == 0;
    }
    ~Lab() {
        if (up_)
            script({"down"});
    }
    Lab(const Lab &) = delete;
    Lab &operator=(const Lab &) = delete;
    bool up() const { return up_; }
    std::string ns(int host) const { return "cl-" + id_ + "-h" + std::to_string(host); }
    int script(const std::vector<std::string> &args) const {
        std::vector<std::string> argv = {"/bin/bash", COLONY_TEST_NETLAB_SH};
        argv.insert(argv.end(), args.begin(), args.end());
        ChildProcess p(argv, "/dev/null", "/dev/null");
        if (!p.wait(60000))
            p.stop(1000);
        return p.exit_code();
    }

  private:
    std::string id_;
    bool up_ = false;
};

}  // namespace colony::test
