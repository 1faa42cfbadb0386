#include "pipeline/batch_scheduler.h"

#include <algorithm>

#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/logits_dump.h"
#include "pipeline/seq_samplers.h"
#include "runtime/stage.h"
#include "runtime/ubatch_builder.h"
#include "util/error.h"
#include "util/log.h"
#include "util/trace.h"

namespace colony {

namespace {

constexpr int kIdlePollMs = 5;
constexpr uint32_t kHintMinTokens = 16;  // smaller ubatches (decode) are dominated by fixed costs
constexpr std::chrono::seconds kRoundTripWindow{5};  // round_trip_ms() averages over this

int64_t us_between(std::chrono::steady_clock::time_point a,
                   std::chrono::steady_clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

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
    if (!snap.ready && !snap.replanning) {  // during a graceful re-plan requests wait in the queue
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
            drain_tokens();
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
        if (snap.replanning) {
            fail_running(changed);  // a graceful re-plan: the queue runs on the new plan
        } else {
            fail_all(changed);
        }
        epoch_ = snap.epoch;
        ready_ = false;
        host_.close_link();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stage_ready_ = false;
            load_error_.reset();
        }
        if (snap.plan)
            apply_plan(*snap.plan);
    }
    ready_ = snap.ready && snap.plan.has_value() && host_.loaded() &&
             state_.local_ready_epoch() == epoch_;
    if (ready_)
        watch_.hint_ms_per_token(snap.plan->ms_per_token_hint);
    last_user_id_ = snap.plan ? snap.plan->last_user_id : std::string();
}

void BatchScheduler::apply_plan(const LocalPlan &plan) {
    watch_ = StallWatch(opts_.stall_timeout_ms);  // another pipeline: learn its speed afresh
    watch_.hint_ms_per_token(plan.ms_per_token_hint);
    StageConfig cfg;
    cfg.range = plan.range;
    cfg.n_ctx = opts_.n_ctx_seq() * opts_.n_parallel;
    cfg.n_seq_max = opts_.n_parallel;
    cfg.n_ctx_seq = opts_.n_ctx_seq();
    cfg.n_ubatch = opts_.n_ubatch;
    cfg.n_threads = opts_.n_threads;
    cfg.type_k = opts_.type_k;
    cfg.type_v = opts_.type_v;
    cfg.load.use_mmap = opts_.use_mmap;
    cfg.load.use_repack = opts_.use_repack;
    cfg.slowdown = opts_.debug_slowdown;  // emulated heterogeneity (docs/cluster.md)
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

void BatchScheduler::drain_tokens() {
    if (!pull_)
        return;
    for (;;) {
        const int64_t t_recv = trace_now_us();
        ReceivedMessage rm = recv_message(*pull_, {}, zmq::recv_flags::dontwait);
        if (rm.status == RECV_STATUS_TIMEOUT)
            return;
        if (rm.status != RECV_STATUS_OK)
            continue;
        if (trace_enabled()) {
            trace_event("receive", "hop", t_recv, trace_now_us() - t_recv,
                        "{\"request\":" + std::to_string(rm.message.request_id) + "}");
        }
        const WireType type = wire_message_type(rm.message);
        if (type != WIRE_TYPE_TOKENS) {
            COLONY_LOG_WARN("scheduler: dropped %s on the data socket (only TOKENS expected)",
                            wire_type_name(type));
            continue;
        }
        if (!last_user_id_.empty() && rm.user_id != last_user_id_) {
            COLONY_LOG_WARN("scheduler: dropped TOKENS from key %s: not the last stage",
                            rm.user_id.c_str());
            continue;
        }
        handle_tokens(std::get<WireTokens>(rm.message.body));
    }
}

void BatchScheduler::handle_tokens(const WireTokens &tokens) {
    if (tokens.plan_epoch != epoch_) {
        COLONY_LOG_DEBUG("scheduler: dropped TOKENS of plan %llu",
                         static_cast<unsigned long long>(tokens.plan_epoch));
        return;
    }
    for (const WireSampled &s : tokens.sampled) {
        const bool in_range = s.seq_id >= 0 && static_cast<size_t>(s.seq_id) < slots_.size();
        Slot *slot = in_range ? &slots_[s.seq_id] : nullptr;
        const bool expected = slot && (slot->req || slot->draining) && slot->awaiting &&
                              s.pos == slot->n_pos - 1 && s.token >= 0 &&
                              static_cast<uint32_t>(s.token) < hp_.n_vocab;
        if (!expected) {
            COLONY_LOG_WARN(
                "scheduler: dropped a sampled token (seq %d, pos %d, token %d) that "
                "no running sequence expects",
                s.seq_id, s.pos, s.token);
            continue;
        }
        watch_.answered(slot->ubatch, clock::now());
        if (host_.has_link()) {
            record_round_trip(slot->sent_at);
            if (trace_enabled()) {
                const int64_t waited = us_between(slot->sent_at, clock::now());
                trace_event_on("pipeline", "wait", "pipeline", trace_now_us() - waited, waited,
                               "{\"request\":" + std::to_string(slot->id) +
                                   ",\"pos\":" + std::to_string(s.pos) + "}");
            }
        }
        if (slot->draining) {
            // the last row of a cancelled sequence: its cells were released already
            *slot = Slot{};
            continue;
        }
        on_sampled(s.seq_id, s.token);
    }
}

void BatchScheduler::on_sampled(int32_t seq, int32_t token) {
    Slot &slot = slots_[seq];
    slot.awaiting = false;
    if (slot.n_generated == 0 && slot.ttft_us == 0)
        slot.ttft_us = us_between(slot.submitted, clock::now());
    SeqRequest &req = *slot.req;
    if (!req.ignore_eos && req.is_eog && req.is_eog(token)) {
        end(seq, SeqOutcome::End::kStop, nullptr, true);
        return;
    }
    ++slot.n_generated;
    if (req.on_token) {
        try {
            req.on_token(token);
        } catch (const std::exception &e) {
            COLONY_LOG_ERROR("scheduler: on_token threw: %s", e.what());
        }
    }
    if (slot.n_generated >= req.max_tokens ||
        static_cast<uint32_t>(slot.n_pos) >= opts_.n_ctx_seq()) {
        end(seq, SeqOutcome::End::kLength, nullptr, true);
    } else {
        slot.next_input = token;
    }
}

void BatchScheduler::take_cancellations() {
    std::unordered_set<uint64_t> ids;
    std::vector<Queued> dropped;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (cancels_.empty())
            return;
        ids.swap(cancels_);
        for (auto it = queue_.begin(); it != queue_.end();) {
            if (ids.count(it->id)) {
                dropped.push_back(std::move(*it));
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (Queued &q : dropped)
        finish_queued(q, SeqOutcome::End::kCancelled, nullptr);
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req && ids.count(slots_[s].id))
            end(static_cast<int32_t>(s), SeqOutcome::End::kCancelled, nullptr, true);
    }
}

void BatchScheduler::admit() {
    size_t busy = 0;  // slots running a request or waiting for a cancelled one's last row
    for (const Slot &slot : slots_)
        busy += slot.req || slot.draining;
    const bool paused = state_.scheduler_tick(busy);  // a re-plan waits for running requests
    if (!ready_ || paused)
        return;
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) {
        if (slots_[s].req || slots_[s].draining)
            continue;
        Slot &slot = slots_[s];
        Queued q = std::move(queue_.front());
        queue_.pop_front();
        slot = Slot{};
        slot.id = q.id;
        slot.req = std::move(q.req);
        slot.submitted = q.submitted;
        slot.admitted = clock::now();
        COLONY_LOG_DEBUG("scheduler: request %llu -> sequence %zu (%zu prompt tokens)",
                         static_cast<unsigned long long>(slot.id), s, slot.req->prompt.size());
        if (trace_enabled()) {
            const int64_t waited = us_between(slot.submitted, slot.admitted);
            trace_event_on("requests", "queue", "request", trace_now_us() - waited, waited,
                           "{\"request\":" + std::to_string(slot.id) + ",\"prompt_tokens\":" +
                               std::to_string(slot.req->prompt.size()) + "}");
        }
        admission_order_.push_back(s);
        n_active_.fetch_add(1);
    }
}

bool BatchScheduler::build_ubatch(WireActivations &act) {
    const int64_t t_build = trace_enabled() ? trace_now_us() : 0;
    // The rows: ubatch_builder.h (decode rows first, then prompt chunks in
    // admission order).
    std::vector<BatchSeqView> views;
    views.reserve(admission_order_.size());
    for (size_t s : admission_order_) {
        const Slot &slot = slots_[s];
        views.push_back({static_cast<int32_t>(s), &slot.req->prompt, slot.n_prompt_sent, slot.n_pos,
                         slot.next_input});
    }
    const UbatchPlan plan = colony::build_ubatch(views, opts_.n_ubatch);
    if (plan.empty())
        return false;

    act.plan_epoch = epoch_;
    act.dtype = opts_.wire_type;
    act.n_embd = 0;
    act.n_tokens = static_cast<uint32_t>(plan.tokens.size());
    act.tokens = plan.tokens;
    act.pos = plan.pos;
    act.seq_id = plan.seq_id;
    act.outputs.assign(plan.out_ids.begin(), plan.out_ids.end());
    for (size_t r = 0; r < plan.seq_id.size(); ++r) {
        const int32_t seq = plan.seq_id[r];
        if (act.seqs.empty() || act.seqs.back().seq_id != seq)
            act.seqs.push_back({seq, 0, slots_[seq].req->sampling});
        ++act.seqs.back().n_tokens;
    }

    const clock::time_point now = clock::now();
    const uint64_t ubatch_id = watch_.sent(act.n_tokens, now);
    bool has_decode = false, has_prompt = false;
    for (size_t i = 0; i < views.size(); ++i) {
        Slot &slot = slots_[views[i].seq];
        const bool decode = views[i].pending_token >= 0;
        if (decode) {
            slot.next_input = -1;
            slot.n_pos += 1;
        }
        slot.n_prompt_sent += plan.n_prompt_taken[i];
        slot.n_pos += static_cast<int32_t>(plan.n_prompt_taken[i]);
        if (decode || plan.n_prompt_taken[i] > 0)
            slot.sent_at = now;
        has_decode = has_decode || decode;
        has_prompt = has_prompt || plan.n_prompt_taken[i] > 0;
    }
    for (size_t view_index : plan.out_seq_index) {
        Slot &slot = slots_[views[view_index].seq];
        slot.awaiting = true;
        slot.ubatch = ubatch_id;
    }
    if (has_decode && has_prompt)
        mixed_ubatches_.fetch_add(1);
    if (t_build) {
        trace_event("build ubatch", "scheduler", t_build, trace_now_us() - t_build,
                    "{\"n_tokens\":" + std::to_string(act.n_tokens) +
                        ",\"n_seqs\":" + std::to_string(act.seqs.size()) + "}");
    }
    return true;
}

void BatchScheduler::run_ubatch(const WireActivations &act) {
    HostStep step;
    try {
        step = host_.step(act, opts_.wire_type);
    } catch (const Error &e) {
        const ErrorAction action = error_action(e.code());
        COLONY_LOG_ERROR("scheduler: stage 0 failed on a ubatch of %u tokens (%s): %s",
                         act.n_tokens, error_action_name(action), e.what());
        if (action == ErrorAction::kReplan) {
            fail_pipeline(std::string("stage 0 failed: ") + e.what());
            return;
        }
        // The KV cache is unchanged: only the ubatch's requests fail.
        for (const WireSeq &s : act.seqs) {
            if (slots_[s.seq_id].req)
                end(s.seq_id, SeqOutcome::End::kError, &e, true);
        }
        return;
    }
    // decode times of stage 0 for the measured planner (coordinator_profiles.cpp)
    state_.record_local_step(step.compute_ms, act.n_tokens);
    const uint32_t n_blocks = host_.stage().range().size();
    if (act.n_tokens >= kHintMinTokens && n_blocks > 0) {
        // stage 0's time per token scaled to every block: a first guess of the
        // pipeline's time per prompt token before any answer came back
        watch_.hint_ms_per_token(step.compute_ms / act.n_tokens * hp_.n_layer / n_blocks);
    }
    if (auto *tokens = std::get_if<WireTokens>(&step.out)) {
        handle_tokens(*tokens);  // a plan of one stage: stage 0 sampled
        return;
    }
    if (!host_.send(std::move(std::get<WireActivations>(step.out)), "stage 1", request_of(act))) {
        fail_pipeline(
            "cannot send hidden states to stage 1 (its data socket does not take messages)");
    }
}

uint64_t BatchScheduler::request_of(const WireActivations &act) const {
    return act.seqs.size() == 1 ? slots_[act.seqs.front().seq_id].id : 0;
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
    fail_all(Error(ErrorCode::kUnavailable, reason));
    if (!pull_) {
        // Serving alone: nobody else re-plans. The one stage starts afresh.
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
    outcome.n_generated = slot.n_generated;
    outcome.queue_us = us_between(slot.submitted, slot.admitted);
    outcome.ttft_us = slot.ttft_us;
    outcome.total_us = us_between(slot.submitted, now);
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

void BatchScheduler::release(int32_t seq, bool propagate, uint64_t request_id) {
    host_.release(seq, 0, opts_.n_parallel);
    if (propagate && host_.has_link() &&
        !host_.send(WireSeqRelease{seq, 0}, "stage 1", request_id)) {
        // The link is gone: the next ubatch's send, or the stall watch, fails
        // the pipeline; the stages' cells are rebuilt by the re-plan.
        COLONY_LOG_WARN("scheduler: SEQ_RELEASE of sequence %d did not reach stage 1", seq);
    }
}

}  // namespace colony
