#include "pipeline/coordinator_scheduler.h"

#include <algorithm>

#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/stage_step.h"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kIdlePollMs = 5;
constexpr int kSendTimeoutMs = 2000;

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
      slots_(opts.n_parallel) {}

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
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req)
            fail(static_cast<int32_t>(s), gone, false);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_.store(true);  // under the lock: no submit() queues after this
    for (auto &req : queue_)
        req->done.set_exception(std::make_exception_ptr(gone));
    queue_.clear();
}

std::future<SeqOutcome> CoordinatorScheduler::submit(std::unique_ptr<SeqRequest> req) {
    if (stopped_.load())
        throw Error(ErrorCode::kUnavailable, "the coordinator is shutting down");
    const ClusterState::Snapshot snap = state_.snapshot();
    if (!snap.ready) {
        throw Error(ErrorCode::kUnavailable,
                    "the cluster is not ready: " + snap.status +
                        (snap.reason.empty() ? "" : " (" + snap.reason + ")"));
    }
    std::future<SeqOutcome> f = req->done.get_future();
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_.load())
        throw Error(ErrorCode::kUnavailable, "the coordinator is shutting down");
    queue_.push_back(std::move(req));
    return f;
}

size_t CoordinatorScheduler::n_queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

void CoordinatorScheduler::run() {
    while (!stop_.load()) {
        try {
            sync_plan();
            drain_tokens();
            check_stall();
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
        fail_all(Error(ErrorCode::kUnavailable,
                       "the pipeline changed: " +
                           (snap.reason.empty() ? std::string("re-planned") : snap.reason)));
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
    last_user_id_ = snap.plan ? snap.plan->last_user_id : std::string();
}

void CoordinatorScheduler::apply_plan(const LocalPlan &plan) {
    if (!stage_ || stage_->range() != plan.range) {
        stage_.reset();
        StageConfig cfg;
        cfg.range = plan.range;
        cfg.n_ctx = opts_.n_ctx_seq() * opts_.n_parallel;
        cfg.n_seq_max = opts_.n_parallel;
        cfg.n_ctx_seq = opts_.n_ctx_seq();
        cfg.n_ubatch = opts_.n_ubatch;
        cfg.n_threads = opts_.n_threads;
        stage_ = std::make_unique<Stage>(model_, hp_, cfg);
        COLONY_LOG_INFO("scheduler: stage 0 runs layers %s", plan.range.str().c_str());
    } else {
        for (uint32_t s = 0; s < opts_.n_parallel; ++s)
            stage_->seq_rm(static_cast<int32_t>(s));
    }
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
        const bool known = s.seq_id >= 0 && static_cast<size_t>(s.seq_id) < slots_.size() &&
                           slots_[s.seq_id].req && slots_[s.seq_id].awaiting &&
                           s.pos == slots_[s.seq_id].n_pos - 1 && s.token >= 0 &&
                           static_cast<uint32_t>(s.token) < hp_.n_vocab;
        if (!known) {
            COLONY_LOG_WARN(
                "scheduler: dropped a sampled token (seq %d, pos %d, token %d) that "
                "no running sequence expects",
                s.seq_id, s.pos, s.token);
            continue;
        }
        on_sampled(s.seq_id, s.token);
    }
}

void CoordinatorScheduler::on_sampled(int32_t seq, int32_t token) {
    Slot &slot = slots_[seq];
    slot.awaiting = false;
    if (++slot.n_generated == 1) {
        slot.ttft_us =
            std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - slot.submitted)
                .count();
    }
    SeqRequest &req = *slot.req;
    if (!req.ignore_eos && req.is_eog && req.is_eog(token)) {
        finish(seq, "stop");
    } else if (req.on_token && !req.on_token(token)) {
        finish(seq, "stop");
    } else if (slot.n_generated >= req.max_tokens ||
               static_cast<uint32_t>(slot.n_pos) >= opts_.n_ctx_seq()) {
        finish(seq, "length");
    } else {
        slot.next_input = token;
    }
}

void CoordinatorScheduler::admit() {
    if (!ready_)
        return;
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) {
        if (slots_[s].req)
            continue;
        Slot &slot = slots_[s];
        slot = Slot{};
        slot.req = std::move(queue_.front());
        queue_.pop_front();
        slot.submitted = clock::now();
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
    return act.n_tokens > 0;
}

void CoordinatorScheduler::run_ubatch(const wire_activations &act) {
    StageOutput out;
    try {
        out = run_stage_step(*stage_, act, opts_.wire_type, samplers_);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("scheduler: stage 0 failed on a ubatch of %u tokens: %s", act.n_tokens,
                         e.what());
        for (const wire_seq &s : act.seqs) {
            if (slots_[s.seq_id].req)
                fail(s.seq_id, e, true);
        }
        return;
    }
    if (auto *tokens = std::get_if<wire_tokens>(&out)) {
        handle_tokens(*tokens);
        return;
    }
    if (!send(std::move(std::get<wire_activations>(out)))) {
        const std::string reason =
            "cannot send hidden states to stage 1 (its data socket does "
            "not take messages)";
        fail_all(Error(ErrorCode::kUnavailable, reason));
        state_.request_replan(epoch_, reason);
        ready_ = false;
    }
}

void CoordinatorScheduler::check_stall() {
    for (const Slot &slot : slots_) {
        if (!slot.req || !slot.awaiting)
            continue;
        const int64_t waited = ms_since(slot.sent_at);
        if (waited <= opts_.stall_timeout_ms)
            continue;
        const std::string reason =
            "no answer from the pipeline for " + std::to_string(waited) + " ms";
        fail_all(Error(ErrorCode::kUnavailable, reason));
        state_.request_replan(epoch_, reason);
        ready_ = false;
        return;
    }
}

void CoordinatorScheduler::finish(int32_t seq, const std::string &reason) {
    Slot &slot = slots_[seq];
    SeqOutcome outcome;
    outcome.finish_reason = reason;
    outcome.n_generated = slot.n_generated;
    outcome.ttft_us = slot.ttft_us;
    std::unique_ptr<SeqRequest> req = std::move(slot.req);
    slot = Slot{};
    n_active_.fetch_sub(1);
    release(seq, true);
    req->done.set_value(outcome);
}

void CoordinatorScheduler::fail(int32_t seq, const Error &error, bool propagate) {
    Slot &slot = slots_[seq];
    std::unique_ptr<SeqRequest> req = std::move(slot.req);
    slot = Slot{};
    n_active_.fetch_sub(1);
    release(seq, propagate);
    req->done.set_exception(std::make_exception_ptr(error));
}

void CoordinatorScheduler::fail_all(const Error &error) {
    for (size_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].req)
            fail(static_cast<int32_t>(s), error, false);
    }
    std::deque<std::unique_ptr<SeqRequest>> queued;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queued.swap(queue_);
    }
    for (auto &req : queued)
        req->done.set_exception(std::make_exception_ptr(error));
}

void CoordinatorScheduler::release(int32_t seq, bool propagate) {
    if (stage_)
        stage_->seq_rm(seq);
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
