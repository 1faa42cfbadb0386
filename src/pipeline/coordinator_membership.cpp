// Membership: who is in the cluster. JOIN admits a worker (its token, its
// key, its data endpoint); heartbeats go out every heartbeat_interval_ms and
// a member silent for heartbeat_timeout_ms is lost, as is one whose ASSIGN
// cannot be delivered (or whose token or node key is revoked:
// coordinator_pairing.cpp). Losing a member of the plan
// invalidates the plan; the lost node stays listed in the view.
#include <algorithm>

#include "net/admission.h"
#include "net/hash.h"
#include "net/peer_arch.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_control.h"
#include "pipeline/endpoint.h"
#include "pipeline/measured_planner.h"
#include "pipeline/node_status.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

void CoordinatorControl::on_join(const ReceivedMessage &rm, const WireJoin &join) {
    const std::string key_z85 = curve_key_to_z85(join.node_key);
    const std::optional<std::string> data_endpoint = join_endpoint(rm, join, key_z85);
    if (!data_endpoint)
        return;
    if (Member *same = find_member(rm.routing_id); same && same->key_z85 == key_z85) {
        // the same connection repeated its JOIN (our answer crossed its retry)
        if (!send_to(*same, WireJoinAccept{same->node_id,
                                           static_cast<uint32_t>(opts_.heartbeat_interval_ms)})) {
            COLONY_LOG_WARN("control: node %u is answered when it repeats its JOIN again",
                            same->node_id);
        }
        return;
    }
    // A node that joins again (restarted, or re-connected) replaces its old self.
    for (size_t i = members_.size(); i-- > 0;) {
        if (members_[i].key_z85 == key_z85 || members_[i].routing_id == rm.routing_id) {
            lose_member(i, "worker " + members_[i].join.node_name + " joined again");
        }
    }
    std::string code;
    if (admission_) {
        try {
            const JoinVerdict v = admission_->admit_join(rm.user_id, key_z85, join.node_name);
            code = v.code;
            if (!v.admitted) {
                hold_join(rm, join, key_z85, v.code);
                return;
            }
        } catch (const Error &e) {
            refuse_join(rm, join, e.code(), e.what());
            return;
        }
    }
    std::erase_if(pending_joins_, [&](const PendingJoin &p) { return p.key_z85 == key_z85; });
    add_member(rm, join, key_z85, *data_endpoint, code);
}

std::optional<std::string> CoordinatorControl::join_endpoint(const ReceivedMessage &rm,
                                                             const WireJoin &join,
                                                             const std::string &key_z85) {
    if (const std::optional<std::string> why = peer_arch_refusal(join.arch)) {
        refuse_join(rm, join, ErrorCode::kUnsupported, *why);
        return std::nullopt;
    }
    std::string data_endpoint;
    try {
        data_endpoint = resolve_endpoint(join.data_endpoint, rm.peer_address);
        (void)parse_tcp_endpoint(data_endpoint);
    } catch (const Error &e) {
        refuse_join(rm, join, ErrorCode::kInvalidArgument,
                    std::string("bad data endpoint: ") + e.what());
        return std::nullopt;
    }
    if (key_fingerprint(key_z85) == coordinator_id_) {
        refuse_join(rm, join, ErrorCode::kInvalidArgument,
                    "the worker uses the coordinator's own node key");
        return std::nullopt;
    }
    return data_endpoint;
}

void CoordinatorControl::refuse_join(const ReceivedMessage &rm, const WireJoin &join,
                                     ErrorCode code, const std::string &reason) {
    COLONY_LOG_WARN("control: refused JOIN of '%s' from %s: %s", join.node_name.c_str(),
                    rm.peer_address.c_str(), reason.c_str());
    send_unsolicited(rm.routing_id, WireJoinReject{code, reason});
}

