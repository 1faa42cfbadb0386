// What a node reports about its stage and its device while the cluster runs,
// for the coordinator's cluster view (GET /v1/cluster, GET /metrics):
//
//   StageMeter   the counters of one stage (forward passes, compute time,
//                hand-off time of hidden states, KV cache use, output rows per
//                second), kept by the thread that owns the Stage and read by
//                any thread;
//   NodeRuntime  one node's report: the meter's snapshot plus its phase
//                (waiting, downloading a shard, loading, ready), memory,
//                battery and temperature;
//   NodeReports  the coordinator's board of its members' latest reports.
//
// Workers send their report as a STATUS message (wire.h, type 14) whose JSON
// is {"runtime": {...}} (fields: node_runtime_to_json), in answer to every
// HEARTBEAT of the coordinator. The report echoes the heartbeat's
// timestamp_ns and the microseconds the worker held it, so the coordinator
// measures the link's round-trip time from its own clock alone:
//   rtt = now - echo_ns - hold_us   (coordinator's steady clock).
// A STATUS comes from another machine: every field is validated before use
// (node_runtime_from_json).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/profile.h"
#include "model/layer_range.h"
#include "net/message_fence.h"
#include "net/wire.h"

namespace colony {

class Stage;

/// Counters of one stage, cumulative since the node started (Prometheus
/// counters), and its current KV cache use.
struct StageRuntime {
    LayerRange range;            // the stage's layers [first, last); empty: no stage
    bool loaded = false;         // a stage is loaded and serves its plan
    double load_progress = 0;    // 0..1 while loading its weights
    uint64_t ubatches = 0;       // forward passes run
    double compute_seconds = 0;  // wall time of those passes (unpack, forward, pack, sample)
    uint64_t hops = 0;           // hidden states handed to the next stage
    double hop_seconds = 0;      // wall time of those hand-offs (encode + enqueue on the socket)
    uint32_t kv_used_cells = 0;  // KV cells holding a (sequence, position) now
    uint32_t kv_size_cells = 0;  // KV cells in total
    uint64_t weights_bytes = 0;  // the stage's weights in memory
    uint64_t kv_bytes = 0;       // the KV cache's buffers
    double tokens_per_s = 0;     // output rows (generated tokens) per second, last 5 s
    // How long the data link to the next stage (or, from the last stage, to
    // the coordinator) has been down, ms; 0: up (LinkWatch). The
    // coordinator takes a link down for a lost next stage (recovery).
    int64_t next_link_down_ms = 0;
};

/// Thread-safe accumulator of StageRuntime. The thread that owns the Stage
/// records; any thread takes snapshots.
class StageMeter {
  public:
    /// A stage of `range` is being loaded; progress 0..1.
    void loading(LayerRange range, double progress);
    /// The stage is loaded (sizes from it) and serves.
    void loaded(const Stage &stage);
    /// No stage any more (the node left the plan).
    void unloaded();
    /// One forward pass of `seconds` that produced `n_outputs` output rows.
    void record_step(const Stage &stage, double seconds, uint32_t n_outputs);
    /// One hand-off of hidden states to the next stage.
    void record_hop(double seconds);
    /// KV cache use changed (a sequence was freed).
    void record_kv(const Stage &stage);
    /// The data link to the next stage is down for `ms` (0: up).
    void record_link(int64_t down_ms);
    StageRuntime snapshot() const;

