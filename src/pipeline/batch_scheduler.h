// BatchScheduler: the one engine that serves requests, for a single node (a
// cluster of one: LocalBackend) and for a coordinator (stage 0 of a
// pipeline). One thread owns stage 0's StageHost (the first layer range, run
// on the full model file), the link to stage 1 and, in a cluster, the PULL
// socket on which the last stage returns TOKENS.
//
// Each request gets a sequence id (a slot, < n_parallel). Every turn the
// scheduler
//   1. follows the plan in ClusterState (a new epoch: fail or keep what runs,
//      load stage 0 for the new range, open the link to stage 1),
//   2. takes the tokens the last stage sampled (or that stage 0 sampled
//      itself when the plan has one stage),
//   3. drops cancelled requests, admits queued ones into free slots,
//   4. builds one ubatch of at most n_ubatch rows (ubatch_builder.h: one
//      decode row for every sequence whose last token came back, then prompt
//      chunks in admission order) and runs it through stage 0; hidden states
//      go to stage 1 without waiting for the answer, so with several
//      sequences in flight every stage works on some micro-batch. On a plan
//      of one stage, stage 0 samples at once (continuous batching on one node).
// A finished, cancelled or failed sequence is freed on every stage by
// SEQ_RELEASE, which travels down the pipeline behind the sequence's last
// ubatch (same FIFO path, so it never overtakes it).
//
// Cancellation: a queued request leaves the queue; a running one ends at once
// (on_done with kCancelled), its cells are freed on stage 0 and SEQ_RELEASE
// goes down the pipeline. When an output row of the sequence is still in
// flight, the slot stays reserved ("draining") until that row's token comes
// back and is dropped, so a new request in the same slot never receives a
// token of the old one.
//
// Re-plans (cluster_state.h): every turn the scheduler tells ClusterState how
// many slots are busy (scheduler_tick) and admits nothing while the control
// plane has paused admission; submit() queues while a graceful re-plan is
// under way, and the queue survives its epoch change.
//
// Recovery (DESIGN.md, decision 10; batch_scheduler_recovery.cpp): a plan
// change that is not graceful (a lost worker), a pipeline that makes no
// progress for stall_timeout_ms plus the learned time of the tokens in flight
// (stall_watch.h), or a failed send to stage 1 does not fail the running
// requests: each keeps its slot, its delivered tokens and its outcome so far,
// and is *replayed*: once a new plan serves, its prompt and every token it
// delivered are prefilled again (the stages' KV caches and the last stage's
// sampler state are rebuilt from that history; the draw is a function of
// (seed, position), sampler.h), and generation goes on from where it stopped.
// The client sees a pause, no error and no token twice. Queued requests wait
// meanwhile, and submit() queues new ones. When no plan serves within
// recovery_timeout_ms, the replayed and queued requests fail with
// Error(kUnavailable) naming the loss. With opts.recovery false, a lost
// worker fails every running and queued request at once (as before).
// TOKENS of another epoch are dropped (fencing: a worker back from a
// partition cannot put a stale token into a stream).
//
// A failed stage step is handled by its error's ErrorAction (util/error.h):
// kReplan recovers as above, anything else fails only the ubatch's requests.
// Stage 0 failing to load is kept for load_error() and wait_loaded().
//
// Files: batch_scheduler.cpp (the thread, the plan, the request API),
// batch_scheduler_ubatch.cpp (admission, TOKENS, building and running ubatches),
// batch_scheduler_recovery.cpp (replaying running requests on a new plan).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "model/hparams.h"
#include "net/keys.h"
#include "net/message_fence.h"
#include "net/wire.h"
#include "pipeline/coordinator_options.h"
#include "pipeline/node_status.h"
#include "pipeline/stage_host.h"
#include "pipeline/stall_watch.h"
#include "runtime/draft_source.h"
#include "runtime/speculative.h"
#include "util/error.h"

