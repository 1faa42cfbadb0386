// The JSON a worker sends in a STATUS message (wire.h, type 14) when it has
// measured its stage, and every status interval after that: its device
// profile (cluster/profile.h), what it measured on the stage it holds, and
// what it measured about its link to the coordinator. The coordinator turns
// these into the planner's inputs (pipeline/measured_planner.h). A STATUS
// comes from another machine: every field is validated on the way in.
//
//   {"profile": {DeviceProfile, see device_profile_to_json},
//    "stage": {"epoch": 3, "first": 4, "last": 8, "is_last": true,
//              "probe_decode_ms": 12.5, "probe_prefill_ms_per_token": 3.1,
//              "recent_decode_ms": 13.0, "recent_samples": 41},
//    "shard_throughput_bytes_per_s": 5.2e7,
//    "slowdown": 1.0}
//
// "stage" is absent until the worker holds a stage; "recent_*" are absent (or
// 0) when no decode ubatch ran since the last STATUS; the throughput is
// absent until a shard was downloaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cluster/profile.h"
#include "nlohmann/json_fwd.hpp"

namespace colony {

/// Ubatches of at most this many tokens count as decode steps for the rolling
/// measurement (one token per running sequence).
inline constexpr uint32_t kDecodeUbatchMaxTokens = 4;

/// What a worker measured on the stage it holds, for the whole stage (every
/// block of its range, plus the output head and sampling on the last stage).
struct StageReport {
    uint64_t epoch = 0;  // plan epoch of the assignment; 0: a probe assignment
    uint32_t first = 0;  // layer range [first, last)
    uint32_t last = 0;
    bool is_last = false;
    // measure_stage_speed right after loading (runtime/stage_probe.h), ms.
    double probe_decode_ms = 0;             // one decode token through the stage
    double probe_prefill_ms_per_token = 0;  // one prompt token of a 64-token chunk
    // Median wall time of the decode ubatches (<= kDecodeUbatchMaxTokens
    // tokens) that ran since the previous STATUS, ms; 0 when none ran.
    double recent_decode_ms = 0;
    uint32_t recent_samples = 0;
};

struct WorkerStatus {
    // The node's profile. Its times are the stage's probe divided by its block
    // count (the coordinator re-derives per-layer times, separating the head).
    DeviceProfile profile;
    std::optional<StageReport> stage;
    // Shard bytes / seconds of the last shard download (coordinator -> worker).
    std::optional<double> shard_throughput_bytes_per_s;
    double slowdown = 1.0;  // debug slow-down factor in force (1 = none)
};

/// Serializes a status (field names as above).
nlohmann::json worker_status_to_json(const WorkerStatus &status);

/// Parses and validates a status: the profile as device_profile_from_json
/// does; a stage with first < last <= 65536, times finite in [0, 1 h],
/// samples <= 10^7; throughput in (0, 1e12]; slowdown in [1, 1000]. Unknown
/// fields are ignored. Throws Error(kProtocol) naming the bad field.
WorkerStatus worker_status_from_json(const nlohmann::json &json);

/// worker_status_from_json of a STATUS text. Returns nullopt for a STATUS
/// of another kind (no "profile" object, e.g. node_status.h's run-time
/// report); Error(kProtocol) when it is not JSON or a field is bad.
std::optional<WorkerStatus> worker_status_parse(const std::string &text);

}  // namespace colony
