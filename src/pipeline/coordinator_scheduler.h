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
// Sampled tokens come back as TOKENS and go to the request's on_token; a
// finished, cancelled or failed sequence is freed on every stage by
// SEQ_RELEASE, which travels down the pipeline behind the sequence's last
// ubatch (same FIFO path, so it never overtakes it).
//
// Cancellation (cancel(id), e.g. the HTTP client went away): a queued request
// leaves the queue; a running one ends at once (on_done with kCancelled), its
// cells are freed on stage 0 and SEQ_RELEASE goes down the pipeline. When an
// output row of the sequence is still in flight, the slot stays reserved
// ("draining") until that row's token comes back and is dropped, so a new
// request in the same slot never receives a token of the old one.
//
// Re-plans (cluster_state.h): every turn the scheduler tells ClusterState how
// many slots are busy (scheduler_tick) and admits nothing while the control
// plane has paused admission; submit() queues while a graceful re-plan is
// under way, and the queue survives its epoch change.
//
// Failures: a plan change that is not graceful (a lost worker) fails every
// queued and running request with Error(kUnavailable, reason); a pipeline
// that makes no progress for stall_timeout_ms plus the learned time of the
// tokens in flight (stall_watch.h) fails all running requests and asks the
// control plane to re-plan.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "model/hparams.h"
#include "net/keys.h"
#include "net/wire.h"
#include "pipeline/coordinator_options.h"
#include "pipeline/node_status.h"
#include "pipeline/seq_samplers.h"
#include "pipeline/stall_watch.h"
#include "util/error.h"

namespace colony {

class ClusterState;
class GgufFile;
class Stage;
struct LocalPlan;

/// How a sequence ended (times in microseconds from submit()).
struct SeqOutcome {
    enum class End { kStop, kLength, kCancelled, kError };
    End end = End::kStop;  // kStop: end-of-generation token; kLength: max_tokens or context full
    int32_t n_prompt = 0;
    int32_t n_generated = 0;  // tokens delivered through on_token
    int64_t queue_us = 0;     // until the request got a slot (the whole time if it never did)
    int64_t ttft_us = 0;      // until the first sampled token (0: none)
    int64_t total_us = 0;     // until on_done
    ErrorCode error_code = ErrorCode::kInternal;  // End::kError only
    std::string error_message;                    // End::kError only
};

/// A request in token ids, as the scheduler runs it.
struct SeqRequest {
    std::vector<int32_t> prompt;  // 1 .. n_ctx_seq - 1 tokens, each < n_vocab
    int32_t max_tokens = 16;      // >= 1
    wire_sampling sampling;
    bool ignore_eos = false;
    /// True for end-of-generation tokens (ends the sequence unless ignore_eos).
    std::function<bool(int32_t)> is_eog;
    /// Each sampled token that is delivered (not an ending EOG token), in
    /// order, on the scheduler thread. Must return quickly.
    std::function<void(int32_t)> on_token;
    /// Exactly once, last, on the scheduler thread (on the thread calling
    /// stop() for what stop() fails).
    std::function<void(const SeqOutcome &)> on_done;
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
    /// Stops and joins the thread, then ends every running and queued
    /// request with Error(kUnavailable) (on_done on the calling thread);
    /// later submit() calls are refused. Idempotent.
    void stop();

    /// Queues a request and returns its id (> 0). Throws Error:
    /// kUnavailable (the cluster is not ready, or shutting down), kResource
    /// (every slot is busy and max_queue requests are waiting: "queue full"),
    /// kInvalidArgument (empty prompt, max_tokens < 1, a token outside the
    /// vocabulary), kOutOfRange (the prompt does not fit a sequence). A
    /// submit() that throws calls nothing. Thread-safe.
    uint64_t submit(std::unique_ptr<SeqRequest> req);
    /// Ends request `id` (see the header comment); unknown or finished ids
    /// are ignored. Thread-safe.
    void cancel(uint64_t id);
    /// Requests that may wait for a busy slot before submit() refuses (default 64).
    void set_max_queue(size_t n) { max_queue_.store(n); }
    size_t max_queue() const { return max_queue_.load(); }