namespace colony {

class ClusterState;
class GgufFile;
struct LocalPlan;
struct ReceivedMessage;

/// How a sequence ended (times in microseconds from submit()).
struct SeqOutcome {
    enum class End { kStop, kLength, kCancelled, kError };
    End end = End::kStop;  // kStop: end-of-generation token; kLength: max_tokens or context full
    int32_t n_prompt = 0;
    int32_t n_generated = 0;  // tokens delivered through on_token
    int64_t queue_us = 0;     // until the request got a slot (the whole time if it never did)
    int64_t ttft_us = 0;      // until the first sampled token (0: none)
    int64_t total_us = 0;     // until on_done
    SpecStats spec;           // speculative decoding: drafts verified and accepted
    ErrorCode error_code = ErrorCode::kInternal;  // End::kError only
    std::string error_message;                    // End::kError only
};

/// A request in token ids, as the scheduler runs it.
struct SeqRequest {
    std::vector<int32_t> prompt;  // 1 .. n_ctx_seq - 1 tokens, each < n_vocab
    int32_t max_tokens = 16;      // >= 1
    WireSampling sampling;
    /// Grammar and logprobs for the last stage; sent with the ubatch that
    /// holds position 0 (has_options false: none).
    bool has_options = false;
    WireSeqOptions options;
    /// An earlier request (its id) with the same prompt, still running: once
    /// its prompt is in the pipeline, this one copies positions [0, n-1) of
    /// its KV cache on every stage and prefills only its last prompt token.
    /// 0, a different prompt, active penalties (they would miss the copied
    /// history) or a gone request: prefilled alone.
    uint64_t share_prompt_of = 0;
    bool ignore_eos = false;
    /// True for end-of-generation tokens (ends the sequence unless ignore_eos).
    std::function<bool(int32_t)> is_eog;
    /// Each sampled token that is delivered (not an ending EOG token), with
    /// its logprobs when the options ask for them, in order, on the
    /// scheduler thread. Must return quickly.
    std::function<void(const SampledToken &)> on_token;
    /// An embedding request (options.pooling != 0): its pooled embedding
    /// F32 [n_embd], once, on the scheduler thread; the request then ends
    /// with End::kStop and nothing is sampled.
    std::function<void(std::vector<float>)> on_embedding;
    bool embeds() const { return has_options && options.pooling != 0; }
    /// Exactly once, last, on the scheduler thread (on the thread calling
    /// stop() for what stop() fails).
    std::function<void(const SeqOutcome &)> on_done;
};

/// Throws Error(kInvalidArgument) for options no scheduler can serve with:
/// no model path, n_parallel or n_ubatch of 0, n_parallel > n_ubatch, fewer
/// than 2 positions per sequence.
void validate_batch_options(const CoordinatorOptions &opts);

class BatchScheduler {
  public:
    /// data_pull: the bound PULL socket for TOKENS of a cluster (moved in;
    /// from then on only the scheduler thread uses it), or null for a node
    /// that serves alone (plans of one stage only). node_keys authenticate
    /// the link to stage 1 (unused when insecure). Throws
    /// Error(kInvalidArgument) for bad options (validate_batch_options).
    BatchScheduler(zmq::context_t &ctx, const CoordinatorOptions &opts,
                   std::shared_ptr<const GgufFile> model, const ModelHparams &hp,
                   const CurveKeypair &node_keys, std::unique_ptr<zmq::socket_t> data_pull,
                   ClusterState &state);
    ~BatchScheduler();
    BatchScheduler(const BatchScheduler &) = delete;
    BatchScheduler &operator=(const BatchScheduler &) = delete;

    /// Starts the scheduler thread.
    void start();
    /// Stops and joins the thread, then ends every running and queued
    /// request with Error(kUnavailable) (on_done on the calling thread);
    /// later submit() calls are refused. Idempotent.
    void stop();

