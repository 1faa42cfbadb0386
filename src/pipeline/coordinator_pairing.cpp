// Pairing and revocation (net/node_store.h, net/pairing_code.h; the
// admission design is in net/tokens.h). With --confirm-pairing a JOIN from a
// node key the nodes file does not approve is held here: the worker is told
// it waits (ERROR unauthorized, "pairing pending"), keeps repeating its JOIN,
// and is admitted once a person runs `colony node approve`. Revocation: the
// tokens and nodes files are re-read on every heartbeat interval (at most
// 1 s), and a member whose token or node key was revoked gets JOIN_REJECT and
// is lost at once, so its stage is re-planned and the data plane stops
// taking its messages (the survivors' new ASSIGNs name other peers).
#include <sys/stat.h>

#include <algorithm>
#include <ctime>

#include "net/admission.h"
#include "net/node_store.h"
#include "net/transport.h"
#include "pipeline/coordinator_control.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kReloadMaxMs = 1000;
constexpr int kReloadMinMs = 50;
constexpr int kPendingForgetMs = 30000;  // a pending worker repeats its JOIN every 2 s

/// Milliseconds since `file` was last modified (-1 when it cannot be read).
int64_t file_age_ms(const std::filesystem::path &file) {
    struct stat st {};
    timespec now{};
    if (::stat(file.c_str(), &st) != 0 || ::clock_gettime(CLOCK_REALTIME, &now) != 0)
        return -1;
    return (int64_t(now.tv_sec) - st.st_mtim.tv_sec) * 1000 +
           (int64_t(now.tv_nsec) - st.st_mtim.tv_nsec) / 1000000;
}

std::string pending_detail(const std::string &code) {
    return "waits for a person to confirm pairing code " + code + ": colony node approve " + code;
}

}  // namespace

void CoordinatorControl::hold_join(const ReceivedMessage &rm, const WireJoin &join,
                                   const std::string &key_z85, const std::string &code) {
    auto it = std::find_if(pending_joins_.begin(), pending_joins_.end(),
                           [&](const PendingJoin &p) { return p.key_z85 == key_z85; });
    if (it == pending_joins_.end()) {
        if (pending_joins_.size() >= kMaxPendingNodes)
            pending_joins_.erase(pending_joins_.begin());
        PendingJoin p;
        p.key_z85 = key_z85;
        p.code = code;
        p.since_unix_ms = unix_ms();
        pending_joins_.push_back(std::move(p));
        it = std::prev(pending_joins_.end());
        COLONY_LOG_WARN(
            "control: worker '%s' from %s (key %s) asks to join with pairing code %s; if the "
            "worker shows the same code, run: colony node approve %s",
            join.node_name.c_str(), rm.peer_address.c_str(), key_fingerprint(key_z85).c_str(),
            code.c_str(), code.c_str());
        view_dirty_ = true;
    }
    it->routing_id = rm.routing_id;
    it->user_id = rm.user_id;
    it->peer_address = rm.peer_address;
    it->join = join;
    it->last_seen = clock::now();
    send_unsolicited(rm.routing_id, WireError{ErrorCode::kUnauthorized,
                                              "pairing pending: " + pending_detail(code)});
}

void CoordinatorControl::reload_admission() {
    const int interval = std::clamp(opts_.heartbeat_interval_ms, kReloadMinMs, kReloadMaxMs);
    if (ms_since(last_token_reload_) < interval)
        return;
    last_token_reload_ = clock::now();
    std::vector<AdmissionRemoval> removed;
    try {
        removed = admission_->reload_changes();
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: cannot reload the tokens or nodes file: %s", e.what());
        return;
    }
    for (const AdmissionRemoval &r : removed) {
        const bool by_token = r.reason == "token revoked";
        const int64_t age_ms = file_age_ms(opts_.config_dir / (by_token ? "tokens" : "nodes"));
        for (size_t i = members_.size(); i-- > 0;) {
            if (members_[i].key_z85 != r.node_public_z85)
                continue;
            const Member &m = members_[i];
            // The control connection itself stays up until the worker closes
            // it (ZeroMQ cannot close one peer of a ROUTER), but nothing it
            // sends is served any more: it is no member, and a JOIN is refused.
            COLONY_LOG_WARN(
                "control: worker '%s' (node %u, key %s): %s; dropped %lld ms after the %s file "
                "changed",
                m.join.node_name.c_str(), m.node_id, m.fingerprint.c_str(), r.reason.c_str(),
                static_cast<long long>(age_ms), by_token ? "tokens" : "nodes");
            send_unsolicited(m.routing_id,
                             WireJoinReject{ErrorCode::kUnauthorized,
                                            r.reason + ": this worker may not join again"});
            const std::string name = m.join.node_name;
            lose_member(i, "worker '" + name + "' was revoked (" + r.reason + ")");
        }
    }
    retry_pending_joins();
}

void CoordinatorControl::retry_pending_joins() {
    for (size_t i = pending_joins_.size(); i-- > 0;) {
        if (ms_since(pending_joins_[i].last_seen) > kPendingForgetMs) {
            COLONY_LOG_INFO("control: forgot the pending join of '%s' (silent for %d s)",
                            pending_joins_[i].join.node_name.c_str(), kPendingForgetMs / 1000);
            pending_joins_.erase(pending_joins_.begin() + static_cast<std::ptrdiff_t>(i));
            view_dirty_ = true;
            continue;
        }
        const std::optional<NodeRecord> r = admission_->node(pending_joins_[i].key_z85);
        if (r && r->state == NodeState::kPending)
            continue;
        const PendingJoin p = pending_joins_[i];
        pending_joins_.erase(pending_joins_.begin() + static_cast<std::ptrdiff_t>(i));
        view_dirty_ = true;
        COLONY_LOG_INFO("control: pairing of '%s' (code %s) %s", p.join.node_name.c_str(),
                        p.code.c_str(), r ? node_state_name(r->state) : "forgotten");
        ReceivedMessage rm;
        rm.status = RECV_STATUS_OK;
        rm.routing_id = p.routing_id;
        rm.user_id = p.user_id;
        rm.peer_address = p.peer_address;
        on_join(rm, p.join);  // admitted, refused (revoked), or pending again (forgotten)
    }
}

std::vector<NodeView> CoordinatorControl::pending_views() const {
    std::vector<NodeView> out;
    for (const PendingJoin &p : pending_joins_) {
        NodeView n;
        n.id = key_fingerprint(p.key_z85);
        n.name = p.join.node_name;
        n.role = "worker";
        n.state = "pending";
        n.address = p.peer_address;
        n.detail = pending_detail(p.code);
        n.pairing_code = p.code;
        n.since_unix_ms = p.since_unix_ms;
        out.push_back(std::move(n));
    }
    return out;
}

}  // namespace colony
