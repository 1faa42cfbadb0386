// The coordinator's scheduler: one thread that owns stage 0 (the first layer
// range, run on the full model file), the PUSH socket to stage 1 and the PULL
// socket on which the last stage returns TOKENS.
//
// Each request gets a sequence id (a slot, < n_parallel). Every turn the
// scheduler builds one ubatch of at most n_ubatch tokens: first one decode
// token of every sequence whose last token came back, then prefill chunks of
// sequences that still have prompt tokens. It runs the ubatch through stage 0
// and sends the hidden states to stage 1 without waiting for the answer, so
// with several sequences in flight every stage works on some micro-batch.
// Sampled tokens come back as TOKENS; a finished or failed sequence is freed on
// every stage by SEQ_RELEASE, which travels down the pipeline behind the
// sequence's last ubatch (same FIFO path, so it never overtakes it).
//
// Failures: a plan change (a lost worker, a re-plan) fails every queued and
// running request with Error(kUnavailable, reason); an ubatch unanswered for
// stall_timeout_ms fails all running requests and asks the control plane to
// re-plan.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "model/hparams.h"
#include "net/keys.h"
#include "net/wire.h"
#include "pipeline/coordinator_options.h"
#include "pipeline/seq_samplers.h"

namespace colony {

class ClusterState;
class GgufFile;
class Stage;
struct LocalPlan;

/// How a sequence ended.
struct SeqOutcome {
    std::string finish_reason;  // "stop" or "length"
    int32_t n_generated = 0;
    int64_t ttft_us = 0;  // submit to first sampled token
};

/// A request in token ids, as the scheduler runs it.
struct SeqRequest {
    std::vector<int32_t> prompt;  // 1 .. n_ctx_seq - 1 tokens
    int32_t max_tokens = 16;
    wire_sampling sampling;
    bool ignore_eos = false;
    /// Called on the scheduler thread with each sampled token that is not an
    /// end-of-generation token; returning false ends the sequence ("stop").
    std::function<bool(int32_t)> on_token;
    /// True for end-of-generation tokens.
    std::function<bool(int32_t)> is_eog;
    std::promise<SeqOutcome> done;
};

class CoordinatorScheduler {
  public:
    /// data_pull is the bound PULL socket for TOKENS (moved in; from then on
    /// only the scheduler thread uses it). node_keys authenticate the PUSH
    /// socket to stage 1 (unused when insecure).
    CoordinatorScheduler(zmq::context_t &ctx, const CoordinatorOptions &opts,
                         std::shared_ptr<const GgufFile> model, const ModelHparams &hp,
                         const curve_keypair &node_keys, zmq::socket_t data_pull,
                         ClusterState &state);
    ~CoordinatorScheduler();
    CoordinatorScheduler(const CoordinatorScheduler &) = delete;
    CoordinatorScheduler &operator=(const CoordinatorScheduler &) = delete;

    /// Starts the scheduler thread.
    void start();
    /// Stops and joins the thread, then fails every running and queued
    /// request with Error(kUnavailable); later submit() calls are refused.
    /// Idempotent.
    void stop();

    /// Queues a request. Throws Error(kUnavailable, reason) when the cluster
    /// is not ready. Thread-safe.
    std::future<SeqOutcome> submit(std::unique_ptr<SeqRequest> req);

    /// Requests running and queued. Thread-safe.
    size_t n_active() const { return n_active_.load(); }
    size_t n_queued() const;
    /// Wire bytes sent to stage 1 (ACTIVATIONS, SEQ_RELEASE). Thread-safe.
    uint64_t bytes_sent() const { return bytes_sent_.load(); }

  private:
    using clock = std::chrono::steady_clock;
    struct Slot {
        std::unique_ptr<SeqRequest> req;  // null: free
        size_t n_prompt_sent = 0;         // prompt tokens sent into the pipeline
        int32_t n_pos = 0;                // next position
        int32_t next_input = -1;          // sampled token to send as the next decode input
        int32_t n_generated = 0;
        bool awaiting = false;  // an output row of this sequence is in flight
        clock::time_point submitted;
        clock::time_point sent_at;
        int64_t ttft_us = 0;
    };

    void run();
    void sync_plan();
    void apply_plan(const LocalPlan &plan);
    void drain_tokens();
    void handle_tokens(const wire_tokens &tokens);
    void on_sampled(int32_t seq, int32_t token);
    void admit();
    bool build_ubatch(wire_activations &act);
    void run_ubatch(const wire_activations &act);
    void check_stall();
    void finish(int32_t seq, const std::string &reason);
    void fail(int32_t seq, const Error &error, bool propagate);
    void fail_all(const Error &error);
    /// Frees seq on stage 0 (and its sampler); propagate: SEQ_RELEASE down the pipeline.
    void release(int32_t seq, bool propagate);
    bool send(wire_body body);

    zmq::context_t &ctx_;
    const CoordinatorOptions &opts_;
    std::shared_ptr<const GgufFile> model_;
    ModelHparams hp_;
    const curve_keypair &node_keys_;
    zmq::socket_t pull_;
    ClusterState &state_;

    // Scheduler thread only.
    std::unique_ptr<Stage> stage_;
    std::unique_ptr<zmq::socket_t> push_;
    SequenceSamplers samplers_;
    std::vector<Slot> slots_;
    uint64_t epoch_ = 0;
    bool ready_ = false;
    std::string last_user_id_;  // only this key fingerprint may send TOKENS ("" = any)
    uint32_t link_counter_ = 0;

    mutable std::mutex mutex_;
    std::deque<std::unique_ptr<SeqRequest>> queue_;  // guarded by mutex_
    std::atomic<size_t> n_active_{0};
    std::atomic<uint64_t> bytes_sent_{0};
    std::atomic<bool> stop_{false};
    std::atomic<bool> stopped_{false};  // stop() has failed everything; submit() refuses
    std::thread thread_;
};

}  // namespace colony
