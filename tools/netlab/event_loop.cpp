#include "event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace colony::netlab {
namespace {

// epoll tags: kind in the high 32 bits, index or fd in the low 32 bits.
enum Kind : uint64_t { kPort = 1, kTimer = 2, kSignal = 3, kListener = 4, kClient = 5 };
uint64_t tag(Kind kind, uint64_t low) {
    return (static_cast<uint64_t>(kind) << 32) | low;
}

constexpr size_t kMaxFramesPerWake = 64;  // per port, so one busy port cannot starve the others
constexpr size_t kMaxRequestBytes = 4096;

[[noreturn]] void throw_errno(const std::string &what) {
    throw Error(ErrorCode::kResource, what + ": " + std::strerror(errno));
}

}  // namespace

int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

class EventLoop::PortSink : public FrameSink {
  public:
    explicit PortSink(std::vector<std::unique_ptr<PacketPort>> &ports) : ports_(ports) {}
    bool send(size_t port, const Frame &frame) override { return ports_[port]->send(frame); }

  private:
    std::vector<std::unique_ptr<PacketPort>> &ports_;
};

EventLoop::EventLoop(std::vector<std::unique_ptr<PacketPort>> ports, Switch &sw,
                     ControlListener &control, LoopOptions options)
    : ports_(std::move(ports)), switch_(sw), control_(control), options_(options) {
    if (ports_.size() != switch_.port_count()) {
        throw Error(ErrorCode::kInternal, "event loop: port count does not match the switch");
    }
    sink_ = std::make_unique<PortSink>(ports_);
    epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid())
        throw_errno("epoll_create1");
    timer_ = UniqueFd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid())
        throw_errno("timerfd_create");
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0)
        throw_errno("sigprocmask");
    signals_ = UniqueFd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signals_.valid())
        throw_errno("signalfd");
    for (size_t i = 0; i < ports_.size(); ++i)
        add_fd(ports_[i]->fd(), tag(kPort, i));
    add_fd(timer_.get(), tag(kTimer, 0));
    add_fd(signals_.get(), tag(kSignal, 0));
    add_fd(control_.fd(), tag(kListener, 0));
}

EventLoop::~EventLoop() = default;

void EventLoop::add_fd(int fd, uint64_t tag_value) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag_value;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
        throw_errno("epoll_ctl");
}

void EventLoop::arm_timer(int64_t when_ns) {
    if (when_ns == armed_ns_)
        return;
    itimerspec spec{};
    if (when_ns > 0) {
        spec.it_value.tv_sec = when_ns / 1000000000;
        spec.it_value.tv_nsec = when_ns % 1000000000;
    }  // all zero disarms
    if (timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) < 0)
        throw_errno("timerfd_settime");
    armed_ns_ = when_ns;
}

void EventLoop::on_port_readable(size_t index) {
    Frame frame;
    for (size_t n = 0; n < kMaxFramesPerWake && ports_[index]->receive(frame); ++n) {
        switch_.on_frame(index, std::move(frame), monotonic_ns(), *sink_);
        frame = Frame{};
    }
}

void EventLoop::on_control_accept() {
    for (;;) {
        UniqueFd fd = control_.accept_one();
        if (!fd.valid())
            return;
        const int raw = fd.get();
        add_fd(raw, tag(kClient, static_cast<uint32_t>(raw)));
        clients_[raw] = Client{std::move(fd), {}};
    }
}

void EventLoop::on_client_readable(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end())
        return;
    Client &client = it->second;
    char buf[1024];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        client.buffer.append(buf, static_cast<size_t>(n));
    const auto newline = client.buffer.find('\n');
    std::string reply;
    if (newline != std::string::npos) {
        const ControlReply result = execute_control(switch_, client.buffer.substr(0, newline));
        reply = result.text;
        quit_ = quit_ || result.quit;
    } else if (client.buffer.size() > kMaxRequestBytes) {
        reply = "error: request too long\n";
    } else if (n > 0) {
        return;  // wait for the rest of the line
    }
    // The reply is a few kB at most; the client is waiting for it, so a
    // blocking-style loop over a non-blocking socket finishes at once.
    for (size_t sent = 0; sent < reply.size();) {
        const ssize_t w = send(fd, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += static_cast<size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            break;
        }
    }
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    clients_.erase(it);
}

void EventLoop::run() {
    std::vector<epoll_event> events(ports_.size() + 16);
    int timeout_ms = -1;
    while (!quit_) {
        const int n =
            epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw_errno("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const uint64_t t = events[i].data.u64;
            const auto kind = static_cast<Kind>(t >> 32);
            const auto low = static_cast<uint32_t>(t);
            if (kind == kPort) {
                on_port_readable(low);
            } else if (kind == kTimer) {
                uint64_t expirations;
                if (read(timer_.get(), &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
                    throw_errno("timerfd read");
                }
                armed_ns_ = -1;
            } else if (kind == kSignal) {
                COLONY_LOG_INFO("colony-netem: signal received, exiting");
                quit_ = true;
            } else if (kind == kListener) {
                on_control_accept();
            } else if (kind == kClient) {
                on_client_readable(static_cast<int>(low));
            }
        }
        const int64_t now = monotonic_ns();
        const std::optional<int64_t> next = switch_.run_due(now, *sink_);
        if (next && *next - now <= options_.spin_ns) {
            timeout_ms = 0;  // close enough: poll again without sleeping
        } else {
            // Wake spin_ns early and poll the rest of the way, so the wake-up
            // latency of the timer does not add to the emulated delay.
            timeout_ms = -1;
            arm_timer(next ? *next - options_.spin_ns : 0);
        }
    }
}

}  // namespace colony::netlab
