// BatchScheduler's recovery (batch_scheduler.h, DESIGN.md decision 10): the
// running requests of a pipeline that broke are replayed from their token
// history on the next plan, so a lost stage costs a pause, not a request.
#include <algorithm>

#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

// A request replayed this often without finishing fails: a fault the
// re-plans do not get around (a link that stays cut between the only
// nodes that can serve) must end in an error, not a loop.
constexpr int kMaxReplays = 4;

}  // namespace

const std::vector<int32_t> &BatchScheduler::prefill_of(const Slot &slot) {
    return slot.replay.empty() ? slot.req->prompt : slot.replay;
}

void BatchScheduler::replay_running(const std::string &reason) {
    watch_.clear();
    if (!recovering_since_) {
        recovering_since_ = clock::now();
        recovery_reason_ = reason;
        replayed_requests_ = 0;
        replayed_tokens_ = 0;
    }
    recovering_.store(true);
    for (size_t s = 0; s < slots_.size(); ++s) {
        Slot &slot = slots_[s];
        if (!slot.req) {
            slot = Slot{};  // a draining slot's row belonged to the broken pipeline
            continue;
        }
        // A loss while the slot still waits for its replay (nothing sent
        // since: plans that came and went before one served) is not another.
        const bool waiting = slot.replaying && slot.n_pos == 0;
        if (!waiting && ++slot.n_replays > kMaxReplays) {
            const Error gave_up(ErrorCode::kUnavailable,
                                "the pipeline broke " + std::to_string(kMaxReplays + 1) +
                                    " times while this request ran; the last time: " + reason);
            end(static_cast<int32_t>(s), SeqOutcome::End::kError, &gave_up, false);
            continue;
        }
        if (slot.n_shifts > 0) {
            // Its cache slid over the window: a prefill of the history would
            // not rebuild the cells the shifts left (docs/edge.md).
            const Error slid(ErrorCode::kUnavailable,
                             "the pipeline broke after this request's KV window slid (" + reason +
                                 "); a replay cannot rebuild a slid window");
            end(static_cast<int32_t>(s), SeqOutcome::End::kError, &slid, false);
            continue;
        }
        // The history: the prompt, then every token delivered. The last of
        // them (the next decode input, or one whose row was in flight) is
        // the last position of the replay, so its output is the next token.
        slot.replay.clear();  // no token yet: the prompt itself
        if (!slot.generated.empty()) {
            slot.replay = slot.req->prompt;
            slot.replay.insert(slot.replay.end(), slot.generated.begin(), slot.generated.end());
        }
        if (!slot.replaying)  // a second loss during a replay counts once
            ++replayed_requests_;
        replayed_tokens_ +=
            static_cast<uint64_t>(slot.n_pos) - slot.drafts.size();  // not the drafts
        slot.replaying = true;
        slot.share_pending = false;  // a replay prefills its own history
        slot.copy_from = -1;
        slot.n_prompt_sent = 0;
        slot.n_pos = 0;
        slot.drafts.clear();  // of the broken pipeline
        slot.out_pos = -1;
        slot.next_input = -1;
        slot.awaiting = false;
        slot.ubatch = 0;
        COLONY_LOG_INFO("scheduler: request %llu (sequence %zu) will be replayed: %zu tokens",
                        static_cast<unsigned long long>(slot.id), s, prefill_of(slot).size());
    }
}

void BatchScheduler::check_recovery() {
    if (!recovering_since_)
        return;
    if (ready_) {
        COLONY_LOG_INFO(
            "scheduler: recovered after %lld ms: %u request(s) replayed (%llu "
            "positions recomputed)",
            static_cast<long long>(ms_since(*recovering_since_)), replayed_requests_,
            static_cast<unsigned long long>(replayed_tokens_));
        state_.note_resumed(replayed_requests_, replayed_tokens_);
        recovering_since_.reset();
        recovering_.store(false);
        return;
    }
    const int64_t waited = ms_since(*recovering_since_);
    if (waited < opts_.recovery_timeout_ms)
        return;
    const Error gave_up(ErrorCode::kUnavailable, "the pipeline broke (" + recovery_reason_ +
                                                     ") and no new plan served within " +
                                                     std::to_string(opts_.recovery_timeout_ms) +
                                                     " ms");
    COLONY_LOG_ERROR("scheduler: %s", gave_up.what());
    state_.note_recovery_failed();
    recovering_since_.reset();
    recovering_.store(false);
    fail_all(gave_up);
}

}  // namespace colony
