// BatchScheduler's data path (batch_scheduler.h): admitting requests, the
// TOKENS that come back, building each ubatch and running it through stage 0.
#include <algorithm>

#include "net/transport.h"
#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "runtime/stage.h"
#include "runtime/ubatch_builder.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/trace.h"

namespace colony {

namespace {

constexpr uint32_t kHintMinTokens = 16;  // smaller ubatches (decode) are dominated by fixed costs

}  // namespace

void BatchScheduler::drain_tokens() {
    if (!pull_)
        return;
    for (;;) {
        const int64_t t_recv = trace_enabled() ? trace_now_us() : 0;
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
        const WireTokens &tokens = std::get<WireTokens>(rm.message.body);
        if (admit_tokens(rm, tokens))
            handle_tokens(tokens);
    }
}

bool BatchScheduler::admit_tokens(const ReceivedMessage &rm, const WireTokens &tokens) {
    const WireMessage &msg = rm.message;
    FenceReason verdict = fence_.admit(rm.user_id, msg.session, msg.sequence, tokens.plan_epoch,
                                       epoch_, EpochRule::kEqual);
    if (verdict == FenceReason::kAccepted && msg.request_id != 0) {
        // The request id of the ubatch (request_of): it must still run, or
        // be the cancelled one whose last row is awaited (a draining slot).
        bool known = false;
        for (const Slot &slot : slots_)
            known = known || slot.id == msg.request_id;
        auto draining = [&](int32_t seq) {
            return seq >= 0 && static_cast<size_t>(seq) < slots_.size() && slots_[seq].draining;
        };
        for (const WireSampled &s : tokens.sampled)
            known = known || draining(s.seq_id);
        for (const WireEmbedding &e : tokens.embeddings)
            known = known || draining(e.seq_id);
        if (!known) {
            verdict = FenceReason::kUnknownRequest;
            fence_.count(verdict);
        }
    }
    if (verdict == FenceReason::kAccepted)
        return true;
    if (verdict == FenceReason::kStaleEpoch) {  // in flight when the plan changed: normal
        COLONY_LOG_DEBUG("scheduler: dropped TOKENS of plan %llu (stale_epoch)",
                         static_cast<unsigned long long>(tokens.plan_epoch));
    } else {
        COLONY_LOG_WARN(
            "scheduler: dropped TOKENS of plan %llu (%s, session %08x, sequence %u, request %llu)",
            static_cast<unsigned long long>(tokens.plan_epoch), fence_reason_name(verdict),
            msg.session, msg.sequence, static_cast<unsigned long long>(msg.request_id));
    }
    return false;
}

void BatchScheduler::handle_tokens(const WireTokens &tokens) {
    if (tokens.plan_epoch != epoch_) {
        COLONY_LOG_DEBUG("scheduler: dropped TOKENS of plan %llu",
                         static_cast<unsigned long long>(tokens.plan_epoch));
        return;
    }
    for (const WireEmbedding &e : tokens.embeddings)
        on_embedding(e);
    const std::vector<WireSampled> &all = tokens.sampled;
    for (size_t i = 0; i < all.size();) {
        size_t j = i + 1;  // the last stage sends a sequence's tokens together
        while (j < all.size() && all[j].seq_id == all[i].seq_id)
            ++j;
        on_sampled_group(all.data() + i, j - i);
        i = j;
    }
}

void BatchScheduler::on_sampled_group(const WireSampled *group, size_t n) {
    const WireSampled &first = group[0];
    const bool in_range = first.seq_id >= 0 && static_cast<size_t>(first.seq_id) < slots_.size();
    Slot *slot = in_range ? &slots_[first.seq_id] : nullptr;
    bool expected = slot && (slot->req || slot->draining) && slot->awaiting &&
                    first.pos == slot->out_pos && n <= slot->drafts.size() + 1;
    // a verification: the accepted drafts, each at the next position, then the next token
    for (size_t i = 0; expected && i < n; ++i) {
        expected = group[i].pos == first.pos + static_cast<int32_t>(i) && group[i].token >= 0 &&
                   static_cast<uint32_t>(group[i].token) < hp_.n_vocab &&
                   (i + 1 == n || group[i].token == slot->drafts[i]);
    }
    if (!expected) {
        COLONY_LOG_WARN(
            "scheduler: dropped %zu sampled token(s) (seq %d, pos %d, token %d) that "
            "no running sequence expects",
            n, first.seq_id, first.pos, first.token);
        return;
    }
    const clock::time_point now = clock::now();
    watch_.answered(slot->ubatch, now);
    const double round_trip_ms = us_between(slot->sent_at, now) / 1000.0;
    if (host_.has_link()) {
        record_round_trip(slot->sent_at);
        if (trace_enabled()) {
            const int64_t waited = us_between(slot->sent_at, now);
            trace_event_on("pipeline", "wait", "pipeline", trace_now_us() - waited, waited,
                           "{\"request\":" + std::to_string(slot->id) +
                               ",\"pos\":" + std::to_string(first.pos) + "}");
        }
    }
    if (slot->draining) {
        // the last rows of a cancelled sequence: its cells were released already
        *slot = Slot{};
        return;
    }
    const auto accepted = static_cast<int32_t>(n) - 1;
    if (draft_ && slot->out_decodes) {  // a prompt's end says nothing of a decode's cost
        const auto drafted = static_cast<int32_t>(slot->drafts.size());
        slot->draft_length.record(drafted, accepted, round_trip_ms, slot->draft_ms);
        if (drafted > 0) {
            ++slot->spec.n_verifications;
            slot->spec.n_drafted += drafted;
            slot->spec.n_accepted += accepted;
            spec_verifications_.fetch_add(1);
            spec_drafted_.fetch_add(drafted);
            spec_accepted_.fetch_add(accepted);
        }
    }
    // the decode row and the accepted drafts are in every stage's KV cache;
    // the rejected ones are forgotten when the next ubatch starts here
    slot->n_pos = slot->out_pos + 1 + accepted;
    slot->drafts.clear();
    slot->draft_ms = 0;
    for (size_t i = 0; i < n; ++i) {
        if (!on_sampled(first.seq_id, group[i], i + 1 == n))
            return;
    }
}

void BatchScheduler::on_embedding(const WireEmbedding &e) {
    const bool in_range = e.seq_id >= 0 && static_cast<size_t>(e.seq_id) < slots_.size();
    Slot *slot = in_range ? &slots_[e.seq_id] : nullptr;
    if (!slot || !slot->req || !slot->req->embeds() || !slot->awaiting ||
        e.pos != slot->n_pos - 1 || e.values.size() != hp_.n_embd) {
        COLONY_LOG_WARN(
            "scheduler: dropped an embedding (seq %d, pos %d) that no running "
            "embedding request expects",
            e.seq_id, e.pos);
        return;
    }
    watch_.answered(slot->ubatch, clock::now());
    slot->awaiting = false;
    if (slot->ttft_us == 0)
        slot->ttft_us = us_between(slot->submitted, clock::now());
    if (slot->req->on_embedding) {
        try {
            slot->req->on_embedding(e.values);
        } catch (const std::exception &ex) {
            COLONY_LOG_ERROR("scheduler: on_embedding threw: %s", ex.what());
        }
    }
    end(e.seq_id, SeqOutcome::End::kStop, nullptr, true);
}

bool BatchScheduler::on_sampled(int32_t seq, const WireSampled &sampled, bool last) {
    const int32_t token = sampled.token;
    Slot &slot = slots_[seq];
    const clock::time_point now = clock::now();
    slot.awaiting = false;
    if (slot.generated.empty() && slot.ttft_us == 0)
        slot.ttft_us = us_between(slot.submitted, now);
    if (slot.replaying) {
        // the first token after a replay: the stream's pause
        const clock::time_point since = slot.generated.empty() ? slot.admitted : slot.last_token_at;
        state_.note_stall(us_between(since, now) / 1000);
        slot.replaying = false;
    }
    slot.last_token_at = now;
    SeqRequest &req = *slot.req;
    if (!req.ignore_eos && req.is_eog && req.is_eog(token)) {
        end(seq, SeqOutcome::End::kStop, nullptr, true);
        return false;
    }
    slot.generated.push_back(token);
    if (req.on_token) {
        try {
            SampledToken t;
            t.token = token;
            t.has_logprob = sampled.has_logprob;
            t.logprob = sampled.logprob;
            for (const WireTokenProb &p : sampled.top)
                t.top.push_back({p.token, p.logprob});
            req.on_token(t);
        } catch (const std::exception &e) {
            COLONY_LOG_ERROR("scheduler: on_token threw: %s", e.what());
        }
    }
    if (slot.generated.size() >= static_cast<size_t>(req.max_tokens) ||
        (last && static_cast<uint32_t>(slot.n_pos) >= opts_.n_ctx_seq())) {
        end(seq, SeqOutcome::End::kLength, nullptr, true);
        return false;
    }
    if (last)
        slot.next_input = token;
    return true;
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
        slot.draft_length = DraftLength(opts_.spec);
        slot.id = q.id;
        slot.req = std::move(q.req);
        slot.submitted = q.submitted;
        slot.admitted = clock::now();
        const WireSampling &sp = slot.req->sampling;
        slot.share_pending = slot.req->share_prompt_of != 0 && slot.req->prompt.size() >= 2 &&
                             !slot.req->embeds() && sp.penalty_repeat == 1.0f &&
                             sp.penalty_freq == 0.0f && sp.penalty_present == 0.0f;
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

void BatchScheduler::resolve_shares() {
    for (size_t s : admission_order_) {
        Slot &f = slots_[s];
        f.wait_share = false;
        if (f.copy_from >= 0 && slots_[f.copy_from].id != f.copy_leader) {
            // the leader ended before this slot's first row left: prefill alone
            prompt_tokens_shared_.fetch_sub(f.n_prompt_sent);
            f.copy_from = -1;
            f.n_prompt_sent = 0;
            f.n_pos = 0;
        }
        if (!f.share_pending)
            continue;
        const Slot *leader = nullptr;
        size_t li = 0;
        for (size_t k = 0; k < slots_.size() && !leader; ++k) {
            if (slots_[k].req && slots_[k].id == f.req->share_prompt_of) {
                leader = &slots_[k];
                li = k;
            }
        }
        if (!leader || leader->replaying || !leader->replay.empty() ||
            leader->req->prompt != f.req->prompt) {
            f.share_pending = false;  // prefilled alone
            continue;
        }
        if (leader->n_prompt_sent < leader->req->prompt.size()) {
            f.wait_share = true;  // its last prompt chunk must be in an earlier ubatch
            continue;
        }
        // every stage gets the leader's rows before this ubatch: copy
        // [0, n-1) and prefill only the last prompt token (its own logits)
        const auto n = static_cast<int32_t>(f.req->prompt.size()) - 1;
        f.share_pending = false;
        f.copy_from = static_cast<int32_t>(li);
        f.copy_leader = leader->id;
        f.n_prompt_sent = static_cast<uint32_t>(n);
        f.n_pos = n;
        prompt_tokens_shared_.fetch_add(static_cast<uint64_t>(n));
    }
}

bool BatchScheduler::build_ubatch(WireActivations &act) {
    const int64_t t_build = trace_enabled() ? trace_now_us() : 0;
    resolve_shares();
    slide_windows();
    make_drafts();
    // The rows: ubatch_builder.h (decode rows first, then prompt chunks in
    // admission order).
    std::vector<BatchSeqView> views;
    views.reserve(admission_order_.size());
    for (size_t s : admission_order_) {
        const Slot &slot = slots_[s];
        const uint32_t sent = slot.wait_share ? static_cast<uint32_t>(prefill_of(slot).size())
                                              : slot.n_prompt_sent;  // waiting: nothing to send
        BatchSeqView v{static_cast<int32_t>(s), &prefill_of(slot), sent, slot.n_pos,
                       slot.next_input};
        v.drafts = &slot.drafts;
        v.all_outputs = slot.req && slot.req->embeds();
        views.push_back(v);
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
        if (act.seqs.empty() || act.seqs.back().seq_id != seq) {
            const SeqRequest &req = *slots_[seq].req;
            act.seqs.push_back(wire_seq(seq, 0, req.sampling));
            // a sampler made now (a replay on a new last stage) skips the draws made before;
            // a sequence whose KV window slid is never replayed (its sampler lives on the
            // last stage until it ends), and its draws may outnumber the positions that
            // wire_check_activations allows: 0
            const Slot &drawn = slots_[seq];
            act.seqs.back().sampling.n_drawn =
                drawn.n_shifts > 0 ? 0u : static_cast<uint32_t>(drawn.generated.size());
            Slot &slot = slots_[seq];
            if ((req.has_options && plan.pos[r] == 0) || slot.copy_from >= 0) {
                // where the last stage makes its sampler
                WireSeq &q = act.seqs.back();
                q.has_options = true;
                q.options = req.options;
                if (!req.has_options)
                    q.options.n_prompt = static_cast<int32_t>(req.prompt.size());
                if (slot.copy_from >= 0) {
                    q.options.copy_from = slot.copy_from;
                    q.options.copy_len = plan.pos[r];
                    slot.copy_from = -1;
                }
            }
        }
        ++act.seqs.back().n_tokens;
    }
    for (size_t i = 0; i < views.size(); ++i) {
        if (plan.n_draft_taken[i] == 0)
            continue;
        for (WireSeq &q : act.seqs) {
            if (q.seq_id == views[i].seq)
                q.n_draft = plan.n_draft_taken[i];
        }
    }

    const clock::time_point now = clock::now();
    const uint64_t ubatch_id = watch_.sent(act.n_tokens, now);
    bool has_decode = false, has_prompt = false;
    for (size_t i = 0; i < views.size(); ++i) {
        Slot &slot = slots_[views[i].seq];
        const bool decode = views[i].pending_token >= 0;
        if (decode) {
            slot.next_input = -1;
            slot.drafts.resize(plan.n_draft_taken[i]);  // those that did not fit are dropped
            slot.n_pos += 1 + static_cast<int32_t>(plan.n_draft_taken[i]);
        } else if (!slot.awaiting) {
            // an awaiting sequence's drafts are being verified: kept until its TOKENS
            slot.drafts.clear();
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
        slot.out_pos = slot.n_pos - 1 - static_cast<int32_t>(slot.drafts.size());
        slot.out_decodes = views[view_index].pending_token >= 0;
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

}  // namespace colony
