// A worker's data plane: one thread that owns the worker's stage, its PULL
// data socket (CURVE server with the node key; its ZAP data domain admits only
// the coordinator and the previous stage's key) and the PUSH socket to the
// next stage (or to the coordinator, from the last stage).
//
// Per message: ACTIVATIONS -> wire_check_activations against the plan ->
// run_stage_step -> ACTIVATIONS to the next stage, or TOKENS to the
// coordinator from the last stage. SEQ_RELEASE -> seq_rm on this stage, drop
// the sampler, pass it on. Anything invalid is logged and dropped.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "net/keys.h"
#include "net/wire.h"
#include "pipeline/seq_samplers.h"

namespace colony {

class GgufFile;
class Stage;
class zap_handler;

/// A stage assignment, ready to load: the ASSIGN message plus what the
/// control thread resolved.
struct WorkerAssignment {
    wire_assign assign;
    std::filesystem::path shard_path;  // verified shard in the cache
    std::string next_endpoint;         // resolved (no wildcard host)
    std::string next_key_z85;          // "" in insecure mode
    std::string prev_key_z85;          // "" = only the coordinator sends to us
};

class WorkerData {
  public:
    /// Binds the PULL socket on bind_endpoint (e.g. "tcp://*:*"). zap is null
    /// in insecure mode. Throws Error(kUnavailable) when it cannot bind.
    WorkerData(zmq::context_t &ctx, zap_handler *zap, const curve_keypair &node_keys,
               std::string coordinator_key_z85, int n_threads, const std::string &bind_endpoint);
    ~WorkerData();
    WorkerData(const WorkerData &) = delete;
    WorkerData &operator=(const WorkerData &) = delete;

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

    struct Status {
        uint64_t loaded_epoch = 0;  // plan epoch of the loaded stage; 0: none
        std::string error;          // why the last assignment failed to load
        uint64_t ubatches = 0;      // ubatches computed
        uint64_t bytes_out = 0;     // wire bytes sent to the next stage
    };
    Status status() const;

  private:
    void run();
    void apply(const WorkerAssignment &a);
    void on_activations(const wire_activations &act);
    void on_release(const wire_seq_release &rel);
    bool send(wire_body body);

    zmq::context_t &ctx_;
    zap_handler *zap_;
    const curve_keypair &node_keys_;
    std::string coordinator_key_z85_;
    int n_threads_;
    zmq::socket_t pull_;
    std::string endpoint_;

    // Data thread only.
    std::unique_ptr<Stage> stage_;
    std::shared_ptr<const GgufFile> shard_;
    std::filesystem::path shard_path_;
    std::unique_ptr<SequenceSamplers> samplers_;
    std::unique_ptr<zmq::socket_t> push_;
    bool push_connected_ = false;  // push_ connects lazily (see apply)
    std::optional<WorkerAssignment> current_;
    uint32_t link_counter_ = 0;

    mutable std::mutex mutex_;
    std::optional<WorkerAssignment> pending_;  // guarded by mutex_
    bool unassign_ = false;                    // guarded by mutex_
    Status status_;                            // guarded by mutex_
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace colony
