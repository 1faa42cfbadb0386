// A worker's data plane: one thread that owns the worker's stage, its PULL
// data socket (CURVE server with the node key; its ZAP data domain admits only
// the coordinator and the previous stage's key) and the PUSH socket to the
// next stage (or to the coordinator, from the last stage).
//
// The stage, its samplers, the outgoing link and the counters are a
// StageHost (stage_host.h), the same one that runs stage 0 on the
// coordinator. Per message: ACTIVATIONS -> wire_check_activations against the
// plan -> StageHost::step -> ACTIVATIONS to the next stage, or TOKENS to the
// coordinator from the last stage (the message's request id goes along). SEQ_RELEASE -> seq_rm on
// this stage, drop the sampler, pass it on. Anything invalid is logged and dropped.
// Before either, a MessageFence (net/message_fence.h): the message's plan epoch
// must be that of the newest assignment applied, and its sequence must grow per
// (sender key, session).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "ggml.h"
#include "net/keys.h"
#include "net/message_fence.h"
#include "net/wire.h"
#include "pipeline/node_status.h"
#include "pipeline/probe_cache.h"
#include "pipeline/stage_host.h"

namespace colony {

class GgufFile;
class LogitsDump;
class Stage;
class ZapHandler;
struct ReceivedMessage;

/// A stage assignment, ready to load: the ASSIGN message plus what the
/// control thread resolved.
struct WorkerAssignment {
    WireAssign assign;
    std::filesystem::path shard_path;  // verified shard in the cache
    std::string next_endpoint;         // resolved (no wildcard host)
    std::string next_key_z85;          // "" in insecure mode
    std::string prev_key_z85;          // "" = only the coordinator sends to us
};

/// How this worker runs the stages it is given: its own choices, not the
/// plan's (DESIGN.md, decision 9).
struct WorkerStageOptions {
    int n_threads = 0;                 // compute threads; 0 = all cores
    CpuAffinity cpu;                   // where they run (cluster/cpu_placement.h)
    GpuOffload gpu;                    // -ngl/--device (runtime/stage.h)
    ggml_type type_k = GGML_TYPE_F16;  // KV cache types (-ctk, -ctv of `colony join`)
    ggml_type type_v = GGML_TYPE_F16;
    bool use_mmap = true;  // false: read the shard into memory (--no-mmap)
    // batch invariance of the stages (runtime/stage.h; --batch-invariant: kFull)
    StageConfig::Invariance invariance = StageConfig::Invariance::kAttention;
};

class WorkerData {
  public:
    /// Binds the PULL socket on bind_endpoint (e.g. "tcp://*:*"). zap is null
    /// in insecure mode. Throws Error(kUnavailable) when it cannot bind.
    WorkerData(zmq::context_t &ctx, ZapHandler *zap, const CurveKeypair &node_keys,
               std::string coordinator_key_z85, WorkerStageOptions stage_opts,
               const std::string &bind_endpoint);
    ~WorkerData();
    WorkerData(const WorkerData &) = delete;
    WorkerData &operator=(const WorkerData &) = delete;

    /// Debug: when this worker is the last stage, its samplers write every
    /// sampled token (and each sequence's first logits) to `dump`
    /// (logits_dump.h). Call before start().
    void set_logits_dump(std::shared_ptr<LogitsDump> dump) {
        host_.set_logits_dump(std::move(dump));
    }

    /// The bound data endpoint ("tcp://0.0.0.0:40123").
    const std::string &endpoint() const { return endpoint_; }

    /// Starts the data thread.
    void start();
    /// Stops and joins the data thread. Idempotent.
    void stop();

    /// Hands a new assignment to the data thread (replaces a pending one).
    void assign(WorkerAssignment a);
    /// Drops the stage (the coordinator is gone). Thread-safe.
    void unassign();

    /// The speed of the loaded stage, measured right after loading it
    /// (measure_stage_speed, runtime/stage_probe.h), for the device profile.
    struct StageProbe {
        uint64_t epoch = 0;  // assignment it was measured for (0: a probe assignment)
        uint32_t first = 0;  // layer range [first, last)
        uint32_t last = 0;
        uint32_t computed = 0;  // blocks of the range not skipped (--skip-layers)
        bool is_last = false;
        double decode_ms = 0;             // one decode token through the whole stage
        double prefill_ms_per_token = 0;  // per token of a prompt chunk
        uint64_t stage_bytes = 0;         // weights + KV cache of the stage in memory
        // K and V of one token in one computed block, with this worker's own
        // KV cache types (-ctk/-ctv); 0 when no block is computed
        uint64_t kv_bytes_per_token_per_layer = 0;
    };

