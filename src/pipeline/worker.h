// A worker (`colony join`): joins a coordinator with a join token, takes the
// layer range the coordinator assigns, fetches that range's GGUF shard (or
// finds it in its cache), runs it, and keeps heartbeats going.
//
// Control flow (this object's thread; the data plane is WorkerData's thread):
//   connect the control DEALER as a CURVE client with the token's join key
//   pair, the coordinator's key pinned -> JOIN (node key, data endpoint)
//   -> JOIN_ACCEPT -> ASSIGN -> [verify the cached shard against its recorded
//   hash, shard_verify.h, on a background thread; on a mismatch discard it]
//   -> [build it here from a local model file (--model-dir) or the hub ASSIGN
//   names, shard_build.h, on a background thread, checked against ASSIGN's
//   shard hash; else SHARD_REQUEST -> SHARD_CHUNK... -> SHARD_END]
//   -> load the stage -> READY; HEARTBEAT both ways all along.
// A coordinator silent for coordinator_timeout_ms is presumed gone: the stage
// is dropped and the worker joins again (a restarted coordinator takes it back).
// Pairing (net/node_store.h): the worker shows its pairing code when it
// joins; a coordinator with --confirm-pairing answers the JOIN of a key it
// has not approved with ERROR unauthorized ("pairing pending"), and the worker
// keeps repeating its JOIN until a person approves it there. JOIN_REJECT
// (a refused or revoked token or node key) ends run() with kUnauthorized.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "cluster/profile.h"
#include "cluster/thermal_guard.h"
#include "net/keys.h"
#include "net/message_fence.h"
#include "net/tokens.h"
#include "net/wire.h"
#include "pipeline/endpoint.h"
#include "pipeline/worker_data.h"

namespace colony {

class ShardDownload;
class ShardVerification;
class ShardBuild;
class ZapHandler;
struct ReceivedMessage;

struct WorkerOptions {
    std::string coordinator;           // HOST:PORT of the control socket
    std::string token;                 // join token (ignored with insecure)
    std::string name;                  // shown by the coordinator; default: host name
    double mem_limit_gib = 0;          // memory the planner may use here (GiB); 0 = MemAvailable
    int n_threads = 0;                 // compute threads; 0 = all cores
    CpuAffinity cpu;                   // where they run (cluster/cpu_placement.h)
    GpuOffload gpu;                    // -ngl/--device (runtime/stage.h)
    double max_temp_c = 0;             // --max-temp: fewer threads at this °C (0 = off)
    ggml_type type_k = GGML_TYPE_F16;  // KV cache types of the stages this worker runs
    ggml_type type_v = GGML_TYPE_F16;
    bool use_mmap = true;    // false: read shards into memory (--no-mmap)
    bool hub_shards = true;  // build a shard from the hub ASSIGN names (--no-hub-shards: never)
    std::filesystem::path model_dir;  // look for the model file here first (--model-dir; "" = no)
    bool hash_model_dir = false;      // hash its files that have no .sha256 record
    StageConfig::Invariance invariance = StageConfig::Invariance::kAttention;  // runtime/stage.h
    std::filesystem::path config_dir;                                          // node.key
    std::filesystem::path cache_dir;                                           // shards
    std::string data_host = "*";         // interface of the data socket
    uint16_t data_port = 0;              // 0 = an ephemeral port
    bool insecure = false;               // plaintext; the coordinator must be insecure too
    int join_timeout_ms = 0;             // give up joining after this long; 0 = never
    int coordinator_timeout_ms = 10000;  // no message from the coordinator: join again
    int status_interval_ms = 2000;       // device profile + rolling stage timings (STATUS)
    double debug_slowdown = 1.0;         // debug: run the stage this many times slower
    std::string debug_control_file;      // debug: a file holding the slow-down factor, read
                                         // every second while it exists ("" = none)
    std::string debug_logits_file;       // debug: as the last stage, append sampled tokens
                                         // and first logits here (logits_dump.h; "" = none)
};

class Worker {
  public:
    /// Loads or creates the node key, parses the token, binds the data socket.
    /// Throws Error(kInvalidArgument) for a malformed token or address,
    /// Error(kUnavailable) when the data port cannot be bound.
    explicit Worker(WorkerOptions opts);
    ~Worker();
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    /// Runs until `stop` becomes true (returns normally) or a fatal error:
    /// Error(kUnauthorized) when the coordinator refuses the token or the
    /// handshake fails, or refuses or revokes this worker (JOIN_REJECT), Error(kUnavailable) when
    /// joining timed out, Error(kCorrupt) when a shard fails its hash check, or what loading the
    /// stage throws.
    void run(const std::atomic<bool> &stop);

