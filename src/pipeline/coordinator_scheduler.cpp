#include "pipeline/coordinator_scheduler.h"

#include <algorithm>

#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/logits_dump.h"
#include "pipeline/stage_step.h"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kIdlePollMs = 5;
constexpr uint32_t kHintMinTokens = 16;  // smaller ubatches (decode) are dominated by fixed costs
constexpr int kSendTimeoutMs = 2000;
constexpr std::chrono::seconds kRoundTripWindow{5};  // round_trip_ms() averages over this

int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
}

}  // namespace

CoordinatorScheduler::CoordinatorScheduler(zmq::context_t &ctx, const CoordinatorOptions &opts,
                                           std::shared_ptr<const GgufFile> model,
                                           const ModelHparams &hp, const curve_keypair &node_keys,
                                           zmq::socket_t data_pull, ClusterState &state)
    : ctx_(ctx),
      opts_(opts),
      model_(std::move(model)),
      hp_(hp),
      node_keys_(node_keys),
      pull_(std::move(data_pull)),
      state_(state),
      samplers_(static_cast<int32_t>(hp.n_vocab)),
      watch_(opts.stall_timeout_ms),
      slots_(opts.n_parallel) {
    // Only a coordinator that is the last stage samples (a plan that leaves
    // every worker out); otherwise the hook never runs.
    if (!opts_.debug_logits_file.empty()) {
        install_logits_dump(samplers_, std::make_shared<LogitsDump>(opts_.debug_logits_file),
                            hp_.n_vocab);
    }
}

CoordinatorScheduler::~CoordinatorScheduler() {
    stop();
}

void CoordinatorScheduler::start() {
    thread_ = std::thread([this] { run(); });
}

void CoordinatorScheduler::stop() {
    stop_.store(true);
    if (thread_.joinable())
        thread_.join();
    // Whatever is still waiting gets an answer.
    const Error gone(ErrorCode::kUnavailable, "the coordinator is shutting down");
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

uint64_t CoordinatorScheduler::submit(std::unique_ptr<SeqRequest> req) {
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
    if (stopped_.load())
        throw Error(ErrorCode::kUnavailable, "the coordinator is shutting down");
    const ClusterState::Snapshot snap = state_.snapshot();
    if (!snap.ready && !snap.replanning) {  // during a graceful re-plan requests wait in the queue
        throw Error(ErrorCode::kUnavailable,
                    "the cluster is not ready: " + snap.status +
                        (snap.reason.empty() ? "" : " (" + snap.reason + ")"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_.load())
        throw Error(ErrorCode::kUnavailable, "the coordinator is shutting down");
    // as many as the free slots take, plus max_queue waiting
    if (queue_.size() + n_active_.load() >= slots_.size() + max_queue_.load()) {
        throw Error(ErrorCode::kResource, "queue full: " + std::to_string(queue_.size()) +
                                              " requests are waiting; try again later");
    }
    const uint64_t id = next_id_.fetch_add(1);
    queue_.push_back({id, std::move(req), clock::now()});
    return id;
}

void CoordinatorScheduler::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopped_.load())
        cancels_.insert(id);
}

size_t CoordinatorScheduler::n_queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

double CoordinatorScheduler::round_trip_ms() const {
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

void CoordinatorScheduler::record_round_trip(clock::time_point sent) {
    const clock::time_point now = clock::now();
    std::lock_guard<std::mutex> lock(rtt_mutex_);
    round_trips_.emplace_back(now, std::chrono::duration<double, std::milli>(now - sent).count());
    while (!round_trips_.empty() && now - round_trips_.front().first > kRoundTripWindow)
        round_trips_.pop_front();
}

void CoordinatorScheduler::run() {
    while (!stop_.load()) {
        try {
            sync_plan();
            drain_tokens();
            check_stall();
            take_cancellations();
            admit();
            wire_activations act;
            if (ready_ && build_ubatch(act)) {
                run_ubatch(act);
                continue;
            }
            zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, std::chrono::milliseconds(kIdlePollMs));
        } catch (const Error &e) {
            COLONY_LOG_ERROR("scheduler: %s", e.what());
        } catch (const zmq::error_t &e) {
            if (e.num() == ETERM)
                return;
            COLONY_LOG_ERROR("scheduler: %s", e.what());
        }
    }
}

void CoordinatorScheduler::sync_plan() {
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
        push_.reset();
        if (snap.plan) {
            try {
                apply_plan(*snap.plan);
            } catch (const Error &e) {
                COLONY_LOG_ERROR("scheduler: cannot set up stage 0 for plan %llu: %s",
                                 static_cast<unsigned long long>(epoch_), e.what());
            }
        }
    }
    ready_ = snap.ready && snap.plan.has_value() && stage_ && state_.local_ready_epoch() == epoch_;
    if (ready_)
        watch_.hint_ms_per_token(snap.plan->ms_per_token_hint);
    last_user_id_ = snap.plan ? snap.plan->last_user_id : std::string();
}

