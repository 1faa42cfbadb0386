// Measurements for the measured planner (measured_planner.h): the
// coordinator measures itself at start; a worker reports a device profile in
// STATUS after it loaded its stage, or a one-block probe shard when it is a
// spare (spares measure themselves again now and then); heartbeat round
// trips measure the links; stage 0's decode times are drift samples.
#include <algorithm>

#include "model/gguf_file.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/coordinator_probe.h"
#include "pipeline/measured_planner.h"
#include "pipeline/node_status.h"
#include "pipeline/shard_service.h"
#include "pipeline/worker_status.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kSpareReprobeMs = 60000;  // a spare measures itself again this often
constexpr int kLocalSampleMs = 2000;    // stage 0's decode times, as a worker's STATUS interval
constexpr int kLinkWaitMs = 10000;      // a profile this old plans without a measured link

}  // namespace

void CoordinatorControl::measure_self() {
    try {
        std::optional<uint64_t> limit;
        if (opts_.mem_limit_gib > 0)
            limit = static_cast<uint64_t>(opts_.mem_limit_gib * (1ull << 30));
        const CoordinatorMeasurement m =
            measure_coordinator(file_, model_.hp, opts_.n_threads, limit, coordinator_id_,
                                coordinator_name_, opts_.debug_slowdown, opts_.cpu, opts_.gpu);
        planner_->set_coordinator(m.profile, m.head_ratio);
        view_dirty_ = true;
    } catch (const Error &e) {
        COLONY_LOG_ERROR("control: cannot measure the coordinator (%s); plans stay static",
                         e.what());
        record_replan("start", std::string("measured planner off: ") + e.what(), false,
                      std::nullopt, std::nullopt, 0);
        planner_.reset();
    }
}

void CoordinatorControl::on_status(Member &m, const WireStatus &status) {
    std::optional<WorkerStatus> ws;
    try {
        ws = worker_status_parse(status.json);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: dropped a STATUS of node %u: %s", m.node_id, e.what());
        return;
    }
    if (!ws)
        return;  // another kind of status
    if (ws->stage && ws->stage->epoch != 0 && ws->stage->epoch == plan_epoch_) {
        // the larger of a prompt token and a decode step through the stage
        m.stage_ms_per_token =
            std::max(ws->stage->probe_prefill_ms_per_token, ws->stage->probe_decode_ms);
        m.stage_report_epoch = ws->stage->epoch;
    }
    if (!planner_)
        return;
    ws->profile.node_id = m.fingerprint;  // the key it authenticated with, not what it says
    ws->profile.name = m.join.node_name;
    bool first = false;
    try {
        first = planner_->on_status(m.fingerprint, *ws, plan_ready_ ? plan_epoch_ : 0);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: dropped a STATUS of node %u: %s", m.node_id, e.what());
        return;
    }
    if (ws->stage && ws->stage->epoch == 0 && m.probing) {
        m.probing = false;
        m.probed_at = clock::now();
    }
    if (first) {
        m.profiled_at = clock::now();
        const DeviceProfile p = *planner_->profile(m.fingerprint);
        COLONY_LOG_INFO(
            "control: profile of '%s': %.3f ms per block at decode, head %.3f ms, "
            "%.1f MiB available, %d threads, slow-down %.2f",
            m.join.node_name.c_str(), p.decode_ms_per_layer, p.decode_ms_output,
            p.mem_available_bytes / 1048576.0, p.n_threads, ws->slowdown);
    }
    view_dirty_ = true;
}

void CoordinatorControl::collect_rtts() {
    for (const NodeReport &r : state_.node_reports().all()) {
        if (!r.rtt_ms)  // lost members have no report (NodeReports::on_lost)
            continue;
        for (Member &m : members_) {
            if (m.node_id == r.node_id && m.rtt_received_us != r.received_us) {
                m.rtt_received_us = r.received_us;
                planner_->on_rtt(m.fingerprint, *r.rtt_ms);
            }
        }
    }
}

void CoordinatorControl::collect_local_samples() {
    if (ms_since(last_local_sample_) < kLocalSampleMs)
        return;
    last_local_sample_ = clock::now();
    std::vector<double> ms = state_.take_local_decode_samples();
    if (ms.empty() || plan_.empty() || !plan_ready_)
        return;  // samples of a plan being replaced say nothing about the next one
    std::sort(ms.begin(), ms.end());
    const double median =
        ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
    planner_->on_coordinator_sample(
        median, plan_[0].range.size() - opts_.skip_layers.count_in(plan_[0].range),
        plan_.size() == 1);
}

void CoordinatorControl::send_probes() {
    if (!planner_->has_coordinator())
        return;
    // The blocks the coordinator measured itself on (coordinator_probe.h):
    // beyond the CPU caches, ending before the head.
    const LayerRange range = probe_range(*file_, model_.hp);
    // Spares are measured again now and then (a throttled device may have
    // cooled down), while a plan runs undisturbed.
    const bool quiet = !plan_.empty() && plan_ready_ && !pending_;
    for (Member &m : members_) {
        if (m.stage >= 0 || m.probing || m.standby)
            continue;  // a standby spare keeps its range loaded (no re-probe)
        const bool again = quiet && planner_->has_profile(m.fingerprint) &&
                           ms_since(std::max(m.probed_at, m.profiled_at)) >= kSpareReprobeMs;
        if (planner_->has_profile(m.fingerprint) && !again)
            continue;
        try {
            shards_.prepare(range, [this] { keepalive(); });
        } catch (const Error &e) {
            COLONY_LOG_ERROR("control: cannot write the probe shard: %s", e.what());
            return;
        }
        m.probing = true;
        m.shard_sent = 0;
        m.shard_total = 0;
        COLONY_LOG_INFO("control: '%s' measures itself on the probe shard of layers %s",
                        m.join.node_name.c_str(), range.str().c_str());
        send_or_lose(m, probe_assign(layout_config_, range), "the probe ASSIGN");
        view_dirty_ = true;
    }
}

std::vector<std::string> CoordinatorControl::member_ids(bool with_profile_only) const {
    std::vector<std::string> ids;
    for (const Member &m : members_) {
        if (!with_profile_only || (planner_ && planner_->has_profile(m.fingerprint)))
            ids.push_back(m.fingerprint);
    }
    return ids;
}

bool CoordinatorControl::links_measured() const {
    return std::all_of(members_.begin(), members_.end(), [&](const Member &m) {
        return planner_->rtt_ms(m.fingerprint).has_value() ||
               ms_since(m.profiled_at) >= kLinkWaitMs;
    });
}

bool CoordinatorControl::all_profiled() const {
    return planner_ && std::all_of(members_.begin(), members_.end(), [&](const Member &m) {
               return planner_->has_profile(m.fingerprint);
           });
}

}  // namespace colony
