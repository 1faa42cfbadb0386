// The cluster view (cluster_view.h: nodes, the running plan with its
// predictions, re-plan decisions) and the /health detail JSON, published to
// ClusterState for the HTTP layer. Rebuilt on every heartbeat round and
// whenever something it shows changed (view_dirty_).
#include <nlohmann/json.hpp>

#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/measured_planner.h"
#include "pipeline/shard_service.h"

namespace colony {

namespace {

LayerRange plan_range(LayerRange r) {
    return LayerRange{static_cast<int>(r.first), static_cast<int>(r.last)};
}

/// Why the running plan left node `id` out ("" when it did not).
std::string left_out_reason(const Plan &running, const std::string &id) {
    for (const PlanExclusion &e : running.left_out) {
        if (e.node_id == id)
            return e.reason;
    }
    return "";
}

}  // namespace

NodeView CoordinatorControl::coordinator_view() const {
    NodeView c;
    c.id = coordinator_id_;
    c.name = coordinator_name_;
    c.role = "coordinator";
    c.since_unix_ms = started_unix_ms_;
    if (!plan_.empty()) {
        c.stage = 0;
        c.layers = plan_range(plan_[0].range);
        c.state = state_.local_ready_epoch() == plan_epoch_ ? "ready" : "loading";
        c.load_progress = c.state == "ready" ? 1 : 0;
    } else {
        c.state = "spare";
        c.detail = "waiting for a plan";
    }
    if (planner_) {
        c.profile = planner_->profile(coordinator_id_);
        c.measured_decode_ms_per_layer = planner_->measured_ms_per_layer(coordinator_id_);
        c.slowdown = opts_.debug_slowdown;
    }
    return c;
}

NodeView CoordinatorControl::member_view(const Member &m, const Plan &running) const {
    NodeView n;
    n.id = m.fingerprint;
    n.name = m.join.node_name;
    n.role = "worker";
    n.address = m.peer_address;
    n.since_unix_ms = m.joined_unix_ms;
    n.pairing_code = m.pairing_code;
    const double shard_progress =
        m.shard_total ? static_cast<double>(m.shard_sent) / m.shard_total : 0.0;
    if (m.stage >= 0) {
        n.stage = m.stage;
        n.layers = plan_range(plan_[m.stage].range);
        const bool ready = m.ready_epoch == plan_epoch_;
        n.state = ready ? "ready" : "loading";
        n.load_progress = ready ? 1.0 : shard_progress;
    } else if (m.probing) {
        n.state = "probing";
        n.load_progress = shard_progress;
    } else {
        n.state = "spare";
        n.detail = left_out_reason(running, m.fingerprint);
        if (m.standby) {  // a hot spare (coordinator_standby.cpp)
            n.layers = plan_range(*m.standby);
            n.detail =
                (m.holds(*m.standby) ? "hot spare: holds layers " : "hot spare: loading layers ") +
                m.standby->str() + (n.detail.empty() ? "" : "; " + n.detail);
        }
    }
    if (planner_) {
        n.profile = planner_->profile(m.fingerprint);
        n.rtt_ms = planner_->rtt_ms(m.fingerprint);
        n.throughput_bytes_per_s = planner_->throughput(m.fingerprint);
        n.measured_decode_ms_per_layer = planner_->measured_ms_per_layer(m.fingerprint);
        n.slowdown = planner_->slowdown(m.fingerprint);
    }
    return n;
}

void CoordinatorControl::publish_view() {
    ClusterView v;
    v.planner = planner_ ? "measured" : "static";
    v.objective = opts_.throughput_objective ? "throughput" : "latency";
    const Plan running = running_plan();
    v.nodes.push_back(coordinator_view());
    for (const Member &m : members_)
        v.nodes.push_back(member_view(m, running));
    for (NodeView &n : pending_views())
        v.nodes.push_back(std::move(n));
    for (const NodeView &n : lost_)
        v.nodes.push_back(n);
    if (!plan_.empty())
        v.plan = running;
    v.replans.assign(replans_.begin(), replans_.end());
    state_.set_view(std::move(v));
}

void CoordinatorControl::publish_detail() {
    view_dirty_ = false;
    publish_view();
    nlohmann::json stages = nlohmann::json::array();
    for (const PlannedStage &stage : plan_) {
        nlohmann::json s;
        s["layers"] = {stage.range.first, stage.range.last};
        if (stage.member < 0) {
            s["node"] = "coordinator";
            s["ready"] = state_.local_ready_epoch() == plan_epoch_;
        } else {
            const Member &m = members_[stage.member];
            s["node"] = m.join.node_name;
            s["node_id"] = m.node_id;
            s["endpoint"] = m.data_endpoint;
            s["ready"] = m.ready_epoch == plan_epoch_;
        }
        stages.push_back(s);
    }
    nlohmann::json workers = nlohmann::json::array();
    for (const Member &m : members_) {
        workers.push_back({{"name", m.join.node_name},
                           {"node_id", m.node_id},
                           {"key", m.fingerprint},
                           {"pairing_code", m.pairing_code},
                           {"address", m.peer_address},
                           {"data_endpoint", m.data_endpoint},
                           {"threads", m.join.n_threads},
                           {"stage", m.stage}});
    }
    nlohmann::json detail = {{"plan_epoch", plan_epoch_},
                             {"workers_expected", opts_.workers_expected},
                             {"workers", workers},
                             {"stages", stages},
                             {"shard_bytes_served", shards_.bytes_served()},
                             {"cluster", cluster_view_to_json(state_.cluster_view())}};
    state_.set_detail(detail.dump());
}

}  // namespace colony
