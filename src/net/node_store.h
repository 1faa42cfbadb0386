// The coordinator's node file: which worker node keys it has seen, approved
// (pinned) or revoked (the admission design is in tokens.h; pairing codes in
// pairing_code.h).
//
// A worker's node key is its long-term identity (keys.h). On its first JOIN
// the coordinator records the key with the token it used and its pairing
// code. `colony serve --confirm-pairing` records it "pending" and admits it
// only once a person runs `colony node approve CODE|ID`; without the option
// it is recorded "approved" at once (trust on first use). Either way the key
// is pinned from then on: an approved key joins again without asking, across
// restarts, and `colony node revoke ID` refuses it for good and makes the
// running coordinator drop it (it re-reads this file on every heartbeat).
//
// Nodes file (<config_dir>/nodes, mode 0600, rewritten atomically under an
// exclusive flock of <config_dir>/nodes.lock, so that the coordinator and the
// CLI never lose each other's changes):
//     # colony nodes: id state token_id code first_seen_unix changed_unix node_public_z85 name
//     <16 hex> <pending|approved|revoked> <16 hex or -> <ddd-ddd> <decimal> <decimal> <40 chars>
//     <name>
// name is the worker's --name reduced to [A-Za-z0-9._-] (other bytes become
// '_'), at most 64 characters. At most kMaxPendingNodes records are pending:
// a new pending node replaces the oldest one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace colony {

enum class NodeState { kPending, kApproved, kRevoked };

/// "pending", "approved", "revoked".
const char *node_state_name(NodeState state);

struct NodeRecord {
    std::string id;  // key_fingerprint(public_z85)
    NodeState state = NodeState::kPending;
    std::string token_id;  // the token it first joined with ("" when unknown)
    std::string code;      // pairing_code(coordinator key, public_z85)
    int64_t first_seen_unix = 0;
    int64_t changed_unix = 0;  // the last change of state
    std::string public_z85;
    std::string name;  // sanitized, see above
};

inline constexpr size_t kMaxPendingNodes = 32;
inline constexpr size_t kMaxNodes = 4096;

/// Not thread-safe: guard it with the caller's lock. Safe across processes:
/// every mutation re-reads the file under the lock file before it writes.
class NodeStore {
  public:
    /// Opens <config_dir>/nodes; a missing file is an empty store. Throws
    /// what read_private_file throws (kUnauthorized for a file others can
    /// read) and Error(kCorrupt) for a malformed line.
    explicit NodeStore(std::filesystem::path config_dir);

    /// Re-reads the file. Throws like the constructor.
    void reload();
    /// Re-reads the file when its inode, size or modification time changed
    /// since the last read. Returns whether it did.
    bool reload_if_changed();
    /// Modification time of the file as last read (ns since the epoch; 0: none).
    int64_t file_mtime_ns() const { return mtime_ns_; }

    const std::vector<NodeRecord> &list() const { return records_; }
    std::optional<NodeRecord> find_key(const std::string &public_z85) const;

    /// The record named by a pairing code ("123-456" or "123456") or an id
    /// prefix of at least 4 hex characters. Throws Error(kNotFound) when none
    /// matches, Error(kInvalidArgument) when several do or the text is neither.
    NodeRecord resolve(std::string_view code_or_id) const;

    /// Records a node seen in a JOIN when its key is new (state `initial`)
    /// and returns its record (an existing record is returned unchanged).
    /// The name is sanitized. Throws Error(kResource) on I/O errors or when
    /// the file holds kMaxNodes records.
    NodeRecord record(const std::string &public_z85, const std::string &token_id,
                      const std::string &code, const std::string &name, NodeState initial);

    /// Sets the state of the node resolve(code_or_id) names and returns its
    /// record as it was before. Throws what resolve throws, kResource on I/O.
    NodeRecord set_state(std::string_view code_or_id, NodeState state);

    std::filesystem::path path() const { return file_; }

  private:
    /// Runs `change` on the records re-read under the lock file, then saves.
    template <class Change>
    auto locked_update(Change change);
    void save() const;

    std::filesystem::path dir_;
    std::filesystem::path file_;
    std::vector<NodeRecord> records_;
    int64_t mtime_ns_ = 0;
    uint64_t inode_ = 0;
    int64_t size_ = -1;
};

/// The worker's --name as the nodes file keeps it.
std::string sanitize_node_name(std::string_view name);

}  // namespace colony
