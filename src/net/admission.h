// The coordinator's admission state (the design is in tokens.h): which join
// keys may open the control socket, which node keys may use the data plane,
// and which token admitted each member. It keeps the ZAP allow-lists in step
// with the tokens file and, when it has one, the nodes file (node_store.h):
// pinned, pending and revoked node keys. Members live in memory only: a
// restarted coordinator admits workers again when they re-join with their
// token, without asking again for keys the nodes file has approved.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/node_store.h"
#include "net/tokens.h"
#include "net/zap.h"

namespace colony {

struct AdmissionMember {
    std::string node_public_z85;
    std::string token_id;  // the token that admitted it
};

/// What admit_join decided for a JOIN whose token is active.
struct JoinVerdict {
    bool admitted = false;    // false: pending, it waits for `colony node approve`
    bool first_join = false;  // the nodes file learned the key just now
    std::string code;         // the pairing code (pairing_code.h); "" without a nodes file
};

/// A member that reload_changes() removed, and why ("token revoked", "node key
/// revoked"): the caller drops its open connections.
struct AdmissionRemoval {
    std::string node_public_z85;
    std::string reason;
};

/// Thread-safe (one mutex guards the token store, the members and the updates
/// to zap). tokens and zap must outlive it; use the token store only through
/// this object while it exists.
class AdmissionControl {
  public:
    /// Puts the active tokens' join keys on zap's control list and
    /// coordinator_public_z85 on the data list.
    /// nodes (may be null: no pinning, every key of a token holder is
    /// admitted) must outlive it too. confirm_pairing: a key the nodes file
    /// does not hold waits as pending for a person's approval.
    AdmissionControl(TokenStore &tokens, ZapHandler &zap, std::string coordinator_public_z85,
                     NodeStore *nodes = nullptr, bool confirm_pairing = false);

    /// Creates a token (persisted) and admits its join key at once.
    TokenRecord create_token();

    /// Records a member admitted by token_id (the User-Id of its JOIN message)
    /// and admits its node key on the data plane. Re-joining with the same key
    /// updates the token. Throws Error(kUnauthorized) when token_id is unknown
    /// or revoked, Error(kInvalidArgument) on a malformed key.
    void admit_member(const std::string &token_id, const std::string &node_public_z85);

    /// The JOIN of node_public_z85 with token_id (its User-Id): checks the
    /// token, then the node key against the nodes file (re-read when it
    /// changed). A new key is recorded, pending with confirm_pairing, else
    /// approved (trust on first use). An approved key becomes a member as in
    /// admit_member. Throws Error(kUnauthorized) for an unknown or revoked
    /// token or a revoked node key, Error(kInvalidArgument) on a malformed
    /// key, Error(kResource) when the nodes file cannot be written.
    JoinVerdict admit_join(const std::string &token_id, const std::string &node_public_z85,
                           const std::string &node_name);

    /// Removes a member (it left or was evicted); its key leaves the data list.
    /// Does nothing for an unknown key.
    void remove_member(const std::string &node_public_z85);

    /// Revokes a token (persisted), removes its join key from the control list
    /// and its members from the data list. Returns the removed members' node
    /// keys, whose open connections the caller must drop. Throws what
    /// TokenStore::revoke throws (kNotFound, kInvalidArgument).
    std::vector<std::string> revoke_token(std::string_view id_prefix);

    /// Re-reads the tokens file and applies what another process changed: new
    /// tokens are admitted, revoked ones handled as in revoke_token. Returns
    /// the removed members' node keys.
    std::vector<std::string> reload();
    /// reload() for tokens and the nodes file: members of revoked tokens and
    /// members whose node key was revoked are removed, with the reason.
    std::vector<AdmissionRemoval> reload_changes();

    /// The nodes file's record of a key (nullopt: none, or no nodes file).
    std::optional<NodeRecord> node(const std::string &node_public_z85) const;
    /// Whether a key the nodes file does not approve waits for a person.
    bool confirm_pairing() const { return confirm_pairing_; }

    /// The token that admitted a member; nullopt when the key is no member.
    std::optional<std::string> member_token(const std::string &node_public_z85) const;
    /// True when token_id names an active (not revoked) token.
    bool token_active(const std::string &token_id) const;
    std::vector<AdmissionMember> members() const;
    std::vector<TokenRecord> tokens() const;

  private:
    std::vector<std::string> apply_tokens();  // requires mutex_ held
    /// Admits an approved member; requires mutex_ held.
    void add_member_locked(const std::string &token_id, const std::string &node_public_z85);
    void check_token_locked(const std::string &token_id) const;  // requires mutex_ held

    mutable std::mutex mutex_;
    TokenStore &tokens_;  // guarded by mutex_
    ZapHandler &zap_;
    std::string coordinator_key_;
    NodeStore *nodes_;  // guarded by mutex_; may be null
    bool confirm_pairing_;
    std::vector<AdmissionMember> members_;   // guarded by mutex_
    std::vector<std::string> control_keys_;  // join keys on zap's control list; guarded by mutex_
};

}  // namespace colony
