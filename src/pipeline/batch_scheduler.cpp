#include "pipeline/batch_scheduler.h"

#include <algorithm>

#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/logits_dump.h"
#include "pipeline/seq_samplers.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/trace.h"

namespace colony {

namespace {

constexpr int kIdlePollMs = 5;
constexpr std::chrono::seconds kRoundTripWindow{5};  // round_trip_ms() averages over this

SeqOutcome outcome_of(SeqOutcome::End how, const Error *error) {
    SeqOutcome o;
    o.end = how;
    if (error) {
        o.error_code = error->code();
        o.error_message = error->what();
    }
    return o;
}

void call_done(SeqRequest &req, const SeqOutcome &outcome) {
    if (!req.on_done)
        return;
    try {
        req.on_done(outcome);
    } catch (const std::exception &e) {
        COLONY_LOG_ERROR("scheduler: on_done threw: %s", e.what());
    }
}

/// What every stage this node runs shares: the sequences and their context,
/// the ubatch, threads, KV types and weight loading (no range, no GPU).
StageConfig node_stage_config(const CoordinatorOptions &opts) {
    StageConfig cfg;
    cfg.n_ctx = opts.n_ctx_seq() * opts.n_parallel;
    cfg.n_seq_max = opts.n_parallel;
    cfg.n_ctx_seq = opts.n_ctx_seq();
    cfg.n_ubatch = opts.n_ubatch;
    cfg.n_threads = opts.n_threads;
    cfg.cpu = opts.cpu;
    cfg.type_k = opts.type_k;
    cfg.type_v = opts.type_v;
    cfg.load.use_mmap = opts.use_mmap;
    cfg.load.use_repack = opts.use_repack;
    cfg.load.skip = opts.skip_layers;
    cfg.dyn_skip = opts.dyn_skip;
    return cfg;
}

}  // namespace

void validate_batch_options(const CoordinatorOptions &o) {
    auto bad = [](const std::string &msg) { throw Error(ErrorCode::kInvalidArgument, msg); };
    if (o.model_path.empty())
        bad("no model path");
    if (o.n_parallel == 0)
        bad("--parallel must be at least 1");
    if (o.n_ubatch == 0)
        bad("ubatch size must be at least 1");
    if (o.n_parallel > o.n_ubatch) {
        bad("--parallel (" + std::to_string(o.n_parallel) + ") must not exceed the ubatch size (" +
            std::to_string(o.n_ubatch) + ")");
    }
    if (o.n_ctx_seq() < 2) {
        bad("context of " + std::to_string(o.n_ctx) + " cells is too small for " +
            std::to_string(o.n_parallel) + " parallel sequences");
    }
    o.kv_window.validate(o.n_ctx_seq());
    if (o.kv_window.enabled() && o.invariance == StageConfig::Invariance::kFull)
        bad("--kv-window cannot be used with --batch-invariant (its fixed cell placement "
            "cannot move positions)");
}

BatchScheduler::BatchScheduler(zmq::context_t &ctx, const CoordinatorOptions &opts,
                               std::shared_ptr<const GgufFile> model, const ModelHparams &hp,
                               const CurveKeypair &node_keys,
                               std::unique_ptr<zmq::socket_t> data_pull, ClusterState &state)
    : ctx_(ctx),
      opts_(opts),
      model_(std::move(model)),
      hp_(hp),
      node_keys_(node_keys),
      pull_(std::move(data_pull)),
      state_(state),
      watch_(opts.stall_timeout_ms) {
    validate_batch_options(opts_);
    slots_.resize(opts_.n_parallel);
    // Only a stage 0 that is also the last stage samples (serving alone, or a
    // plan that leaves every worker out); otherwise the hook never runs.
    if (!opts_.debug_logits_file.empty())
        host_.set_logits_dump(std::make_shared<LogitsDump>(opts_.debug_logits_file));
    if (opts_.spec.enabled()) {  // the draft model: this node's context, sequences, threads
        draft_ = make_draft_source(opts_.spec, opts_.model_path, Tokenizer(opts_.model_path),
                                   node_stage_config(opts_));
    }
}

BatchScheduler::~BatchScheduler() {
    stop();
}

void BatchScheduler::start() {
    thread_ = std::thread([this] { run(); });
}

void BatchScheduler::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    work_cv_.notify_all();
    load_cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
    // Whatever is still waiting gets an answer.
    const Error gone(ErrorCode::kUnavailable, "the server is shutting down");
    std::deque<Queued> queued;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopped_.store(true);  // under the lock: no submit() queues after this
        queued.swap(queue_);
    }
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req)
            end(static_cast<int32_t>(s), SeqOutcome::End::kError, &gone, false);
    }
    for (Queued &q : queued)
        finish_queued(q, SeqOutcome::End::kError, &gone);
}

