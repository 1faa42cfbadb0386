#include "cli/cluster_cli.h"

#include <chrono>
#include <cstdio>

#include "net/keys.h"
#include "pipeline/coordinator_options.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

[[noreturn]] void bad(const std::string &msg) {
    throw Error(ErrorCode::kInvalidArgument, msg);
}

bool is_loopback_host(const std::string &host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

void add_serve_cluster_args(ArgParser &p, ServeClusterArgs *a) {
    p.add("", "--cluster", "NAME", "cluster name announced in LAN beacons", &a->cluster);
    p.add("", "--name", "NAME", "this node's name in plans (default: host name)", &a->name);
    p.add("", "--planner", "MODE",
          "measured (profiles + optimal plan, re-plans while running) or static (--split or "
          "proportional)",
          &a->planner);
    p.add("", "--objective", "NAME",
          "what the measured planner minimises: latency (one sequence) or throughput (many)",
          &a->objective);
    p.add("", "--replan-window", "S", "a stage's speed must drift this long to re-plan",
          &a->replan_window_s);
    p.add("", "--replan-threshold", "F",
          "drift that counts: |measured / planned - 1| of a stage's ms per layer",
          &a->replan_threshold);
    p.add("", "--replan-cooldown", "S", "no optional re-plan sooner after the last one",
          &a->replan_cooldown_s);
    p.add("", "--replan-margin", "F", "adopt a new plan only when this much faster (0.1 = 10%)",
          &a->replan_margin);
    p.add("", "--replan-drain-timeout-ms", "MS",
          "give a re-plan up when running requests take longer", &a->replan_drain_timeout_ms);
    p.add("", "--min-battery", "PERCENT", "a node below it and not charging leaves the plan",
          &a->min_battery);
    p.add("", "--debug-slowdown", "F",
          "debug: run this node's stage F times slower (emulated heterogeneity)",
          &a->debug_slowdown);
    p.add("", "--beacon-port", "N", "UDP port of the LAN beacons", &a->beacon_port);
    p.add("", "--beacon-interval-ms", "MS", "time between two beacons", &a->beacon_interval_ms);
    p.flag("", "--no-beacon", "do not announce this coordinator on the LAN", &a->no_beacon);
    p.flag("", "--beacon-virtual", "also announce on virtual interfaces (docker, bridges, VPNs)",
           &a->beacon_virtual);
}

void apply_serve_cluster_args(const ServeClusterArgs &a, CoordinatorOptions *o) {
    if (a.planner != "measured" && a.planner != "static")
        bad("--planner must be measured or static");
    if (a.objective != "latency" && a.objective != "throughput")
        bad("--objective must be latency or throughput");
    if (!(a.replan_window_s >= 0) || !(a.replan_cooldown_s >= 0))
        bad("--replan-window and --replan-cooldown must be >= 0");
    if (!(a.replan_threshold > 0 && a.replan_threshold <= 10))
        bad("--replan-threshold must be in (0, 10]");
    if (!(a.replan_margin >= 0 && a.replan_margin < 1))
        bad("--replan-margin must be in [0, 1)");
    if (!(a.min_battery >= 0 && a.min_battery <= 100))
        bad("--min-battery must be in 0..100");
    if (a.replan_drain_timeout_ms < 0)
        bad("--replan-drain-timeout-ms must be >= 0");
    if (a.beacon_port == 0 || a.beacon_port > 65535)
        bad("--beacon-port must be 1..65535");
    if (a.beacon_interval_ms < 100)
        bad("--beacon-interval-ms must be at least 100");
    if (!(a.debug_slowdown >= 1 && a.debug_slowdown <= 1000))
        bad("--debug-slowdown must be in [1, 1000]");
    o->debug_slowdown = a.debug_slowdown;
    o->measured_planner = a.planner == "measured";
    o->throughput_objective = a.objective == "throughput";
    o->node_name = a.name;
    o->replan_window_s = a.replan_window_s;
    o->replan_drift_threshold = a.replan_threshold;
    o->replan_cooldown_s = a.replan_cooldown_s;
    o->replan_margin = a.replan_margin;
    o->replan_drain_timeout_ms = a.replan_drain_timeout_ms;
    o->min_battery_percent = a.min_battery;
}

std::unique_ptr<BeaconSender> start_beacon(const ServeClusterArgs &a, const CoordinatorOptions &o,
                                           uint16_t control_port, uint16_t api_port) {
    if (a.no_beacon) {
        COLONY_LOG_INFO("serve: no LAN beacon (--no-beacon)");
        return nullptr;
    }
    if (is_loopback_host(o.host)) {
        COLONY_LOG_INFO(
            "serve: no LAN beacon: the control socket listens on %s only (use --host "
            "0.0.0.0 to be found by `colony join` on other devices)",
            o.host.c_str());
        return nullptr;
    }
    Beacon b;
    b.cluster = a.cluster;
    b.fingerprint = key_fingerprint(load_or_create_node_keys(o.config_dir).public_z85);
    b.port = control_port;
    b.api_port = api_port;
    b.node = a.name.empty() ? "coordinator" : a.name.substr(0, 64);
    auto sender = std::make_unique<BeaconSender>(b, static_cast<uint16_t>(a.beacon_port),
                                                 std::chrono::milliseconds(a.beacon_interval_ms),
                                                 a.beacon_virtual);
    COLONY_LOG_INFO("serve: announcing cluster '%s' (key %s, control port %u) on UDP port %u",
                    b.cluster.c_str(), b.fingerprint.c_str(), control_port, a.beacon_port);
    return sender;
}

void add_discover_args(ArgParser &p, DiscoverArgs *a) {
    p.add("", "--cluster", "NAME", "only coordinators of this cluster name", &a->cluster);
    p.add("", "--discover-seconds", "S", "how long to listen for coordinators' beacons",
          &a->seconds);
    p.add("", "--beacon-port", "N", "UDP port of the beacons", &a->port);
    p.flag("", "--include-virtual", "also listen on virtual interfaces (docker, bridges, VPNs)",
           &a->include_virtual);
}

namespace {

std::vector<HeardCoordinator> listen(const DiscoverArgs &a) {
    if (!(a.seconds > 0 && a.seconds <= 3600))
        bad("--discover-seconds must be in (0, 3600]");
    if (a.port == 0 || a.port > 65535)
        bad("--beacon-port must be 1..65535");
    std::vector<HeardCoordinator> heard =
        listen_for_coordinators(std::chrono::milliseconds(static_cast<int64_t>(a.seconds * 1000)),
                                static_cast<uint16_t>(a.port), a.include_virtual);
    if (!a.cluster.empty()) {
        std::erase_if(heard,
                      [&](const HeardCoordinator &h) { return h.beacon.cluster != a.cluster; });
    }
    return heard;
}

}  // namespace

std::string format_heard(const std::vector<HeardCoordinator> &heard) {
    if (heard.empty())
        return "no coordinator heard\n";
    std::string out = "cluster           fingerprint       address          control  api    node\n";
    for (const HeardCoordinator &h : heard) {
        char line[400];
        std::snprintf(line, sizeof line, "%-17s %-17s %-16s %-8u %-6u %s\n",
                      h.beacon.cluster.c_str(), h.beacon.fingerprint.c_str(), h.address.c_str(),
                      h.beacon.port, h.beacon.api_port, h.beacon.node.c_str());
        out += line;
    }
    return out;
}

std::string discover_coordinator(const DiscoverArgs &a, const std::string &fingerprint) {
    COLONY_LOG_INFO("join: listening %.1f s for coordinators' beacons (UDP port %u)%s", a.seconds,
                    a.port, fingerprint.empty() ? "" : (" with key " + fingerprint).c_str());
    const std::vector<HeardCoordinator> heard = listen(a);
    HeardCoordinator chosen;
    if (fingerprint.empty()) {
        if (heard.size() != 1) {
            throw Error(heard.empty() ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                        std::to_string(heard.size()) +
                            " coordinators heard; without a token pass --coordinator HOST:PORT "
                            "or --cluster NAME\n" +
                            format_heard(heard));
        }
        chosen = heard.front();
    } else {
        try {
            chosen = choose_coordinator(heard, fingerprint);
        } catch (const Error &e) {
            throw Error(e.code(), std::string(e.what()) + "\n" + format_heard(heard));
        }
    }
    COLONY_LOG_INFO("join: found coordinator '%s' of cluster '%s' at %s:%u",
                    chosen.beacon.node.c_str(), chosen.beacon.cluster.c_str(),
                    chosen.address.c_str(), chosen.beacon.port);
    return chosen.address + ":" + std::to_string(chosen.beacon.port);
}

std::vector<HeardCoordinator> discover_all(const DiscoverArgs &a) {
    return listen(a);
}

}  // namespace colony
