// Hot spares (DESIGN.md, decision 10; docs/reliability.md): with the static
// planner (--planner static, or --split), once a plan serves, every worker
// outside it gets a *standby* ASSIGN: the layer range of a worker
// stage, largest first, in the form that stage has. It fetches the shard,
// loads it and reports READY like a stage, but nothing connects to it. When
// the stage it stands by for is lost, the layout gives the range to the
// node that holds it (coordinator_layout.h: cached ranges), and the spare
// serves it after a KV-cache reset instead of a download and a load.
#include <algorithm>

#include "pipeline/coordinator_control.h"
#include "pipeline/coordinator_layout.h"
#include "pipeline/measured_planner.h"
#include "pipeline/shard_service.h"
#include "util/log.h"

namespace colony {

void CoordinatorControl::send_standby() {
    // Not with the measured planner: its spares are probed and re-probed, and
    // a loaded standby stage would feed its profiles and its choice of ranges
    // (cached ranges win within cached_range_slack); a lost stage there is
    // re-planned onto a spare or the survivors, which fetch their shards.
    if (!opts_.hot_spares || planner_ || plan_.size() < 2 || !plan_ready_ || pending_)
        return;
    // worker stages, the largest range first (the costliest to load again)
    std::vector<size_t> order;
    for (size_t i = 1; i < plan_.size(); ++i)
        order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return plan_[a].range.size() > plan_[b].range.size();
    });
    std::vector<size_t> covered(plan_.size(), 0);  // standbys per stage
    for (const Member &m : members_) {
        for (size_t i : order) {
            if (m.stage < 0 && m.standby && *m.standby == plan_[i].range)
                ++covered[i];
        }
    }
    for (size_t idx = 0; idx < members_.size(); ++idx) {
        Member &m = members_[idx];
        if (m.stage >= 0 || m.probing || m.standby || !m.unreachable.empty())
            continue;
        // the least covered stage, the largest first among equals
        const size_t k = *std::min_element(order.begin(), order.end(), [&](size_t a, size_t b) {
            return covered[a] < covered[b];
        });
        std::vector<PlannedStage> alt = plan_;
        alt[k].member = static_cast<int>(idx);
        std::optional<WireAssign> assign;
        for (StageAssign &a : stage_assigns(layout_config_, layout_members(), alt, plan_epoch_)) {
            if (a.member == static_cast<int>(idx))
                assign = std::move(a.assign);
        }
        if (!assign)
            continue;
        try {
            if (!m.holds(plan_[k].range))
                shards_.prepare(plan_[k].range, [this] { keepalive(); });
        } catch (const Error &e) {
            COLONY_LOG_ERROR("control: cannot write the shard of layers %s for a standby: %s",
                             plan_[k].range.str().c_str(), e.what());
            return;
        }
        m.standby = plan_[k].range;
        ++covered[k];
        COLONY_LOG_INFO("control: '%s' stands by with layers %s (a hot spare for stage %zu)",
                        m.join.node_name.c_str(), plan_[k].range.str().c_str(), k);
        send_or_lose(m, std::move(*assign), "the standby ASSIGN of layers " + plan_[k].range.str());
        view_dirty_ = true;
    }
}

bool CoordinatorControl::on_standby_ready(Member &m, const WireReady &ready) {
    const LayerRange range{ready.layer_first, ready.layer_last};
    if (m.stage >= 0 || !m.standby || *m.standby != range || ready.plan_epoch != plan_epoch_)
        return false;
    if (!m.holds(range))
        m.cached.push_back(range);
    COLONY_LOG_INFO("control: '%s' holds layers %s loaded (hot spare)", m.join.node_name.c_str(),
                    range.str().c_str());
    view_dirty_ = true;
    return true;
}

}  // namespace colony