uint64_t BatchScheduler::submit(std::unique_ptr<SeqRequest> req) {
    if (req->prompt.empty())
        throw Error(ErrorCode::kInvalidArgument, "empty prompt");
    if (req->max_tokens < 1)
        throw Error(ErrorCode::kInvalidArgument, "max_tokens must be at least 1");
    if (req->prompt.size() >= opts_.n_ctx_seq()) {
        throw Error(ErrorCode::kOutOfRange, "context overflow: the prompt has " +
                                                std::to_string(req->prompt.size()) +
                                                " tokens, a sequence holds " +
                                                std::to_string(opts_.n_ctx_seq()) + " positions");
    }
    if (opts_.kv_window.enabled() && req->prompt.size() + 1 > opts_.kv_window.window) {
        throw Error(ErrorCode::kOutOfRange, "the prompt has " + std::to_string(req->prompt.size()) +
                                                " tokens, the KV window holds " +
                                                std::to_string(opts_.kv_window.window - 1));
    }
    for (int32_t t : req->prompt) {
        if (t < 0 || static_cast<uint32_t>(t) >= hp_.n_vocab) {
            throw Error(ErrorCode::kInvalidArgument,
                        "token id " + std::to_string(t) + " outside the vocabulary");
        }
    }
    validate_sampling(sampling_from_wire(req->sampling));
    if (stopped_.load() || stop_.load())
        throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    const ClusterState::Snapshot snap = state_.snapshot();
    // During a graceful re-plan or a recovery requests wait in the queue.
    if (!snap.ready && !snap.replanning && !recovering_.load()) {
        throw Error(ErrorCode::kUnavailable,
                    "the cluster is not ready: " + snap.status +
                        (snap.reason.empty() ? "" : " (" + snap.reason + ")"));
    }
    uint64_t id = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_.load() || stop_.load())
            throw Error(ErrorCode::kUnavailable, "the server is shutting down");
        // as many as the free slots take, plus max_queue waiting
        if (queue_.size() + n_active_.load() >= slots_.size() + max_queue_.load()) {
            throw Error(ErrorCode::kResource, "queue full: " + std::to_string(queue_.size()) +
                                                  " requests are waiting; try again later");
        }
        id = next_id_.fetch_add(1);
        queue_.push_back({id, std::move(req), clock::now()});
    }
    work_cv_.notify_all();
    return id;
}

void BatchScheduler::cancel(uint64_t id) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_.load())
            return;
        cancels_.insert(id);
    }
    work_cv_.notify_all();
}

size_t BatchScheduler::n_queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

void BatchScheduler::wait_loaded() {
    std::unique_lock<std::mutex> lock(mutex_);
    load_cv_.wait(lock, [&] { return stage_ready_ || load_error_ || stop_.load(); });
    if (load_error_)
        throw *load_error_;
    if (!stage_ready_)
        throw Error(ErrorCode::kUnavailable, "the server is shutting down");
}

std::optional<Error> BatchScheduler::load_error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return load_error_;
}

double BatchScheduler::round_trip_ms() const {
    const clock::time_point now = clock::now();
    std::lock_guard<std::mutex> lock(rtt_mutex_);
    double sum = 0;
    size_t n = 0;
    for (const auto &[t, ms] : round_trips_) {
        if (now - t <= kRoundTripWindow) {
            sum += ms;
            ++n;
        }
    }
    return n ? sum / n : 0.0;
}

void BatchScheduler::record_round_trip(clock::time_point sent) {
    const clock::time_point now = clock::now();
    std::lock_guard<std::mutex> lock(rtt_mutex_);
    round_trips_.emplace_back(now, std::chrono::duration<double, std::milli>(now - sent).count());
    while (!round_trips_.empty() && now - round_trips_.front().first > kRoundTripWindow)
        round_trips_.pop_front();
}

// ---- scheduler thread ------------------------------------------------------

void BatchScheduler::run() {
    while (!stop_.load()) {
        try {
            sync_plan();
            check_recovery();
            drain_tokens();
            check_link();
            check_stall();
            take_cancellations();
            admit();
            WireActivations act;
            if (ready_ && build_ubatch(act)) {
                run_ubatch(act);
                continue;
            }
            wait_for_work();
        } catch (const Error &e) {
            COLONY_LOG_ERROR("scheduler: %s", e.what());
        } catch (const zmq::error_t &e) {
            if (e.num() == ETERM)
                return;
            COLONY_LOG_ERROR("scheduler: %s", e.what());
        }
    }
}

void BatchScheduler::wait_for_work() {
    const auto idle = std::chrono::milliseconds(kIdlePollMs);
    if (pull_) {  // a cluster: TOKENS from the last stage wake the scheduler
        zmq::pollitem_t item{pull_->handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, idle);
        return;
    }
    // Serving alone: a submit, cancel or stop wakes it; the timeout still
    // follows plan changes and admission pauses.
    std::unique_lock<std::mutex> lock(mutex_);
    work_cv_.wait_for(lock, idle, [&] {
        return stop_.load() || !cancels_.empty() || (ready_ && !queue_.empty());
    });
}