    /// Queues a request and returns its id (> 0). Throws Error:
    /// kUnavailable (not ready: loading, no workers, shutting down),
    /// kResource (every slot is busy and max_queue requests are waiting:
    /// "queue full"), kInvalidArgument (empty prompt, max_tokens < 1, a token
    /// outside the vocabulary, a sampling parameter out of range), kOutOfRange
    /// (the prompt does not fit a sequence). A submit() that throws calls
    /// nothing. Thread-safe.
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
    uint64_t bytes_sent() const { return host_.bytes_sent(); }
    /// Stage 0's counters (load progress, ubatches, KV use). Thread-safe.
    StageRuntime stage_runtime() const { return host_.meter().snapshot(); }
    /// Ubatches run so far that held both decode rows (of sequences that are
    /// generating) and prompt rows (of others being prefilled): how often a
    /// prompt was prefilled alongside decoding. Thread-safe.
    uint64_t mixed_ubatches() const { return mixed_ubatches_.load(); }
    /// Blocks until stage 0 of the current plan is loaded and serves, or its
    /// load failed (then rethrows that Error: kNotFound, kCorrupt,
    /// kResource, ...), or the scheduler stopped (kUnavailable).
    void wait_loaded();
    /// Why stage 0 failed to load for the current plan; nullopt when it did
    /// not fail. Thread-safe.
    std::optional<Error> load_error() const;
    /// Mean time from sending a ubatch with output rows into the pipeline to
    /// its sampled tokens coming back, over the last 5 s, ms; 0 when none.
    /// Thread-safe.
    double round_trip_ms() const;
    /// Prompt positions copied between choices instead of prefilled, since
    /// the start. Thread-safe.
    uint64_t prompt_tokens_shared() const { return prompt_tokens_shared_.load(); }
    /// TOKENS dropped as stale, replayed or of no running request
    /// (message_fence.h). Thread-safe.
    FenceCounts dropped_messages() const { return fence_.counts(); }
    /// Speculative decoding since the start: verifications, drafts verified
    /// and accepted over every request. Thread-safe.
    SpecStats spec_totals() const {
        SpecStats s;
        s.n_verifications = spec_verifications_.load();
        s.n_drafted = spec_drafted_.load();
        s.n_accepted = spec_accepted_.load();
        return s;
    }
    const SpecParams &spec_params() const { return opts_.spec; }

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
        uint32_t n_prompt_sent = 0;      // prompt tokens sent into the pipeline
        int32_t n_pos = 0;               // next position
        int32_t next_input = -1;         // sampled token to send as the next decode input
        std::vector<int32_t> generated;  // the tokens delivered, in order (usage; a replay)
        // A replay (recovery): prompt + generated, prefilled instead of the
        // prompt; empty when the sequence runs its own prompt.
        std::vector<int32_t> replay;
        bool replaying = false;           // replayed; no token came back since (for the stall)
        int n_replays = 0;                // times replayed (kMaxReplays more fail it)
        clock::time_point last_token_at;  // the last token delivered (the stall)
        bool awaiting = false;            // an output row of this sequence is in flight
        clock::time_point submitted;
        clock::time_point admitted;
        clock::time_point sent_at;
        uint64_t ubatch = 0;  // StallWatch id of the ubatch with its awaited output row
        int64_t ttft_us = 0;
        bool share_pending = false;  // may copy another slot's prompt (SeqRequest::share_prompt_of)
        bool wait_share = false;     // this ubatch: that slot still prefills the prompt
        int32_t copy_from = -1;      // the next ubatch tells the stages to copy this slot's KV
        uint64_t copy_leader = 0;    // the request id in slot copy_from when it was decided
        int n_shifts = 0;            // context shifts of its KV window (kv_window.h)
        // Speculative decoding (batch_scheduler_spec.cpp): the awaited output
        // row's position, the drafts in flight behind it and what making them
        // took, the draft length's controller and the counts so far.
        int32_t out_pos = -1;
        bool out_decodes = false;  // the awaited row is a decode row (not a prompt's end)
        std::vector<int32_t> drafts;
        double draft_ms = 0;
        DraftLength draft_length;
        SpecStats spec;
    };

