// The coordinator (`colony serve`, DESIGN.md decision 6): owns the model file,
// the node key and the join tokens, the membership view and the plan; runs
// stage 0 itself. It is two parts on their own threads:
//   CoordinatorControl    control socket: joins, heartbeats, plan, shards
//   BatchScheduler  stage 0, ubatches, the data sockets, requests in token ids
// Requests reach it through CoordinatorBackend (src/api/coordinator_backend.h),
// the InferenceBackend behind the HTTP API, which uses scheduler(), state()
// and tokenizer().
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "net/keys.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/coordinator_options.h"

namespace colony {

class AdmissionControl;
class ClusterState;
class BatchScheduler;
class GgufFile;
class NodeStore;
class ShardService;
class Tokenizer;
class TokenStore;
class ZapHandler;

class Coordinator {
  public:
    /// Loads and hashes the model, loads or creates the node key and a join
    /// token in opts.config_dir, binds the control and data sockets and starts
    /// the threads. Throws Error: kNotFound/kCorrupt (model), kUnauthorized
    /// (unsafe key files), kUnavailable (a port cannot be bound),
    /// kInvalidArgument (bad options, e.g. --split).
    explicit Coordinator(CoordinatorOptions opts);
    /// Stops the threads (see stop()).
    ~Coordinator();
    Coordinator(const Coordinator &) = delete;
    Coordinator &operator=(const Coordinator &) = delete;

    /// Stops the control plane and the scheduler: running and queued
    /// requests fail with Error(kUnavailable), later ones are refused. Call it
    /// before stopping the HTTP server, whose handlers may wait on requests.
    /// Idempotent.
    void stop();

    /// The request path: submit, cancel, stage 0's counters. Thread-safe.
    BatchScheduler &scheduler() { return *scheduler_; }
    const BatchScheduler &scheduler() const { return *scheduler_; }
    /// Plan, readiness and the workers' reports. Thread-safe.
    const ClusterState &state() const { return *state_; }
    /// The model's tokenizer (vocab only; const methods are thread-safe).
    const Tokenizer &tokenizer() const { return *tokenizer_; }
    const ModelHparams &hparams() const { return model_.hp; }
    const CoordinatorOptions &options() const { return opts_; }
    /// The cluster as GET /health shows it (a JSON object): status, reason,
    /// the control plane's members and stages (plan_epoch, workers, stages,
    /// shard_bytes_served), model, model_sha256, requests_active,
    /// requests_queued, data_bytes_sent.
    std::string health_json() const;
    /// The model file's name ("stories260K-f32.gguf").
    std::string model_name() const;

    /// The join token workers need ("" in insecure mode).
    const std::string &join_token() const { return join_token_; }
    uint16_t control_port() const;
    /// The data socket that receives TOKENS, as bound ("tcp://127.0.0.1:40123").
    const std::string &data_endpoint() const { return data_endpoint_; }
    const std::string &model_hash_hex() const { return model_.hash_hex; }
    uint64_t shard_bytes_served() const;
    /// Messages the coordinator dropped as stale, replayed or of no running
    /// request: its control socket and its TOKENS socket together
    /// (message_fence.h). Thread-safe.
    FenceCounts dropped_messages() const;

  private:
    CoordinatorOptions opts_;
    std::shared_ptr<const GgufFile> file_;
    PlannedModel model_;
    std::unique_ptr<Tokenizer> tokenizer_;
    CurveKeypair node_keys_;
    zmq::context_t ctx_;
    std::unique_ptr<ZapHandler> zap_;
    std::unique_ptr<TokenStore> tokens_;
    std::unique_ptr<NodeStore> nodes_;
    std::unique_ptr<AdmissionControl> admission_;
    std::string join_token_;
    std::string data_endpoint_;
    std::unique_ptr<ShardService> shards_;
    std::unique_ptr<ClusterState> state_;
    std::unique_ptr<BatchScheduler> scheduler_;
    std::unique_ptr<CoordinatorControl> control_;
};

}  // namespace colony
