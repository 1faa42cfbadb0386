#include "net/admission.h"

#include <algorithm>

#include "net/pairing_code.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

AdmissionControl::AdmissionControl(TokenStore &tokens, ZapHandler &zap,
                                   std::string coordinator_public_z85, NodeStore *nodes,
                                   bool confirm_pairing)
    : tokens_(tokens),
      zap_(zap),
      coordinator_key_(std::move(coordinator_public_z85)),
      nodes_(nodes),
      confirm_pairing_(confirm_pairing && nodes != nullptr) {
    zap_.allow(kZapDomainData, coordinator_key_);
    std::lock_guard<std::mutex> lock(mutex_);
    apply_tokens();
}

std::vector<std::string> AdmissionControl::apply_tokens() {
    const std::vector<std::string> active = tokens_.active_join_keys();
    for (const std::string &key : control_keys_) {
        if (std::find(active.begin(), active.end(), key) == active.end()) {
            zap_.remove(kZapDomainControl, key);
        }
    }
    for (const std::string &key : active) {
        zap_.allow(kZapDomainControl, key);
    }
    control_keys_ = active;

    std::vector<std::string> removed;
    auto revoked = [&](const AdmissionMember &m) {
        const std::optional<TokenRecord> r = tokens_.find(m.token_id);
        return !r || r->revoked;
    };
    for (const AdmissionMember &m : members_) {
        if (revoked(m)) {
            zap_.remove(kZapDomainData, m.node_public_z85);
            removed.push_back(m.node_public_z85);
            COLONY_LOG_INFO("admission: removed member %s (token %s revoked)",
                            key_fingerprint(m.node_public_z85).c_str(), m.token_id.c_str());
        }
    }
    std::erase_if(members_, revoked);
    return removed;
}

TokenRecord AdmissionControl::create_token() {
    std::lock_guard<std::mutex> lock(mutex_);
    TokenRecord r = tokens_.create();
    apply_tokens();
    return r;
}

void AdmissionControl::check_token_locked(const std::string &token_id) const {
    const std::optional<TokenRecord> r =
        token_id.size() >= 4 ? tokens_.find(token_id) : std::nullopt;
    if (!r || r->id != token_id || r->revoked) {
        throw Error(ErrorCode::kUnauthorized,
                    "token " + token_id + " is unknown or revoked; member not admitted");
    }
}

void AdmissionControl::add_member_locked(const std::string &token_id,
                                         const std::string &node_public_z85) {
    std::erase_if(members_,
                  [&](const AdmissionMember &m) { return m.node_public_z85 == node_public_z85; });
    members_.push_back({node_public_z85, token_id});
    zap_.allow(kZapDomainData, node_public_z85);
}

void AdmissionControl::admit_member(const std::string &token_id,
                                    const std::string &node_public_z85) {
    (void)curve_key_from_z85(node_public_z85);  // validates
    std::lock_guard<std::mutex> lock(mutex_);
    check_token_locked(token_id);
    add_member_locked(token_id, node_public_z85);
}

JoinVerdict AdmissionControl::admit_join(const std::string &token_id,
                                         const std::string &node_public_z85,
                                         const std::string &node_name) {
    (void)curve_key_from_z85(node_public_z85);  // validates
    std::lock_guard<std::mutex> lock(mutex_);
    check_token_locked(token_id);
    JoinVerdict v;
    if (nodes_) {
        v.code = pairing_code(coordinator_key_, node_public_z85);
        (void)nodes_->reload_if_changed();
        std::optional<NodeRecord> r = nodes_->find_key(node_public_z85);
        if (!r) {
            r = nodes_->record(node_public_z85, token_id, v.code, node_name,
                               confirm_pairing_ ? NodeState::kPending : NodeState::kApproved);
            v.first_join = true;
            COLONY_LOG_INFO("admission: node %s ('%s', token %s, pairing code %s) %s",
                            r->id.c_str(), r->name.c_str(), token_id.c_str(), v.code.c_str(),
                            r->state == NodeState::kPending ? "waits for `colony node approve`"
                                                            : "pinned on first use");
        }
        if (r->state == NodeState::kRevoked) {
            throw Error(ErrorCode::kUnauthorized,
                        "node key " + r->id + " is revoked on this coordinator");
        }
        if (r->state == NodeState::kPending)
            return v;
    }
    add_member_locked(token_id, node_public_z85);
    v.admitted = true;
    return v;
}

void AdmissionControl::remove_member(const std::string &node_public_z85) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t n = std::erase_if(
        members_, [&](const AdmissionMember &m) { return m.node_public_z85 == node_public_z85; });
    if (n != 0 && node_public_z85 != coordinator_key_) {
        zap_.remove(kZapDomainData, node_public_z85);
    }
}

std::vector<std::string> AdmissionControl::revoke_token(std::string_view id_prefix) {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_.revoke(id_prefix);
    return apply_tokens();
}

std::vector<std::string> AdmissionControl::reload() {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_.reload();
    return apply_tokens();
}

std::vector<AdmissionRemoval> AdmissionControl::reload_changes() {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_.reload();
    std::vector<AdmissionRemoval> out;
    for (std::string &key : apply_tokens())
        out.push_back({std::move(key), "token revoked"});
    if (nodes_) {
        (void)nodes_->reload_if_changed();
        auto revoked = [&](const AdmissionMember &m) {
            const std::optional<NodeRecord> r = nodes_->find_key(m.node_public_z85);
            return r && r->state == NodeState::kRevoked;
        };
        for (const AdmissionMember &m : members_) {
            if (revoked(m)) {
                zap_.remove(kZapDomainData, m.node_public_z85);
                out.push_back({m.node_public_z85, "node key revoked"});
                COLONY_LOG_INFO("admission: removed member %s (node key revoked)",
                                key_fingerprint(m.node_public_z85).c_str());
            }
        }
        std::erase_if(members_, revoked);
    }
    return out;
}

std::optional<NodeRecord> AdmissionControl::node(const std::string &node_public_z85) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return nodes_ ? nodes_->find_key(node_public_z85) : std::nullopt;
}

std::optional<std::string> AdmissionControl::member_token(
    const std::string &node_public_z85) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const AdmissionMember &m : members_) {
        if (m.node_public_z85 == node_public_z85) {
            return m.token_id;
        }
    }
    return std::nullopt;
}

bool AdmissionControl::token_active(const std::string &token_id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (token_id.size() < 4) {
        return false;
    }
    const std::optional<TokenRecord> r = tokens_.find(token_id);
    return r && r->id == token_id && !r->revoked;
}

std::vector<AdmissionMember> AdmissionControl::members() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return members_;
}

std::vector<TokenRecord> AdmissionControl::tokens() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return tokens_.list();
}

}  // namespace colony