void BatchScheduler::sync_plan() {
    const ClusterState::Snapshot snap = state_.snapshot();
    if (snap.epoch != epoch_) {
        const std::string &why = snap.end_reason.empty() ? snap.reason : snap.end_reason;
        const Error changed(
            ErrorCode::kUnavailable,
            "the pipeline changed: " + (why.empty() ? std::string("re-planned") : why));
        if (opts_.recovery) {
            if (n_active_.load() > 0)
                replay_running(why.empty() ? std::string("re-planned") : why);
        } else if (snap.replanning) {
            fail_running(changed);  // a graceful re-plan: the queue runs on the new plan
        } else {
            fail_all(changed);
        }
        epoch_ = snap.epoch;
        ready_ = false;
        link_reported_ = false;
        host_.close_link();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stage_ready_ = false;
            load_error_.reset();
        }
        if (snap.plan)
            apply_plan(*snap.plan);
    }
    const bool was_ready = ready_;
    ready_ = snap.ready && snap.plan.has_value() && host_.loaded() &&
             state_.local_ready_epoch() == epoch_;
    if (ready_ && !was_ready) {
        host_.link_expected();
        if (!recovering_since_)
            state_.note_resumed(0, 0);  // a loss with nothing running: serving again
    }
    if (ready_)
        watch_.hint_ms_per_token(snap.plan->ms_per_token_hint);
    last_user_id_ = snap.plan ? snap.plan->last_user_id : std::string();
}

void BatchScheduler::apply_plan(const LocalPlan &plan) {
    watch_ = StallWatch(opts_.stall_timeout_ms);  // another pipeline: learn its speed afresh
    watch_.hint_ms_per_token(plan.ms_per_token_hint);
    StageConfig cfg = node_stage_config(opts_);
    cfg.range = plan.range;
    cfg.gpu = opts_.gpu;
    cfg.slowdown = opts_.debug_slowdown;  // emulated heterogeneity (docs/cluster.md)
    // a cluster: recovery re-computes the same floats (stage.h); alone, only
    // when asked for (--batch-invariant: the same floats as a cluster's)
    const bool asked = opts_.invariance == StageConfig::Invariance::kFull;
    cfg.invariance = pull_ || asked ? opts_.invariance : StageConfig::Invariance::kNone;
    try {
        if (host_.holds(opts_.model_path, cfg)) {
            host_.reset();
        } else {
            host_.load(opts_.model_path, model_, hp_, cfg);
            COLONY_LOG_INFO("scheduler: stage 0 runs layers %s", plan.range.str().c_str());
        }
        if (!plan.is_last)
            host_.open_link(ctx_, plan.next_endpoint, plan.next_key_z85, node_keys_, true);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("scheduler: cannot set up stage 0 for plan %llu: %s",
                         static_cast<unsigned long long>(plan.epoch), e.what());
        {
            std::lock_guard<std::mutex> lock(mutex_);
            load_error_ = e;
        }
        load_cv_.notify_all();
        return;
    }
    state_.set_local_ready(plan.epoch);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stage_ready_ = true;
    }
    load_cv_.notify_all();
}

void BatchScheduler::check_link() {
    if (!ready_ || !host_.has_link())
        return;
    if (const std::optional<int64_t> down = host_.link_down_ms(); down && !link_reported_) {
        // the control plane takes stage 1 for lost (on_link_down)
        COLONY_LOG_WARN("scheduler: the data link to stage 1 is down (%lld ms)",
                        static_cast<long long>(*down));
        state_.report_link_down(epoch_, *down);
        link_reported_ = true;
    }
}

void BatchScheduler::check_stall() {
    const clock::time_point now = clock::now();
    const bool awaiting = std::any_of(slots_.begin(), slots_.end(), [](const Slot &s) {
        return (s.req || s.draining) && s.awaiting;
    });
    if (!awaiting) {
        watch_.idle(now);
        return;
    }
    if (!watch_.overdue(now))
        return;
    fail_pipeline("no answer from the pipeline for " + std::to_string(*watch_.waited_ms(now)) +
                  " ms (allowed " + std::to_string(watch_.allowance_ms()) + " ms for " +
                  std::to_string(watch_.tokens_in_flight()) + " tokens in flight)");
}

void BatchScheduler::fail_pipeline(const std::string &reason) {
    if (opts_.recovery) {
        if (n_active_.load() > 0) {
            if (pull_)
                state_.open_recovery(epoch_, "", reason, 0);
            replay_running(reason);
        }
    } else {
        fail_all(Error(ErrorCode::kUnavailable, reason));
    }
    if (!pull_) {
        // Serving alone: nobody else re-plans. The one stage starts afresh
        // (and the replayed requests run on it at once).
        host_.reset();
        return;
    }
    state_.request_replan(epoch_, reason);
    ready_ = false;
}