    struct Status {
        uint64_t loaded_epoch = 0;           // plan epoch of the loaded stage; 0: none
        std::filesystem::path loaded_shard;  // the loaded stage's shard ("" when none)
        std::string error;                   // why the last assignment failed to load
        uint64_t ubatches = 0;               // ubatches computed
        uint64_t bytes_out = 0;              // wire bytes sent to the next stage (or coordinator)
        std::optional<StageProbe> probe;     // of the loaded stage
    };
    Status status() const;

    /// Wall times (ms) of the decode ubatches (at most kDecodeUbatchMaxTokens
    /// tokens, worker_status.h) computed since the previous call, oldest
    /// first (at most 1024 kept). Thread-safe.
    std::vector<double> take_decode_samples();

    /// Debug: run the stage `factor` times slower (Stage::set_slowdown),
    /// from the next ubatch on, also for stages loaded later. factor >= 1.
    /// Thread-safe.
    void set_slowdown(double factor);
    double slowdown() const { return slowdown_.load(); }
    /// At most `n` compute threads from the next ubatch on, also for stages
    /// loaded later (StageHost::set_thread_limit; 0 = as configured; the
    /// --max-temp guard). Thread-safe.
    void set_thread_limit(int n) { thread_limit_.store(n); }
    /// The stage's counters and KV cache use (node_status.h). Thread-safe.
    StageRuntime stage_runtime() const { return host_.meter().snapshot(); }
    /// Data messages dropped as stale or replayed (message_fence.h). Thread-safe.
    FenceCounts dropped_messages() const { return fence_.counts(); }

  private:
    void run();
    void apply(const WorkerAssignment &a);
    /// Measures the stage just applied (or keeps the measurement of the same
    /// stage) into status_.probe.
    /// Measures the loaded stage (or reuses the measurement cached next to
    /// its shard, probe_cache.h) into status_.probe.
    void measure(bool same_stage);
    ProbeKey probe_key() const;
    StageProbe stage_probe(double decode_ms, double prefill_ms_per_token) const;
    void on_activations(const WireActivations &act, uint64_t request_id);
    void on_release(const WireSeqRelease &rel, uint64_t request_id);
    /// SEQ_SHIFT: the context shift on this stage, then on to the next one.
    void on_shift(const WireSeqShift &shift, uint64_t request_id);
    /// Whether `rm` (ACTIVATIONS, SEQ_RELEASE or SEQ_SHIFT) passes the fence; logs a drop.
    bool admit(const ReceivedMessage &rm);

    zmq::context_t &ctx_;
    ZapHandler *zap_;
    const CurveKeypair &node_keys_;
    std::string coordinator_key_z85_;
    WorkerStageOptions opts_;
    zmq::socket_t pull_;
    std::string endpoint_;

    // Data thread only.
    StageHost host_;  // stage, samplers, link to the next stage; meter() is thread-safe
    std::filesystem::path shard_path_;
    std::optional<WorkerAssignment> current_;
    MessageFence fence_;  // admit() on this thread; counts() from any
    // The plan of the newest non-probe assignment applied (kept when the
    // stage is dropped): the epoch the fence holds data messages to.
    uint64_t fence_epoch_ = 0;
    // Key fingerprints (ZAP User-Id) whose data messages are taken: the
    // coordinator and the previous stage of the current assignment. ZAP
    // checks keys only at the handshake, so a peer dropped from the plan (a
    // revoked node) may still hold an open connection: its messages are
    // dropped here. Empty in insecure mode (no User-Id).
    std::vector<std::string> senders_;
    /// senders_ for an assignment's previous stage ("" = the coordinator only).
    void set_senders(const std::string &prev_key_z85);

    mutable std::mutex mutex_;
    std::optional<WorkerAssignment> pending_;  // guarded by mutex_
    bool unassign_ = false;                    // guarded by mutex_
    Status status_;                            // guarded by mutex_
    std::vector<double> decode_ms_;            // guarded by mutex_
    std::atomic<double> slowdown_{1.0};
    std::atomic<int> thread_limit_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace colony
