#include "runtime/ubatch_builder.h"

#include <algorithm>

namespace colony {

namespace {

void add_row(UbatchPlan &plan, int32_t token, int32_t pos, int32_t seq) {
    plan.tokens.push_back(token);
    plan.pos.push_back(pos);
    plan.seq_id.push_back(seq);
}

void add_output(UbatchPlan &plan, size_t view_index) {
    plan.out_ids.push_back(static_cast<int32_t>(plan.tokens.size() - 1));
    plan.out_seq_index.push_back(view_index);
}

}  // namespace

UbatchPlan build_ubatch(const std::vector<BatchSeqView> &views, uint32_t n_ubatch) {
    UbatchPlan plan;
    plan.n_prompt_taken.assign(views.size(), 0);
    plan.n_draft_taken.assign(views.size(), 0);
    size_t decodes_left = 0;
    for (const BatchSeqView &v : views)
        decodes_left += v.pending_token >= 0;
    for (size_t i = 0; i < views.size() && plan.tokens.size() < n_ubatch; ++i) {
        const BatchSeqView &v = views[i];
        if (v.pending_token < 0)
            continue;
        add_row(plan, v.pending_token, v.next_pos, v.seq);
        add_output(plan, i);
        --decodes_left;
        if (!v.drafts)
            continue;
        // the drafts right behind their decode row (a sequence's rows stay
        // together), leaving room for the other sequences' decode rows
        const size_t room = n_ubatch - plan.tokens.size();
        const size_t take =
            std::min(v.drafts->size(), room > decodes_left ? room - decodes_left : 0);
        for (size_t k = 0; k < take; ++k) {
            add_row(plan, (*v.drafts)[k], v.next_pos + 1 + static_cast<int32_t>(k), v.seq);
            plan.out_ids.push_back(static_cast<int32_t>(plan.tokens.size() - 1));
        }
        plan.n_draft_taken[i] = static_cast<uint32_t>(take);
    }
    for (size_t i = 0; i < views.size() && plan.tokens.size() < n_ubatch; ++i) {
        const BatchSeqView &v = views[i];
        if (v.pending_token >= 0 || !v.prompt || v.n_prompt_done >= v.prompt->size())
            continue;
        const size_t left = v.prompt->size() - v.n_prompt_done;
        const size_t room = n_ubatch - plan.tokens.size();
        const uint32_t take = static_cast<uint32_t>(std::min(left, room));
        for (uint32_t k = 0; k < take; ++k) {
            add_row(plan, (*v.prompt)[v.n_prompt_done + k], v.next_pos + static_cast<int32_t>(k),
                    v.seq);
            if (v.all_outputs && k + 1 < take)
                plan.out_ids.push_back(static_cast<int32_t>(plan.tokens.size() - 1));
        }
        plan.n_prompt_taken[i] = take;
        if (take == left) {
            add_output(plan, i);
        } else if (v.all_outputs) {
            plan.out_ids.push_back(static_cast<int32_t>(plan.tokens.size() - 1));
        }
    }
    return plan;
}

}  // namespace colony
