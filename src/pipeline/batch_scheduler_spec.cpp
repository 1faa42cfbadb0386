// BatchScheduler's speculative decoding (batch_scheduler.h,
// runtime/speculative.h). The coordinator drafts for every sequence about to
// decode; the drafts ride behind the decode row in the same ubatch
// (WireSeq::n_draft), every stage computes them, and the last stage samples
// the rows in order and stops after the first token that differs from the
// next draft (stage_step.cpp). TOKENS then carry the accepted drafts and the
// next token (on_sampled_group); the rejected drafts' positions are forgotten
// by every stage when the sequence's next ubatch starts where they began.
#include <algorithm>

#include "pipeline/batch_scheduler.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

void BatchScheduler::make_drafts() {
    if (!draft_)
        return;
    const auto n_ctx_seq = static_cast<int64_t>(opts_.n_ctx_seq());
    std::vector<int32_t> history;
    for (size_t s : admission_order_) {
        Slot &slot = slots_[s];
        if (!slot.req || slot.next_input < 0 || slot.awaiting || slot.req->embeds())
            continue;
        // the drafts take positions n_pos + 1 ..: inside the sequence's
        // context, before the window would shift (plain decoding shifts at
        // the same place then), within max_tokens and the ubatch
        int64_t cap = std::min<int64_t>(n_ctx_seq - slot.n_pos - 1, opts_.n_ubatch - 1);
        if (opts_.kv_window.enabled())
            cap = std::min<int64_t>(cap, int64_t{opts_.kv_window.window} - slot.n_pos - 2);
        cap = std::min<int64_t>(
            cap, int64_t{slot.req->max_tokens} - static_cast<int64_t>(slot.generated.size()) - 1);
        const int32_t k = slot.draft_length.next(static_cast<int32_t>(std::max<int64_t>(cap, 0)));
        slot.drafts.clear();
        slot.draft_ms = 0;
        if (k <= 0)
            continue;
        history = slot.req->prompt;
        history.insert(history.end(), slot.generated.begin(), slot.generated.end());
        const int64_t t0 = now_us();
        try {
            slot.drafts = draft_->draft(static_cast<int32_t>(s), history, k);
        } catch (const Error &e) {
            // a draft is only a guess: decode plainly
            COLONY_LOG_WARN("scheduler: drafting for request %llu failed: %s",
                            static_cast<unsigned long long>(slot.id), e.what());
            slot.drafts.clear();
        }
        slot.draft_ms = (now_us() - t0) / 1000.0;
        if (slot.drafts.size() > static_cast<size_t>(k))
            slot.drafts.resize(static_cast<size_t>(k));
        if (slot.drafts.size() < static_cast<size_t>(opts_.spec.draft_min))
            slot.drafts.clear();
    }
}

}  // namespace colony