    /// The pairing code of this node and the token's coordinator ("" when insecure).
    const std::string &pairing_code() const { return pairing_code_; }

    /// Shard bytes received over the network by this process.
    uint64_t shard_bytes_received() const { return shard_bytes_received_; }
    /// Shard bytes this process fetched from a hub (tensor ranges and headers).
    uint64_t hub_shard_bytes() const { return hub_shard_bytes_; }
    /// Ubatches computed and wire bytes sent to the next stage so far.
    uint64_t ubatches() const;
    uint64_t data_bytes_sent() const;
    /// Messages dropped as stale or replayed, control and data sockets together
    /// (message_fence.h). Thread-safe.
    FenceCounts dropped_messages() const;

  private:
    using clock = std::chrono::steady_clock;
    enum class State { kJoining, kMember };

    void connect_control();
    void send(WireBody body);
    void handle(const ReceivedMessage &rm);
    void on_assign(const WireAssign &a);
    void on_chunk(const WireShardChunk &c);
    /// Acts on a finished build: load its shard, or try the next source.
    void on_shard_built();
    void on_shard_end(const WireShardEnd &e);
    /// Starts fetching the assigned shard into `path` (SHARD_REQUEST).
    void start_download(const std::filesystem::path &path, const std::string &why);
    /// Acts on a finished check of the cached shard: load it or fetch it.
    void on_verified();
    void hand_to_data_plane(const std::filesystem::path &shard);
    void check_monitor();
    void tick();
    void rejoin(const std::string &why);
    /// STATUS with the device profile and what was measured on the stage
    /// (worker_status.h); nothing before the stage was measured.
    void send_profile_status(const WorkerData::Status &st);
    /// --max-temp: feeds the profile's temperature to the guard, limits the
    /// stage's threads when it says so, and records the count in `profile`
    /// (the heartbeat's runtime report carries it too, NodeThreads).
    void apply_thermal_guard(DeviceProfile &profile);
    void poll_debug_control();

    WorkerOptions opts_;
    HostPort coordinator_;
    std::optional<JoinToken> token_;
    std::string coordinator_key_z85_;  // "" in insecure mode
    std::string pairing_code_;         // "" in insecure mode
    bool pairing_pending_ = false;     // the coordinator waits for a person's approval
    CurveKeypair node_keys_;
    zmq::context_t ctx_;
    std::unique_ptr<ZapHandler> zap_;
    std::unique_ptr<WorkerData> data_;
    std::unique_ptr<zmq::socket_t> control_;
    std::unique_ptr<zmq::socket_t> monitor_;
    std::string announced_data_endpoint_;

    State state_ = State::kJoining;
    clock::time_point joining_since_;
    std::optional<clock::time_point> auth_failed_since_;  // first refused handshake
    std::optional<clock::time_point> reconnect_at_;       // retry a refused handshake then
    clock::time_point last_join_sent_{};
    clock::time_point last_seen_;
    clock::time_point last_heartbeat_{};
    uint32_t heartbeat_interval_ms_ = 1000;
    WireSender sender_;        // control messages; a new session per connection
    uint64_t heartbeats_ = 0;  // HEARTBEAT counter
    // Control messages from the coordinator (handle()): the sequence per
    // session, and ASSIGN's epoch never below the newest ASSIGN since JOIN_ACCEPT.
    MessageFence fence_;
    uint64_t assign_epoch_ = 0;  // newest non-zero ASSIGN epoch of this membership
    uint32_t node_id_ = 0;

    std::optional<WireAssign> assign_;  // the latest ASSIGN
    bool ready_sent_ = false;
    std::unique_ptr<ShardDownload> download_;
    std::unique_ptr<ShardVerification> verify_;     // the cached shard being checked
    std::unique_ptr<ShardBuild> build_;             // the shard being built here (shard_build.h)
    bool tried_local_ = false, tried_hub_ = false;  // sources tried for this ASSIGN
    uint64_t hub_shard_bytes_ = 0;                  // fetched from hubs by this process
    uint64_t requested_until_ = 0;                  // end of the shard window asked for
    int last_progress_pct_ = -1;
    uint64_t shard_bytes_received_ = 0;

    DeviceProfile base_profile_;           // probed once at start: cores, OS, battery source
    std::optional<ThermalGuard> thermal_;  // --max-temp (cluster/thermal_guard.h)
    clock::time_point download_started_{};
    std::optional<double> shard_throughput_;  // bytes/s of the last shard download
    clock::time_point last_status_{};
    clock::time_point last_control_poll_{};
};

}  // namespace colony
