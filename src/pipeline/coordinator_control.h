// The coordinator's control plane: one thread owns the control ROUTER socket
// (CURVE server, ZAP domain kZapDomainControl: only holders of an active join
// token get in). It admits workers (JOIN -> JOIN_ACCEPT), exchanges
// heartbeats, notices lost workers, plans layer ranges over
// [coordinator, workers in join order], sends ASSIGN, serves shards, and
// declares the cluster ready when every stage is READY. It shares the plan
// with the scheduler through ClusterState.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "model/hparams.h"
#include "model/layer_range.h"
#include "net/keys.h"
#include "net/wire.h"
#include "pipeline/coordinator_options.h"

namespace colony {

class admission_control;
class ClusterState;
class ShardService;
struct received_message;

/// What the control plane knows about the model it plans.
struct PlannedModel {
    ModelHparams hp;
    std::string hash_hex;
    wire_hash hash{};
};

class CoordinatorControl {
  public:
    /// Binds the control socket on opts.host:opts.port. admission is null in
    /// insecure mode. data_endpoint is the coordinator's data socket as
    /// announced to the last stage (a wildcard host is "*"). Every reference
    /// must outlive this object. Throws Error(kUnavailable) when the port
    /// cannot be bound.
    CoordinatorControl(zmq::context_t &ctx, const CoordinatorOptions &opts,
                       const PlannedModel &model, const curve_keypair &node_keys,
                       admission_control *admission, ShardService &shards, ClusterState &state,
                       std::string data_endpoint);
    ~CoordinatorControl();
    CoordinatorControl(const CoordinatorControl &) = delete;
    CoordinatorControl &operator=(const CoordinatorControl &) = delete;

    /// The bound control port (useful with port 0).
    uint16_t port() const { return port_; }
    /// Publishes the initial state (a one-stage plan when no workers are
    /// expected) and starts the control thread.
    void start();
    /// Stops and joins the control thread. Idempotent.
    void stop();

  private:
    using clock = std::chrono::steady_clock;
    struct Member {
        std::string routing_id;
        uint32_t node_id = 0;
        std::string token_id;
        std::string key_z85;
        std::string peer_address;
        std::string data_endpoint;  // resolved
        wire_join join;
        clock::time_point last_seen;
        int stage = -1;  // index in the plan; -1: not in the plan (spare)
        uint64_t ready_epoch = 0;
    };
    struct PlannedStage {
        int member = -1;  // index into members_; -1: the coordinator
        LayerRange range;
    };

    void run();
    void handle(const received_message &rm);
    void on_join(const received_message &rm, const wire_join &join);
    void on_ready(Member &m, const wire_ready &ready);
    void on_shard_request(Member &m, const wire_shard_request &req);
    void tick();
    void lose_member(size_t index, const std::string &reason);
    void invalidate_plan(const std::string &reason);
    void make_plan(const std::string &why);
    void check_ready();
    void publish_detail();
    bool send_to(const Member &m, wire_body body);
    Member *find_member(const std::string &routing_id);
    std::string waiting_reason() const;

    zmq::context_t &ctx_;
    const CoordinatorOptions &opts_;
    const PlannedModel &model_;
    const curve_keypair &node_keys_;
    admission_control *admission_;
    ShardService &shards_;
    ClusterState &state_;
    std::string data_endpoint_;
    std::optional<std::vector<LayerRange>> manual_split_;
    zmq::socket_t router_;
    uint16_t port_ = 0;

    // Used only by the control thread once started.
    std::vector<Member> members_;
    std::vector<PlannedStage> plan_;  // empty: no plan
    uint64_t plan_epoch_ = 0;
    bool plan_ready_ = false;
    uint32_t next_node_id_ = 1;
    uint32_t send_counter_ = 0;
    clock::time_point last_heartbeat_{};
    clock::time_point last_token_reload_{};
    clock::time_point plan_failed_at_{};  // a failed plan is retried after a pause
    bool plan_failed_ = false;

    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace colony