    /// Requests running (holding a slot) and queued. Thread-safe.
    size_t n_active() const { return n_active_.load(); }
    size_t n_queued() const;
    /// Wire bytes sent to stage 1 (ACTIVATIONS, SEQ_RELEASE). Thread-safe.
    uint64_t bytes_sent() const { return bytes_sent_.load(); }
    /// Stage 0's counters (coordinator's own stage). Thread-safe.
    StageRuntime stage_runtime() const { return meter_.snapshot(); }
    /// Mean time from sending a ubatch with output rows into the pipeline to
    /// its sampled tokens coming back, over the last 5 s, ms; 0 when none.
    /// Thread-safe.
    double round_trip_ms() const;

  private:
    using clock = std::chrono::steady_clock;
    struct Queued {
        uint64_t id = 0;
        std::unique_ptr<SeqRequest> req;
        clock::time_point submitted;
    };
    struct Slot {
        uint64_t id = 0;                  // request id; 0: free (or draining)
        std::unique_ptr<SeqRequest> req;  // null: free (or draining)
        bool draining = false;  // cancelled with an output row in flight: reserved until it returns
        size_t n_prompt_sent = 0;  // prompt tokens sent into the pipeline
        int32_t n_pos = 0;         // next position
        int32_t next_input = -1;   // sampled token to send as the next decode input
        int32_t n_generated = 0;
        bool awaiting = false;  // an output row of this sequence is in flight
        clock::time_point submitted;
        clock::time_point admitted;
        clock::time_point sent_at;
        uint64_t ubatch = 0;  // StallWatch id of the ubatch with its awaited output row
        int64_t ttft_us = 0;
    };

    void run();
    void sync_plan();
    void apply_plan(const LocalPlan &plan);
    void drain_tokens();
    void handle_tokens(const wire_tokens &tokens);
    void on_sampled(int32_t seq, int32_t token);
    void take_cancellations();
    void admit();
    bool build_ubatch(wire_activations &act);
    void run_ubatch(const wire_activations &act);
    void check_stall();
    /// Ends the request in slot seq: frees the slot (or leaves it draining),
    /// frees the sequence on stage 0 and, when propagate, down the pipeline;
    /// then calls on_done. error: End::kError only.
    void end(int32_t seq, SeqOutcome::End how, const Error *error, bool propagate);
    /// on_done of a request that never got a slot.
    void finish_queued(Queued &q, SeqOutcome::End how, const Error *error);
    /// Ends every running request with `error` and frees every slot.
    void fail_running(const Error &error);
    /// fail_running, then the queued requests too.
    void fail_all(const Error &error);
    /// Frees seq on stage 0 (and its sampler); propagate: SEQ_RELEASE down the pipeline.
    void release(int32_t seq, bool propagate);
    bool send(wire_body body);
    void record_round_trip(clock::time_point sent);

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

    StageMeter meter_;
    StallWatch watch_;

    mutable std::mutex mutex_;
    std::deque<Queued> queue_;              // guarded by mutex_
    std::unordered_set<uint64_t> cancels_;  // guarded by mutex_: ids to cancel
    std::atomic<uint64_t> next_id_{1};
    std::atomic<size_t> max_queue_{64};
    std::atomic<size_t> n_active_{0};

    mutable std::mutex rtt_mutex_;
    std::deque<std::pair<clock::time_point, double>> round_trips_;  // guarded by rtt_mutex_ (ms)
    std::atomic<uint64_t> bytes_sent_{0};
    std::atomic<bool> stop_{false};
    std::atomic<bool> stopped_{false};  // stop() has failed everything; submit() refuses
    std::thread thread_;
};

}  // namespace colony