    void run();
    /// What slot prefills: the request's prompt, or its replay.
    static const std::vector<int32_t> &prefill_of(const Slot &slot);
    /// Recovery: every running sequence starts again on the next plan from
    /// its token history (the header comment); draining slots are freed.
    /// `reason`: why, for the logs and a later failure.
    void replay_running(const std::string &reason);
    /// Recovery: closes a recovery once the plan serves (records it), or
    /// fails what waits once recovery_timeout_ms passed.
    void check_recovery();
    void wait_for_work();
    void sync_plan();
    void apply_plan(const LocalPlan &plan);
    void drain_tokens();
    void handle_tokens(const WireTokens &tokens);
    /// The tokens sampled for one sequence in one TOKENS (one; or, after a
    /// verification, the accepted drafts and the next token): checked
    /// against what the slot awaits, then delivered in order.
    void on_sampled_group(const WireSampled *group, size_t n);
    /// Delivers one sampled token; `last`: the last of its group (the next
    /// decode input). False when the request ended with it.
    bool on_sampled(int32_t seq, const WireSampled &sampled, bool last);
    /// Speculative decoding: drafts for every sequence about to decode, as
    /// many as its DraftLength and the room (context, window, max_tokens,
    /// ubatch) allow.
    void make_drafts();
    void on_embedding(const WireEmbedding &e);
    /// Decides for each slot with share_pending: copy now, wait, or prefill alone.
    void resolve_shares();
    void take_cancellations();
    void admit();
    /// --kv-window: shifts every sequence about to decode whose next
    /// position reaches the window, on stage 0 and (SEQ_SHIFT, ahead of its
    /// next ubatch) down the pipeline.
    void slide_windows();
    bool build_ubatch(WireActivations &act);
    void run_ubatch(const WireActivations &act);
    /// Reports stage 0's data link to stage 1 down (once per epoch).
    void check_link();
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
    /// The pipeline of this epoch cannot go on: fail everything and ask the
    /// control plane for a re-plan (serving alone: reset the one stage).
    void fail_pipeline(const std::string &reason);
    /// Frees seq on stage 0 (and its sampler); propagate: SEQ_RELEASE down
    /// the pipeline, its wire header naming request_id.
    void release(int32_t seq, bool propagate, uint64_t request_id);
    /// Whether TOKENS received from the last stage pass the fence: the
    /// running plan's epoch, a growing sequence per (key, session), and a
    /// request id (when not 0) of a running or draining request. Counts and
    /// logs a drop.
    bool admit_tokens(const ReceivedMessage &rm, const WireTokens &tokens);
    /// The request id for the wire header of `act`: its request when it
    /// holds one sequence, else 0 (a ubatch of several requests).
    uint64_t request_of(const WireActivations &act) const;
    void record_round_trip(clock::time_point sent);

    zmq::context_t &ctx_;
    const CoordinatorOptions &opts_;
    std::shared_ptr<const GgufFile> model_;
    ModelHparams hp_;
    const CurveKeypair &node_keys_;
    std::unique_ptr<zmq::socket_t> pull_;  // null: serving alone
    ClusterState &state_;

    // Scheduler thread only.
    StageHost host_;
    std::vector<Slot> slots_;
    std::vector<size_t> admission_order_;  // running slots, oldest first
    uint64_t epoch_ = 0;
    bool ready_ = false;
    bool link_reported_ = false;  // the link of epoch_ was reported down
    // Recovery in progress: since when, why, and what is replayed.
    std::optional<clock::time_point> recovering_since_;
    std::string recovery_reason_;
    uint32_t replayed_requests_ = 0;
    uint64_t replayed_tokens_ = 0;
    std::atomic<uint64_t> prompt_tokens_shared_{0};
    std::atomic<bool> recovering_{false};  // submit() queues while true
    std::string last_user_id_;             // only this key fingerprint may send TOKENS ("" = any)
    MessageFence fence_;                   // of TOKENS (drain_tokens); counts() from any thread
    StallWatch watch_;
    std::unique_ptr<DraftSource> draft_;  // speculative decoding's drafts (null: off)

    mutable std::mutex mutex_;
    std::condition_variable work_cv_;       // submit, cancel, stop (serving alone)
    std::deque<Queued> queue_;              // guarded by mutex_
    std::unordered_set<uint64_t> cancels_;  // guarded by mutex_: ids to cancel
    std::atomic<uint64_t> next_id_{1};
    std::atomic<size_t> max_queue_{64};
    std::atomic<size_t> n_active_{0};
    std::atomic<uint64_t> mixed_ubatches_{0};
    std::atomic<int64_t> spec_verifications_{0}, spec_drafted_{0}, spec_accepted_{0};
    std::condition_variable load_cv_;  // stage 0 loaded or failed (wait_loaded)
    std::optional<Error> load_error_;  // guarded by mutex_
    bool stage_ready_ = false;         // guarded by mutex_: stage 0 of epoch_ serves

    mutable std::mutex rtt_mutex_;
    std::deque<std::pair<clock::time_point, double>> round_trips_;  // guarded by rtt_mutex_ (ms)
    std::atomic<bool> stop_{false};
    std::atomic<bool> stopped_{false};  // stop() has failed everything; submit() refuses
    std::thread thread_;
};

}  // namespace colony