void BatchScheduler::end(int32_t seq, SeqOutcome::End how, const Error *error, bool propagate) {
    Slot &slot = slots_[seq];
    const clock::time_point now = clock::now();
    SeqOutcome outcome = outcome_of(how, error);
    outcome.n_prompt = static_cast<int32_t>(slot.req->prompt.size());
    outcome.n_generated = static_cast<int32_t>(slot.generated.size());
    outcome.queue_us = us_between(slot.submitted, slot.admitted);
    outcome.ttft_us = slot.ttft_us;
    outcome.total_us = us_between(slot.submitted, now);
    outcome.spec = slot.spec;
    std::unique_ptr<SeqRequest> req = std::move(slot.req);
    const uint64_t request_id = slot.id;
    // A row still in flight comes back later: keep the slot (and the row's
    // position, which handle_tokens matches) until then, so its token cannot
    // reach the next request of this slot.
    const bool in_flight = propagate && slot.awaiting && host_.has_link();
    Slot drained;
    drained.draining = in_flight;
    drained.awaiting = in_flight;
    drained.sent_at = slot.sent_at;
    drained.ubatch = slot.ubatch;
    drained.n_pos = slot.n_pos;
    drained.out_pos = slot.out_pos;
    drained.drafts = slot.drafts;
    slot = in_flight ? std::move(drained) : Slot{};
    admission_order_.erase(
        std::remove(admission_order_.begin(), admission_order_.end(), static_cast<size_t>(seq)),
        admission_order_.end());
    n_active_.fetch_sub(1);
    release(seq, propagate, request_id);
    COLONY_LOG_DEBUG("scheduler: request %llu (sequence %d) ended: %s after %d tokens%s%s",
                     static_cast<unsigned long long>(request_id), seq,
                     how == SeqOutcome::End::kStop        ? "stop"
                     : how == SeqOutcome::End::kLength    ? "length"
                     : how == SeqOutcome::End::kCancelled ? "cancelled"
                                                          : "error",
                     outcome.n_generated, error ? ": " : "", error ? error->what() : "");
    call_done(*req, outcome);
}

void BatchScheduler::finish_queued(Queued &q, SeqOutcome::End how, const Error *error) {
    SeqOutcome outcome = outcome_of(how, error);
    outcome.n_prompt = static_cast<int32_t>(q.req->prompt.size());
    outcome.total_us = us_between(q.submitted, clock::now());
    outcome.queue_us = outcome.total_us;
    call_done(*q.req, outcome);
}

void BatchScheduler::fail_running(const Error &error) {
    watch_.clear();
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req)
            end(static_cast<int32_t>(s), SeqOutcome::End::kError, &error, false);
        slots_[s] = Slot{};  // also drops draining slots: their rows are of a dead pipeline
    }
    admission_order_.clear();
}

void BatchScheduler::fail_all(const Error &error) {
    fail_running(error);
    std::deque<Queued> queued;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queued.swap(queue_);
    }
    for (Queued &q : queued)
        finish_queued(q, SeqOutcome::End::kError, &error);
}

void BatchScheduler::slide_windows() {
    if (!opts_.kv_window.enabled())
        return;
    for (size_t s : admission_order_) {
        Slot &slot = slots_[s];
        if (!slot.req || slot.next_input < 0)
            continue;  // only a sequence about to decode; none of its rows is in flight
        const auto shift = opts_.kv_window.shift_before(slot.n_pos);
        if (!shift)
            continue;
        const WireSeqShift msg{epoch_, static_cast<int32_t>(s), shift->p0, shift->n_discard,
                               shift->n_past};
        host_.shift(msg, opts_.n_parallel);
        // ahead of the sequence's next ubatch on the same link (FIFO)
        if (host_.has_link() && !host_.send(msg, "stage 1", slot.id))
            COLONY_LOG_WARN("scheduler: SEQ_SHIFT of sequence %zu did not reach stage 1", s);
        slot.n_pos = shift->n_past_after();
        ++slot.n_shifts;
    }
}

void BatchScheduler::release(int32_t seq, bool propagate, uint64_t request_id) {
    host_.release(seq, 0, opts_.n_parallel);
    if (propagate && host_.has_link() &&
        !host_.send(WireSeqRelease{seq, 0, epoch_}, "stage 1", request_id)) {
        // The link is gone: the next ubatch's send, or the stall watch, fails
        // the pipeline; the stages' cells are rebuilt by the re-plan.
        COLONY_LOG_WARN("scheduler: SEQ_RELEASE of sequence %d did not reach stage 1", seq);
    }
}

}  // namespace colony