void CoordinatorControl::add_member(const ReceivedMessage &rm, const WireJoin &join,
                                    const std::string &key_z85, const std::string &data_endpoint,
                                    const std::string &pairing_code) {
    Member m;
    m.routing_id = rm.routing_id;
    m.node_id = next_node_id_++;
    m.token_id = rm.user_id;
    m.key_z85 = key_z85;
    m.fingerprint = key_fingerprint(key_z85);
    m.pairing_code = pairing_code;
    m.peer_address = rm.peer_address;
    m.data_endpoint = data_endpoint;
    m.join = join;
    for (const WireCachedShard &s : join.cached_shards) {
        if (s.model_hash == model_.hash && s.layer_last <= model_.hp.n_layer)
            m.cached.push_back({s.layer_first, s.layer_last});
    }
    m.last_seen = clock::now();
    m.joined_unix_ms = unix_ms();
    members_.push_back(m);
    // A node that comes back is no longer listed as lost.
    lost_.erase(std::remove_if(lost_.begin(), lost_.end(),
                               [&](const NodeView &n) { return n.id == m.fingerprint; }),
                lost_.end());
    COLONY_LOG_INFO(
        "control: worker '%s' joined as node %u from %s (key %s, pairing code %s, %u threads, "
        "data %s)",
        join.node_name.c_str(), m.node_id, rm.peer_address.c_str(), m.fingerprint.c_str(),
        pairing_code.empty() ? "-" : pairing_code.c_str(), join.n_threads, data_endpoint.c_str());
    if (!send_to(members_.back(),
                 WireJoinAccept{m.node_id, static_cast<uint32_t>(opts_.heartbeat_interval_ms)})) {
        // It is a member all the same: the worker repeats its JOIN until it
        // hears back, and the repeat is answered above.
        COLONY_LOG_WARN("control: node %u is answered when it repeats its JOIN", m.node_id);
    }
    view_dirty_ = true;
    if (plan_.empty() && members_.size() >= opts_.workers_expected) {
        make_plan("worker '" + join.node_name + "' joined");
    } else {
        if (plan_.empty())
            state_.invalidate("degraded", waiting_reason());
        publish_detail();
    }
}

bool CoordinatorControl::send_heartbeats() {
    if (ms_since(last_heartbeat_) < opts_.heartbeat_interval_ms)
        return false;
    last_heartbeat_ = clock::now();
    const uint64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(last_heartbeat_.time_since_epoch())
            .count();
    heartbeat_all(ns);
    return true;
}

void CoordinatorControl::heartbeat_all(uint64_t sent_ns) {
    size_t unsent = 0;
    ++heartbeats_;
    for (const Member &m : members_) {
        if (!send_to(m, WireHeartbeat{sent_ns, heartbeats_}))
            ++unsent;
    }
    // Each failure is logged by send_to. Whether a member is lost is decided
    // by its own silence (drop_silent), not by our sends: a member whose
    // connection is gone stops answering.
    if (unsent > 0) {
        COLONY_LOG_DEBUG("control: %zu heartbeat(s) not sent; silent members are lost after %d ms",
                         unsent, opts_.heartbeat_timeout_ms);
    }
}

void CoordinatorControl::keepalive() {
    // Writing and hashing shards of a big model takes a while: keep heartbeats going.
    if (ms_since(last_heartbeat_) < opts_.heartbeat_interval_ms)
        return;
    last_heartbeat_ = clock::now();
    heartbeat_all(0);
}

void CoordinatorControl::drop_silent() {
    for (size_t i = members_.size(); i-- > 0;) {
        const int64_t silent = ms_since(members_[i].last_seen);
        // The budget adapts to the link: 4 measured round trips on top.
        int64_t budget = opts_.heartbeat_timeout_ms;
        if (planner_) {
            if (const std::optional<double> rtt = planner_->rtt_ms(members_[i].fingerprint))
                budget += static_cast<int64_t>(4 * *rtt);
        }
        if (silent > budget) {
            lose_member(i, "worker '" + members_[i].join.node_name + "' (node " +
                               std::to_string(members_[i].node_id) + ") sent no heartbeat for " +
                               std::to_string(silent) + " ms");
        }
    }
}

