// colony-netem's single-threaded event loop: reads frames from every switch
// port, hands them to the Switch, sends queued frames at their departure
// times (timerfd, CLOCK_MONOTONIC, absolute), and serves the control socket.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control.h"
#include "packet_port.h"
#include "switch.h"
#include "unique_fd.h"

namespace colony::netlab {

/// Timing knobs of the loop.
struct LoopOptions {
    /// The timer is armed this long before the next departure and the loop
    /// then polls without sleeping until it is due, so departures are not late
    /// by the timer's wake-up latency (tens of us on a VM). Costs CPU only
    /// while a frame is that close to leaving. ns, >= 0.
    int64_t spin_ns = 0;
};

/// Owns the ports, the switch, the control listener and the epoll set.
class EventLoop {
  public:
    /// `ports[i]` is switch port index i (same order as the Switch's ids).
    /// Throws colony::Error(kResource) when epoll, timerfd or signalfd fail.
    EventLoop(std::vector<std::unique_ptr<PacketPort>> ports, Switch &sw, ControlListener &control,
              LoopOptions options);
    ~EventLoop();

    /// Runs until a "quit" request, SIGINT or SIGTERM. Throws on socket errors.
    void run();

  private:
    class PortSink;
    void add_fd(int fd, uint64_t tag);
    void on_port_readable(size_t index);
    void on_control_accept();
    void on_client_readable(int fd);
    void arm_timer(int64_t when_ns);

    std::vector<std::unique_ptr<PacketPort>> ports_;
    Switch &switch_;
    ControlListener &control_;
    LoopOptions options_;
    UniqueFd epoll_;
    UniqueFd timer_;
    UniqueFd signals_;
    std::unique_ptr<PortSink> sink_;
    struct Client {
        UniqueFd fd;
        std::string buffer;
    };
    std::map<int, Client> clients_;
    int64_t armed_ns_ = -1;
    bool quit_ = false;
};

/// CLOCK_MONOTONIC now, ns.
int64_t monotonic_ns();

}  // namespace colony::netlab