  private:
    mutable std::mutex mutex_;
    StageRuntime r_;                                   // guarded by mutex_
    std::deque<std::pair<int64_t, uint32_t>> recent_;  // guarded by mutex_: (step end us, outputs)
};

/// One node's report (a worker's STATUS, or the coordinator about itself).
/// The compute threads of a node's stage: how many run now, on which cores
/// ("" = not pinned; cluster/cpu_placement.h), and whether --max-temp holds
/// the count down (cluster/thermal_guard.h). n = 0: not reported.
struct NodeThreads {
    int n = 0;
    std::string cores;
    bool thermal_limited = false;
    std::string gpu;  // the GPU its stage offloads to, e.g. "Vulkan0 (3 blocks)"; "" = none
};

struct NodeRuntime {
    std::string
        phase;  // "waiting" (no assignment), "downloading" (shard), "loading", "ready", "failed"
    double progress = 0;      // 0..1 of downloading / loading
    uint64_t plan_epoch = 0;  // epoch of the assignment the phase refers to (0: none)
    StageRuntime stage;
    std::string host;                         // host name
    std::string device;                       // CPU (ggml backend device) description
    std::string os;                           // probe_os(): "Linux 6.1.0", "Android (Termux) 5.10"
    std::string arch;                         // "x86_64", "aarch64"
    uint64_t rss_bytes = 0;                   // resident memory of the process
    std::optional<uint64_t> available_bytes;  // MemAvailable
    std::optional<BatteryState> battery;
    std::optional<double> temperature_c;
    std::string error;     // why the phase is "failed"
    uint64_t echo_ns = 0;  // timestamp_ns of the coordinator's HEARTBEAT this answers (0: none)
    int64_t hold_us = 0;   // microseconds between receiving that HEARTBEAT and sending this
    FenceCounts dropped;   // messages its control and data sockets dropped (message_fence.h)
    NodeThreads threads;   // its stage's compute threads (absent from older workers)
};

/// Fills host, device, os, arch, rss_bytes, available_bytes, battery (sysfs
/// only: no subprocess on the heartbeat path) and temperature_c of this
/// process and machine. Never throws.
void probe_node_runtime(NodeRuntime &r);

/// {"runtime": {...}}: every NodeRuntime field by name (optional ones null
/// when absent; stage counters under "stage").
std::string node_runtime_to_json(const NodeRuntime &r);

/// Parses a STATUS JSON. Returns nullopt when it has no "runtime" object
/// (another kind of status). Throws Error(kProtocol) naming the field when a
/// field is missing, of the wrong type, or absurd (negative or non-finite
/// numbers, progress outside 0..1, strings over 256 bytes, unknown phase).
std::optional<NodeRuntime> node_runtime_from_json(const std::string &json);

/// What a worker answers to the coordinator's HEARTBEAT of timestamp echo_ns,
/// received at `received` (steady clock): a STATUS with its phase and probes.
/// assigned_epoch: plan epoch of its current assignment (0: none); download:
/// (bytes received, total) while a shard is fetched; loaded_epoch and
/// load_error: WorkerData's status; stage: WorkerData's counters; dropped:
/// the worker's fence counters (Worker::dropped_messages); threads: its
/// stage's compute threads.
WireStatus worker_runtime_status(uint64_t echo_ns, std::chrono::steady_clock::time_point received,
                                 uint64_t assigned_epoch,
                                 std::optional<std::pair<uint64_t, uint64_t>> download,
                                 uint64_t loaded_epoch, const std::string &load_error,
                                 const StageRuntime &stage, const FenceCounts &dropped = {},
                                 const NodeThreads &threads = {});

/// The latest report of one worker, as the coordinator keeps it.
struct NodeReport {
    uint32_t node_id = 0;          // member id the coordinator gave it
    std::string name;              // --name of the worker
    std::string key;               // its node key's fingerprint
    NodeRuntime runtime;           // latest report
    std::optional<double> rtt_ms;  // round trip of the last answered heartbeat, ms
    int64_t received_us = 0;       // now_us() when the report arrived
};

/// The latest report of every member, kept by the coordinator. Thread-safe.
class NodeReports {
  public:
    /// Control thread: a STATUS from member node_id. STATUS messages without a
    /// runtime part are ignored; malformed ones are logged and dropped.
    /// Returns the report's runtime part (nullopt: none, or dropped).
    std::optional<NodeRuntime> on_status(uint32_t node_id, const std::string &name,
                                         const std::string &key, const std::string &json);
    /// Control thread: the member left the cluster; its report goes.
    void on_lost(uint32_t node_id);
    /// Every member's report, by node id.
    std::vector<NodeReport> all() const;

  private:
    mutable std::mutex mutex_;
    std::map<uint32_t, NodeReport> nodes_;  // guarded by mutex_
};

}  // namespace colony