void CoordinatorScheduler::apply_plan(const LocalPlan &plan) {
    watch_ = StallWatch(opts_.stall_timeout_ms);  // another pipeline: learn its speed afresh
    watch_.hint_ms_per_token(plan.ms_per_token_hint);
    if (!stage_ || stage_->range() != plan.range) {
        stage_.reset();
        meter_.loading(plan.range, 0);
        StageConfig cfg;
        cfg.range = plan.range;
        cfg.n_ctx = opts_.n_ctx_seq() * opts_.n_parallel;
        cfg.n_seq_max = opts_.n_parallel;
        cfg.n_ctx_seq = opts_.n_ctx_seq();
        cfg.n_ubatch = opts_.n_ubatch;
        cfg.n_threads = opts_.n_threads;
        cfg.slowdown = opts_.debug_slowdown;  // emulated heterogeneity (docs/cluster.md)
        cfg.load.progress = [this, range = plan.range](uint64_t done, uint64_t total) {
            meter_.loading(range, total ? static_cast<double>(done) / total : 0.0);
        };
        stage_ = std::make_unique<Stage>(model_, hp_, cfg);
        COLONY_LOG_INFO("scheduler: stage 0 runs layers %s", plan.range.str().c_str());
    } else {
        for (uint32_t s = 0; s < opts_.n_parallel; ++s)
            stage_->seq_rm(static_cast<int32_t>(s));
    }
    meter_.loaded(*stage_);
    samplers_.release(-1);
    if (!plan.is_last) {
        push_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::push);
        configure_socket(*push_);
        push_->set(zmq::sockopt::sndtimeo, kSendTimeoutMs);
        if (plan.next_key_z85.empty()) {
            configure_insecure(*push_, "data client (to stage 1)");
        } else {
            configure_curve_client(*push_, plan.next_key_z85, node_keys_);
        }
        push_->connect(plan.next_endpoint);
    }
    state_.set_local_ready(plan.epoch);
}

void CoordinatorScheduler::drain_tokens() {
    for (;;) {
        received_message rm = recv_message(pull_, {}, zmq::recv_flags::dontwait);
        if (rm.status == RECV_STATUS_TIMEOUT)
            return;
        if (rm.status != RECV_STATUS_OK)
            continue;
        const wire_type type = wire_message_type(rm.message);
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
        handle_tokens(std::get<wire_tokens>(rm.message.body));
    }
}

void CoordinatorScheduler::handle_tokens(const wire_tokens &tokens) {
    if (tokens.plan_epoch != epoch_) {
        COLONY_LOG_DEBUG("scheduler: dropped TOKENS of plan %llu",
                         static_cast<unsigned long long>(tokens.plan_epoch));
        return;
    }
    for (const wire_sampled &s : tokens.sampled) {
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
        if (push_)
            record_round_trip(slot->sent_at);
        if (slot->draining) {
            // the last row of a cancelled sequence: its cells were released already
            *slot = Slot{};
            continue;
        }
        on_sampled(s.seq_id, s.token);
    }
}

void CoordinatorScheduler::on_sampled(int32_t seq, int32_t token) {
    Slot &slot = slots_[seq];
    slot.awaiting = false;
    if (slot.n_generated == 0 && slot.ttft_us == 0) {
        slot.ttft_us =
            std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - slot.submitted)
                .count();
    }
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

void CoordinatorScheduler::take_cancellations() {
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

void CoordinatorScheduler::admit() {
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
        n_active_.fetch_add(1);
    }
}