void CoordinatorControl::drop_unreachable() {
    for (size_t i = members_.size(); i-- > 0;) {
        if (!members_[i].unreachable.empty()) {
            lose_member(i, "worker '" + members_[i].join.node_name + "' (node " +
                               std::to_string(members_[i].node_id) +
                               ") is unreachable: " + members_[i].unreachable);
        }
    }
}

void CoordinatorControl::lose_member(size_t index, const std::string &reason) {
    Member m = members_[index];
    COLONY_LOG_WARN("control: %s", reason.c_str());
    state_.node_reports().on_lost(m.node_id);
    NodeView lost;
    lost.id = m.fingerprint;
    lost.name = m.join.node_name;
    lost.role = "worker";
    lost.state = "lost";
    lost.address = m.peer_address;
    lost.detail = reason;
    lost.since_unix_ms = unix_ms();
    if (planner_) {
        lost.profile = planner_->profile(m.fingerprint);
        lost.rtt_ms = planner_->rtt_ms(m.fingerprint);
        planner_->on_leave(m.fingerprint);
    }
    lost_.erase(std::remove_if(lost_.begin(), lost_.end(),
                               [&](const NodeView &n) { return n.id == lost.id; }),
                lost_.end());
    lost_.push_back(std::move(lost));
    while (lost_.size() > kMaxLostNodes)
        lost_.pop_front();
    view_dirty_ = true;
    std::vector<std::string> plan_workers = plan_worker_ids();  // before the erase
    members_.erase(members_.begin() + static_cast<std::ptrdiff_t>(index));
    if (admission_)
        admission_->remove_member(m.key_z85);
    for (PlannedStage &s : plan_) {
        if (s.member > static_cast<int>(index))
            --s.member;
    }
    if (m.stage >= 0) {
        // A stage of the plan: the scheduler replays its requests on the
        // next plan (batch_scheduler_recovery.cpp); this opens the record.
        recovering_from_ = std::move(plan_workers);
        recovering_lost_ = m.fingerprint;
        // detect_ms: how long the fault took to show: the silence for
        // heartbeats, the link's down time (plus the report's way) for a link
        const int64_t detect_ms =
            m.unreachable_after_ms >= 0 ? m.unreachable_after_ms : ms_since(m.last_seen);
        if (opts_.recovery)  // without it the scheduler fails what ran: nothing to record
            state_.open_recovery(plan_epoch_, m.join.node_name, reason, detect_ms);
        invalidate_plan(reason);
    } else {
        publish_detail();
    }
}

CoordinatorControl::Member *CoordinatorControl::find_member(const std::string &routing_id) {
    for (Member &m : members_) {
        if (m.routing_id == routing_id)
            return &m;
    }
    return nullptr;
}

bool CoordinatorControl::Member::holds(LayerRange r) const {
    return std::find(cached.begin(), cached.end(), r) != cached.end();
}

std::string CoordinatorControl::waiting_reason() const {
    return "waiting for " + std::to_string(opts_.workers_expected) + " worker(s), " +
           std::to_string(members_.size()) + " joined";
}

std::vector<LayoutMember> CoordinatorControl::layout_members() const {
    std::vector<LayoutMember> out;
    out.reserve(members_.size());
    for (const Member &m : members_) {
        LayoutMember l;
        l.fingerprint = m.fingerprint;
        l.name = m.join.node_name;
        l.data_endpoint = m.data_endpoint;
        l.key_z85 = m.key_z85;
        l.n_threads = m.join.n_threads;
        l.mem_limit_bytes = m.join.mem_limit_bytes;
        l.cached = m.cached;
        out.push_back(std::move(l));
    }
    return out;
}

}  // namespace colony
