// Device and link profiles: what a node measured about itself on the real
// model (time per layer at the model's quant type, memory, CPU topology,
// battery, temperature) and what was measured about the links between nodes.
// The planner (cluster/planner.h) turns these into a plan (DESIGN.md,
// decision 8). Profiles travel as JSON; every field is validated on the way
// in, because a profile comes from another machine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json_fwd.hpp"

namespace colony {

/// Battery state of a device. `charging` is true while the battery charges or
/// the device runs on external power (status Charging or Full, or a mains/USB
/// supply online).
struct BatteryState {
    double percent = 0;  // 0..100
    bool charging = false;
};

/// What one node measured about itself for one model. Times are per token at
/// the model's quant type and shapes, with `n_threads` threads.
struct DeviceProfile {
    std::string node_id;  // stable node id (key fingerprint); 1..128 printable chars
    std::string name;     // human-readable name shown in tables; may be empty

    double decode_ms_per_layer = 0;             // one token (decode) through one block, ms
    double prefill_ms_per_layer_per_token = 0;  // prefill: one block, per prompt token, ms
    double decode_ms_output = 0;  // output norm + LM head + sampling of one token, ms (last stage)

    // Memory of the model as the node used it when measuring. Informational,
    // the planner takes the authoritative numbers from ModelShape, except
    // kv_bytes_per_token_per_layer: when set (> 0) the node's own KV cache
    // types (-ctk/-ctv) are planned with it.
    uint64_t weight_bytes_per_layer = 0;        // weights of one block (mean over blocks)
    uint64_t kv_bytes_per_token_per_layer = 0;  // K and V of one token in one block
    uint64_t first_stage_extra_bytes = 0;       // token embedding (stage 0)
    uint64_t last_stage_extra_bytes = 0;        // output norm + LM head + logits buffer

    uint64_t mem_available_bytes = 0;  // min(MemAvailable, --mem-limit)
    uint64_t headroom_bytes = 0;       // kept free for the OS and the runtime's buffers

    int n_threads = 1;       // threads used for the measurement and for compute
    int n_big_cores = 0;     // from cpufreq (cluster/device_probe.h)
    int n_little_cores = 0;  // 0 when the CPU has one kind of core
    std::string cpu_cores;   // cores the compute threads run on ("4-7"); "" = not pinned

    std::optional<BatteryState> battery;  // absent on devices without a battery
    std::optional<double> temperature_c;  // hottest CPU thermal zone, °C

    std::string os;       // e.g. "Linux 6.1.0", "Android (Termux) 5.10.198"
    std::string arch;     // uname machine: "x86_64", "aarch64"
    std::string backend;  // ggml backend: "CPU", "Vulkan", ...

    // Debug slow-down applied by the node to its own compute (emulated
    // heterogeneity, throttling tests). Informational: the measured times
    // above already include it; the planner does not multiply by it.
    double slowdown_factor = 1.0;
};

/// Measured link between two nodes. Links are symmetric unless both
/// directions are given.
struct LinkProfile {
    std::string from_node;
    std::string to_node;
    double rtt_ms = 0;                  // round-trip time of a small message, ms
    double throughput_bytes_per_s = 0;  // sustained one-way payload throughput, bytes/s
};

/// Serializes a profile to a JSON object (field names as in the struct;
/// optional fields are omitted when absent).
nlohmann::json device_profile_to_json(const DeviceProfile &profile);

/// Parses and validates a profile. Unknown fields are ignored (newer nodes).
/// Throws Error(kProtocol) naming the field when a required field is missing,
/// has the wrong JSON type, or holds an absurd value (negative or non-finite
/// time, time per layer over 60 s, byte count over 1 PiB, battery outside
/// 0..100, temperature outside -60..200 °C, more than 4096 threads or cores,
/// over-long or non-printable strings).
DeviceProfile device_profile_from_json(const nlohmann::json &json);

/// Checks an in-memory profile with the same rules as device_profile_from_json.
/// Throws Error(kProtocol) on the first bad field.
void validate_device_profile(const DeviceProfile &profile);

nlohmann::json link_profile_to_json(const LinkProfile &link);

/// Parses and validates a link: both node ids present and different, RTT in
/// [0, 100 s), throughput in (0, 1 TB/s]. Throws Error(kProtocol).
LinkProfile link_profile_from_json(const nlohmann::json &json);

void validate_link_profile(const LinkProfile &link);

/// Looks up the link between a and b (either direction; a→b preferred).
/// Returns nullptr when none was measured.
const LinkProfile *find_link(const std::vector<LinkProfile> &links, const std::string &a,
                             const std::string &b);

}  // namespace colony