bool CoordinatorScheduler::build_ubatch(wire_activations &act) {
    uint32_t room = opts_.n_ubatch;
    act.plan_epoch = epoch_;
    act.dtype = opts_.wire_type;
    act.n_embd = 0;
    const clock::time_point now = clock::now();
    auto add_token = [&](int32_t seq, int32_t token, int32_t pos) {
        if (act.seqs.empty() || act.seqs.back().seq_id != seq) {
            act.seqs.push_back({seq, 0, slots_[seq].req->sampling});
        }
        ++act.seqs.back().n_tokens;
        act.tokens.push_back(token);
        act.pos.push_back(pos);
        act.seq_id.push_back(seq);
    };
    // Decode steps first: one token per sequence whose last token came back.
    for (size_t s = 0; s < slots_.size() && room > 0; ++s) {
        Slot &slot = slots_[s];
        if (!slot.req || slot.next_input < 0)
            continue;
        act.outputs.push_back(static_cast<uint32_t>(act.tokens.size()));
        add_token(static_cast<int32_t>(s), slot.next_input, slot.n_pos++);
        slot.next_input = -1;
        slot.awaiting = true;
        slot.sent_at = now;
        --room;
    }
    // Then prefill chunks.
    for (size_t s = 0; s < slots_.size() && room > 0; ++s) {
        Slot &slot = slots_[s];
        if (!slot.req || slot.n_prompt_sent >= slot.req->prompt.size())
            continue;
        const std::vector<int32_t> &prompt = slot.req->prompt;
        const size_t k = std::min<size_t>(room, prompt.size() - slot.n_prompt_sent);
        for (size_t i = 0; i < k; ++i) {
            add_token(static_cast<int32_t>(s), prompt[slot.n_prompt_sent + i], slot.n_pos++);
        }
        slot.n_prompt_sent += k;
        room -= static_cast<uint32_t>(k);
        slot.sent_at = now;
        if (slot.n_prompt_sent == prompt.size()) {
            act.outputs.push_back(static_cast<uint32_t>(act.tokens.size() - 1));
            slot.awaiting = true;
        }
    }
    act.n_tokens = static_cast<uint32_t>(act.tokens.size());
    if (act.n_tokens == 0)
        return false;
    const uint64_t id = watch_.sent(act.n_tokens, now);
    for (const wire_seq &q : act.seqs) {
        if (slots_[q.seq_id].awaiting)  // its output row is in this ubatch
            slots_[q.seq_id].ubatch = id;
    }
    return true;
}

void CoordinatorScheduler::run_ubatch(const wire_activations &act) {
    StageOutput out;
    const clock::time_point t0 = clock::now();
    try {
        out = run_stage_step(*stage_, act, opts_.wire_type, samplers_);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("scheduler: stage 0 failed on a ubatch of %u tokens: %s", act.n_tokens,
                         e.what());
        for (const wire_seq &s : act.seqs) {
            if (slots_[s.seq_id].req)
                end(s.seq_id, SeqOutcome::End::kError, &e, true);
        }
        return;
    }
    const clock::time_point t1 = clock::now();
    meter_.record_step(*stage_, std::chrono::duration<double>(t1 - t0).count(),
                       static_cast<uint32_t>(act.outputs.size()));
    // decode times of stage 0 for the measured planner (coordinator_control.cpp)
    const double step_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    state_.record_local_step(step_ms, act.n_tokens);
    if (act.n_tokens >= kHintMinTokens && stage_->range().size() > 0) {
        // stage 0's time per token scaled to every block: a first guess of the
        // pipeline's time per prompt token before any answer came back
        watch_.hint_ms_per_token(step_ms / act.n_tokens * hp_.n_layer / stage_->range().size());
    }
    if (auto *tokens = std::get_if<wire_tokens>(&out)) {
        handle_tokens(*tokens);
        return;
    }
    const bool sent = send(std::move(std::get<wire_activations>(out)));
    meter_.record_hop(std::chrono::duration<double>(clock::now() - t1).count());
    if (!sent) {
        const std::string reason =
            "cannot send hidden states to stage 1 (its data socket does "
            "not take messages)";
        fail_all(Error(ErrorCode::kUnavailable, reason));
        state_.request_replan(epoch_, reason);
        ready_ = false;
    }
}

