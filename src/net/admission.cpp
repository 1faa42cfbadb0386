#include "net/admission.h"

#include <algorithm>

#include "util/error.h"
#include "util/log.h"

namespace colony {

AdmissionControl::AdmissionControl(TokenStore &tokens, ZapHandler &zap,
                                   std::string coordinator_public_z85)
    : tokens_(tokens), zap_(zap), coordinator_key_(std::move(coordinator_public_z85)) {
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

void AdmissionControl::admit_member(const std::string &token_id,
                                    const std::string &node_public_z85) {
    (void)curve_key_from_z85(node_public_z85);  // validates
    std::lock_guard<std::mutex> lock(mutex_);
    const std::optional<TokenRecord> r =
        token_id.size() >= 4 ? tokens_.find(token_id) : std::nullopt;
    if (!r || r->id != token_id || r->revoked) {
        throw Error(ErrorCode::kUnauthorized,
                    "token " + token_id + " is unknown or revoked; member not admitted");
    }
    std::erase_if(members_,
                  [&](const AdmissionMember &m) { return m.node_public_z85 == node_public_z85; });
    members_.push_back({node_public_z85, token_id});
    zap_.allow(kZapDomainData, node_public_z85);
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
