// Command-line pieces of the cluster's intelligence (docs/cluster.md) shared
// by `colony serve`, `colony join` and `colony discover`: the planner and
// discovery options of serve, the coordinator's beacon, and finding a
// coordinator on the LAN for join.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "net/discovery.h"

namespace colony {

struct CoordinatorOptions;

/// `colony serve` options of the planner and the beacon.
struct ServeClusterArgs {
    std::string cluster = "colony";  // cluster name in beacons
    std::string planner = "measured";
    std::string objective = "latency";
    std::string name;  // the coordinator's node name in plans
    float replan_window_s = 10, replan_threshold = 0.25f, replan_cooldown_s = 30,
          replan_margin = 0.10f, min_battery = 20;
    int32_t replan_drain_timeout_ms = 120000;
    float debug_slowdown = 1;
    uint32_t beacon_port = kBeaconPort;
    int32_t beacon_interval_ms = 1000;
    bool no_beacon = false;
    bool beacon_virtual = false;
};

/// Declares the options above on `p` (targets in *args).
void add_serve_cluster_args(ArgParser &p, ServeClusterArgs *args);

/// Checks them and copies the planner's into *o. Throws
/// Error(kInvalidArgument) naming the bad option.
void apply_serve_cluster_args(const ServeClusterArgs &args, CoordinatorOptions *o);

/// Starts the coordinator's UDP beacon (net/discovery.h) announcing
/// control_port and api_port under the cluster name, with the fingerprint of
/// the node key in o.config_dir. Returns null (and says why at info level)
/// when --no-beacon is given or o.host is a loopback address (nobody else
/// could reach the coordinator there).
std::unique_ptr<BeaconSender> start_beacon(const ServeClusterArgs &args,
                                           const CoordinatorOptions &o, uint16_t control_port,
                                           uint16_t api_port);

/// `colony join` / `colony discover` options of discovery.
struct DiscoverArgs {
    std::string cluster;  // only coordinators of this cluster name ("" = any)
    float seconds = 3;    // how long to listen
    uint32_t port = kBeaconPort;
    bool include_virtual = false;
};

void add_discover_args(ArgParser &p, DiscoverArgs *args);

/// Listens for beacons and returns "HOST:PORT" of the coordinator to join:
/// the one whose fingerprint is `fingerprint` (the join token's coordinator
/// key), or, when fingerprint is empty (--insecure), the only one heard.
/// Throws Error(kNotFound / kInvalidArgument) listing what was heard when
/// none or several match.
std::string discover_coordinator(const DiscoverArgs &args, const std::string &fingerprint);

/// Listens for beacons (DiscoverArgs) and returns what was heard.
std::vector<HeardCoordinator> discover_all(const DiscoverArgs &args);

/// Text table of heard coordinators (cluster, fingerprint, address, ports,
/// node), one per line after a header; "no coordinator heard ..." when empty.
std::string format_heard(const std::vector<HeardCoordinator> &heard);

}  // namespace colony
