// colony-netem: a user-space link emulator for colony's network lab
// (scripts/netlab/netlab.sh, docs/netlab.md). It is the "switch" between the
// lab's hosts: one AF_PACKET port per host veth, per-direction delay, jitter,
// rate and loss, cut/restore, controlled over a UNIX socket.
//
//   colony-netem run --ctl PATH --port ID=IFNAME... [--set key=value...]
//                    [--seed N] [--spin-us N] [--rt] [--keep-offloads]
//   colony-netem ctl PATH REQUEST...       send one control request, print the reply
//   colony-netem offloads-off IFNAME...    TSO/GSO/GRO off (run inside a host's netns)
//   colony-netem profiles                  print the named link profiles
//
// Exit status: 0 success, 1 a failure (one line on stderr), 2 bad usage.
#include <sched.h>
#include <sys/prctl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "control.h"
#include "event_loop.h"
#include "link_model.h"
#include "packet_port.h"
#include "switch.h"
#include "util/error.h"
#include "util/log.h"

namespace colony::netlab {
namespace {

constexpr const char *kUsage =
    "usage:\n"
    "  colony-netem run --ctl PATH --port ID=IFNAME [--port ID=IFNAME]... [--set key=value]...\n"
    "                   [--seed N] [--spin-us N] [--rt] [--keep-offloads]\n"
    "  colony-netem ctl PATH REQUEST...\n"
    "  colony-netem offloads-off IFNAME...\n"
    "  colony-netem profiles\n"
    "settings: profile=NAME delay_ms= jitter_ms= rate_mbit= loss_pct= queue_kb=\n";

struct RunOptions {
    std::string ctl_path;
    std::vector<int> port_ids;
    std::vector<std::string> port_names;
    LinkParams initial;
    uint64_t seed = std::random_device{}();
    LoopOptions loop;
    bool realtime = false;
    bool keep_offloads = false;
};

long long parse_int(const std::string &option, const std::string &text) {
    size_t used = 0;
    long long value = 0;
    try {
        value = std::stoll(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used == 0 || used != text.size() || value < 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    option + " needs a non-negative integer, got '" + text + "'");
    }
    return value;
}

RunOptions parse_run(int argc, char **argv) {
    RunOptions opt;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                throw Error(ErrorCode::kInvalidArgument, arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--ctl") {
            opt.ctl_path = value();
        } else if (arg == "--port") {
            const std::string spec = value();
            const auto eq = spec.find('=');
            if (eq == std::string::npos || eq + 1 == spec.size()) {
                throw Error(ErrorCode::kInvalidArgument,
                            "--port needs ID=IFNAME, got '" + spec + "'");
            }
            opt.port_ids.push_back(static_cast<int>(parse_int("--port", spec.substr(0, eq))));
            opt.port_names.push_back(spec.substr(eq + 1));
        } else if (arg == "--set") {
            apply_setting(opt.initial, value());
        } else if (arg == "--seed") {
            opt.seed = static_cast<uint64_t>(parse_int(arg, value()));
        } else if (arg == "--spin-us") {
            opt.loop.spin_ns = parse_int(arg, value()) * 1000;
        } else if (arg == "--rt") {
            opt.realtime = true;
        } else if (arg == "--keep-offloads") {
            opt.keep_offloads = true;
        } else {
            throw Error(ErrorCode::kInvalidArgument, "unknown option '" + arg + "'");
        }
    }
    if (opt.ctl_path.empty())
        throw Error(ErrorCode::kInvalidArgument, "run needs --ctl PATH");
    if (opt.port_ids.size() < 2)
        throw Error(ErrorCode::kInvalidArgument, "run needs at least two --port");
    validate(opt.initial);
    return opt;
}

int run(int argc, char **argv) {
    const RunOptions opt = parse_run(argc, argv);
    // Wake-ups as close to the timer as the kernel allows (default slack: 50 us).
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (opt.realtime) {
        sched_param param{};
        param.sched_priority = 10;
        if (sched_setscheduler(0, SCHED_FIFO, &param) < 0) {
            COLONY_LOG_WARN("SCHED_FIFO: %s (running at normal priority)", std::strerror(errno));
        }
    }
    Switch sw(opt.port_ids, opt.seed);
    for (size_t from = 0; from < sw.port_count(); ++from) {
        for (size_t to = 0; to < sw.port_count(); ++to) {
            if (from != to)
                sw.direction(from, to).set_params(opt.initial);
        }
    }
    std::vector<std::unique_ptr<PacketPort>> ports;
    for (size_t i = 0; i < opt.port_ids.size(); ++i) {
        if (!opt.keep_offloads)
            disable_offloads(opt.port_names[i]);
        ports.push_back(std::make_unique<PacketPort>(opt.port_ids[i], opt.port_names[i]));
    }
    ControlListener control(opt.ctl_path);
    COLONY_LOG_INFO("colony-netem: %zu ports, initial link %s, seed %llu, control %s", ports.size(),
                    describe(opt.initial).c_str(), static_cast<unsigned long long>(opt.seed),
                    opt.ctl_path.c_str());
    EventLoop loop(std::move(ports), sw, control, opt.loop);
    loop.run();
    return 0;
}

int ctl(int argc, char **argv) {
    if (argc < 4)
        throw Error(ErrorCode::kInvalidArgument, "ctl needs PATH and a request");
    std::string request;
    for (int i = 3; i < argc; ++i)
        request += (i > 3 ? " " : "") + std::string(argv[i]);
    const std::string reply = send_control(argv[2], request, 5000);
    std::fputs(reply.c_str(), stdout);
    // The last line is "ok" or "error: ...".
    const auto last = reply.rfind('\n', reply.size() >= 2 ? reply.size() - 2 : 0);
    const std::string tail = reply.substr(last == std::string::npos ? 0 : last + 1);
    return tail.rfind("ok", 0) == 0 ? 0 : 1;
}

int offloads_off(int argc, char **argv) {
    if (argc < 3)
        throw Error(ErrorCode::kInvalidArgument, "offloads-off needs an interface name");
    for (int i = 2; i < argc; ++i)
        disable_offloads(argv[i]);
    return 0;
}

int profiles() {
    for (const auto &p : named_profiles())
        std::printf("%-10s %s\n", p.name, describe(p.params).c_str());
    return 0;
}

int dispatch(int argc, char **argv) {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "run")
        return run(argc, argv);
    if (cmd == "ctl")
        return ctl(argc, argv);
    if (cmd == "offloads-off")
        return offloads_off(argc, argv);
    if (cmd == "profiles")
        return profiles();
    if (cmd == "-h" || cmd == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    std::fputs(kUsage, stderr);
    return 2;
}

}  // namespace
}  // namespace colony::netlab

int main(int argc, char **argv) {
    try {
        return colony::netlab::dispatch(argc, argv);
    } catch (const colony::Error &e) {
        COLONY_LOG_ERROR("colony-netem: %s", e.what());
        return e.code() == colony::ErrorCode::kInvalidArgument ? 2 : 1;
    } catch (const std::exception &e) {
        COLONY_LOG_ERROR("colony-netem: %s", e.what());
        return 1;
    }
}
