#include "pipeline/measured_planner.h"

#include <algorithm>
#include <cmath>

#include "cluster/planner.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

constexpr size_t kRttSamples = 16;
constexpr size_t kMinRttSamples = 4;  // a sample or two may be a stalled control thread

}  // namespace

MeasuredPlanner::MeasuredPlanner(ModelShape model, std::string coordinator_id,
                                 MeasuredPlannerConfig config, ReplanPolicy::Clock clock)
    : model_(std::move(model)),
      coordinator_id_(std::move(coordinator_id)),
      config_(config),
      clock_(clock),
      policy_(config.replan, clock) {}

void MeasuredPlanner::set_coordinator(const DeviceProfile &profile, double head_ratio) {
    validate_device_profile(profile);
    coordinator_ = profile;
    coordinator_->node_id = coordinator_id_;
    head_ratio_ = std::isfinite(head_ratio) && head_ratio > 0 ? head_ratio : 0;
}

uint32_t MeasuredPlanner::computed_blocks(uint32_t first, uint32_t last) const {
    uint32_t n = 0;
    for (uint32_t il = first; il < last; ++il)
        n += model_.layer_skipped.empty() || il >= model_.layer_skipped.size() ||
             model_.layer_skipped[il] == 0;
    return std::max<uint32_t>(n, 1);  // a stage of skipped blocks still costs its head or input
}

double MeasuredPlanner::per_layer(double stage_ms, uint32_t blocks, bool is_last) const {
    return stage_ms / (static_cast<double>(blocks) + (is_last ? head_ratio_ : 0.0));
}

DeviceProfile MeasuredPlanner::derived(const DeviceProfile &p, double stage_ms,
                                       double prefill_ms_per_token, uint32_t blocks,
                                       bool is_last) const {
    DeviceProfile d = p;
    d.decode_ms_per_layer = std::max(per_layer(stage_ms, blocks, is_last), 1e-6);
    d.decode_ms_output = head_ratio_ * d.decode_ms_per_layer;
    d.prefill_ms_per_layer_per_token =
        std::max(prefill_ms_per_token / static_cast<double>(blocks), 1e-6);
    return d;
}

bool MeasuredPlanner::on_status(const std::string &id, const WorkerStatus &st,
                                uint64_t running_epoch) {
    if (id == coordinator_id_)
        throw Error(ErrorCode::kProtocol, "a worker reported the coordinator's node id");
    const bool first = workers_.count(id) == 0;
    Worker &w = workers_[id];
    if (st.stage && st.stage->probe_decode_ms > 0) {
        const StageReport &s = *st.stage;
        const double before = w.profile.decode_ms_per_layer;
        w.profile = derived(st.profile, s.probe_decode_ms, s.probe_prefill_ms_per_token,
                            computed_blocks(s.first, s.last), s.is_last);
        // A spare measured again (a probe) and got much faster, e.g. it cooled
        // down: worth a re-plan, like a node that joins.
        if (!first && s.epoch == 0 && before > 0 &&
            w.profile.decode_ms_per_layer < before * (1 - config_.replan.drift_threshold)) {
            COLONY_LOG_INFO("planner: '%s' is faster now: %.3f ms per block, was %.3f", id.c_str(),
                            w.profile.decode_ms_per_layer, before);
            policy_.record_event(NodeEventKind::kJoin, id);
        }
        if (s.recent_samples > 0 && s.recent_decode_ms > 0 && s.epoch != 0 &&
            s.epoch == running_epoch) {
            policy_.record_sample(
                id, per_layer(s.recent_decode_ms, computed_blocks(s.first, s.last), s.is_last));
        }
    } else if (first) {
        w.profile = st.profile;  // not measured on a stage: the worker's own estimate
    }
    w.profile.node_id = id;
    w.slowdown = st.slowdown;
    if (st.shard_throughput_bytes_per_s)
        w.throughput = st.shard_throughput_bytes_per_s;
    const bool low = st.profile.battery && !st.profile.battery->charging &&
                     st.profile.battery->percent < config_.min_battery_percent;
    if (low && !w.battery_low)
        policy_.record_event(NodeEventKind::kBatteryLow, id);
    w.battery_low = low;
    if (first)
        policy_.record_event(NodeEventKind::kJoin, id);
    return first;
}

void MeasuredPlanner::on_coordinator_sample(double stage_ms, uint32_t blocks, bool is_last) {
    if (blocks > 0 && stage_ms > 0)
        policy_.record_sample(coordinator_id_, per_layer(stage_ms, blocks, is_last));
}