void CoordinatorScheduler::check_stall() {
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
    const std::string reason = "no answer from the pipeline for " +
                               std::to_string(*watch_.waited_ms(now)) + " ms (allowed " +
                               std::to_string(watch_.allowance_ms()) + " ms for " +
                               std::to_string(watch_.tokens_in_flight()) + " tokens in flight)";
    fail_all(Error(ErrorCode::kUnavailable, reason));
    state_.request_replan(epoch_, reason);
    ready_ = false;
}

void CoordinatorScheduler::end(int32_t seq, SeqOutcome::End how, const Error *error,
                               bool propagate) {
    Slot &slot = slots_[seq];
    const clock::time_point now = clock::now();
    auto us = [](clock::duration d) {
        return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    };
    SeqOutcome outcome;
    outcome.end = how;
    outcome.n_prompt = static_cast<int32_t>(slot.req->prompt.size());
    outcome.n_generated = slot.n_generated;
    outcome.queue_us = us(slot.admitted - slot.submitted);
    outcome.ttft_us = slot.ttft_us;
    outcome.total_us = us(now - slot.submitted);
    if (error) {
        outcome.error_code = error->code();
        outcome.error_message = error->what();
    }
    std::unique_ptr<SeqRequest> req = std::move(slot.req);
    // A row still in flight comes back later: keep the slot (and the row's
    // position, which handle_tokens matches) until then, so its token cannot
    // reach the next request of this slot.
    const bool in_flight = propagate && slot.awaiting && push_;
    Slot drained;
    drained.draining = in_flight;
    drained.awaiting = in_flight;
    drained.sent_at = slot.sent_at;
    drained.n_pos = slot.n_pos;
    slot = in_flight ? std::move(drained) : Slot{};
    n_active_.fetch_sub(1);
    release(seq, propagate);
    if (req->on_done) {
        try {
            req->on_done(outcome);
        } catch (const std::exception &e) {
            COLONY_LOG_ERROR("scheduler: on_done threw: %s", e.what());
        }
    }
}

void CoordinatorScheduler::finish_queued(Queued &q, SeqOutcome::End how, const Error *error) {
    SeqOutcome outcome;
    outcome.end = how;
    outcome.n_prompt = static_cast<int32_t>(q.req->prompt.size());
    outcome.total_us =
        std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - q.submitted).count();
    outcome.queue_us = outcome.total_us;
    if (error) {
        outcome.error_code = error->code();
        outcome.error_message = error->what();
    }
    if (q.req->on_done) {
        try {
            q.req->on_done(outcome);
        } catch (const std::exception &e) {
            COLONY_LOG_ERROR("scheduler: on_done threw: %s", e.what());
        }
    }
}

void CoordinatorScheduler::fail_running(const Error &error) {
    watch_.clear();
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req)
            end(static_cast<int32_t>(s), SeqOutcome::End::kError, &error, false);
        slots_[s] = Slot{};  // also drops draining slots: their rows are of a dead pipeline
    }
}

void CoordinatorScheduler::fail_all(const Error &error) {
    fail_running(error);
    std::deque<Queued> queued;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queued.swap(queue_);
    }
    for (Queued &q : queued)
        finish_queued(q, SeqOutcome::End::kError, &error);
}

void CoordinatorScheduler::release(int32_t seq, bool propagate) {
    if (stage_) {
        stage_->seq_rm(seq);
        meter_.record_kv(*stage_);
    }
    samplers_.release(seq);
    if (propagate && push_)
        send(wire_seq_release{seq, 0});
}

bool CoordinatorScheduler::send(wire_body body) {
    if (!push_)
        return false;
    wire_message msg;
    msg.sequence = link_counter_++;
    msg.body = std::move(body);
    try {
        const std::vector<uint8_t> frame = wire_encode(msg);
        if (push_->send(zmq::buffer(frame), zmq::send_flags::none)) {
            bytes_sent_.fetch_add(frame.size());
            return true;
        }
        COLONY_LOG_WARN("scheduler: sending %s to stage 1 timed out",
                        wire_type_name(wire_message_type(msg)));
    } catch (const Error &e) {
        COLONY_LOG_WARN("scheduler: %s", e.what());
    } catch (const zmq::error_t &e) {
        COLONY_LOG_WARN("scheduler: send: %s", e.what());
    }
    return false;
}

}  // namespace colony