void MeasuredPlanner::on_rtt(const std::string &id, double rtt_ms) {
    if (!(rtt_ms >= 0) || !std::isfinite(rtt_ms) || rtt_ms > 100'000)
        return;
    std::deque<double> &q = rtts_[id];
    q.push_back(rtt_ms);
    while (q.size() > kRttSamples)
        q.pop_front();
}

void MeasuredPlanner::on_leave(const std::string &id) {
    workers_.erase(id);
    rtts_.erase(id);
    policy_.record_event(NodeEventKind::kLeave, id);
}

std::optional<DeviceProfile> MeasuredPlanner::profile(const std::string &id) const {
    if (id == coordinator_id_)
        return coordinator_;
    auto it = workers_.find(id);
    if (it == workers_.end())
        return std::nullopt;
    return it->second.profile;
}

std::optional<double> MeasuredPlanner::rtt_ms(const std::string &id) const {
    auto it = rtts_.find(id);
    if (it == rtts_.end() || it->second.size() < kMinRttSamples)
        return std::nullopt;
    // The lower quartile: a heartbeat answered while either control thread
    // was busy (writing a shard, loading a stage) measures that, not the link.
    std::vector<double> v(it->second.begin(), it->second.end());
    std::sort(v.begin(), v.end());
    return v[(v.size() - 1) / 4];
}

std::optional<double> MeasuredPlanner::throughput(const std::string &id) const {
    auto it = workers_.find(id);
    return it == workers_.end() ? std::nullopt : it->second.throughput;
}

std::optional<double> MeasuredPlanner::measured_ms_per_layer(const std::string &id) const {
    return policy_.measured_ms_per_layer(id);
}

double MeasuredPlanner::slowdown(const std::string &id) const {
    auto it = workers_.find(id);
    return it == workers_.end() ? 1.0 : it->second.slowdown;
}

PlannerInput MeasuredPlanner::input(const std::vector<std::string> &workers,
                                    bool use_measured) const {
    if (!coordinator_)
        throw Error(ErrorCode::kInternal, "planner: the coordinator has not been measured yet");
    PlannerInput in;
    in.model = model_;
    in.devices.push_back(*coordinator_);
    if (use_measured) {
        if (auto m = policy_.measured_ms_per_layer(coordinator_id_)) {
            in.devices[0].decode_ms_per_layer = *m;
            in.devices[0].decode_ms_output = head_ratio_ * *m;
        }
    }
    std::vector<std::string> ids;
    for (const std::string &id : workers) {
        auto it = workers_.find(id);
        if (it == workers_.end() || std::find(ids.begin(), ids.end(), id) != ids.end())
            continue;
        DeviceProfile d = it->second.profile;
        if (use_measured) {
            if (auto m = policy_.measured_ms_per_layer(id)) {
                d.decode_ms_per_layer = *m;
                d.decode_ms_output = head_ratio_ * *m;
            }
        }
        in.devices.push_back(d);
        ids.push_back(id);
    }
    const auto rtt = [&](const std::string &id) {
        return rtt_ms(id).value_or(config_.default_rtt_ms);
    };
    const auto thr = [&](const std::string &id) {
        return throughput(id).value_or(config_.default_throughput_bytes_per_s);
    };
    for (size_t a = 0; a < ids.size(); ++a) {
        in.links.push_back({coordinator_id_, ids[a], rtt(ids[a]), thr(ids[a])});
        for (size_t b = a + 1; b < ids.size(); ++b) {
            in.links.push_back({ids[a], ids[b], (rtt(ids[a]) + rtt(ids[b])) / 2,
                                std::min(thr(ids[a]), thr(ids[b]))});
        }
    }
    PlannerOptions &o = in.options;
    o.objective = config_.objective;
    o.coordinator_id = coordinator_id_;
    o.coordinator_must_participate = true;
    o.coordinator_first = true;
    o.min_battery_percent = config_.min_battery_percent;
    o.default_link =
        LinkProfile{"", "", config_.default_rtt_ms, config_.default_throughput_bytes_per_s};
    return in;
}

Plan MeasuredPlanner::optimal(const std::vector<std::string> &workers, bool use_measured,
                              uint64_t epoch) const {
    PlannerInput in = input(workers, use_measured);
    in.options.epoch = epoch;
    return plan_optimal(in);
}

std::optional<Plan> MeasuredPlanner::predict(const Plan &layout,
                                             const std::vector<std::string> &workers,
                                             bool use_measured) const {
    try {
        return predict_plan(input(workers, use_measured), layout);
    } catch (const Error &e) {
        COLONY_LOG_DEBUG("planner: cannot predict plan %llu: %s",
                         static_cast<unsigned long long>(layout.epoch), e.what());
        return std::nullopt;
    }
}

void MeasuredPlanner::reset_policy() {
    policy_ = ReplanPolicy(config_.replan, clock_);
}

bool same_layout(const Plan &a, const Plan &b) {
    if (a.stages.size() != b.stages.size())
        return false;
    for (size_t i = 0; i < a.stages.size(); ++i) {
        if (a.stages[i].node_id != b.stages[i].node_id ||
            !(a.stages[i].layers == b.stages[i].layers))
            return false;
    }
    return true;
}

}  // namespace colony
