// Join tokens and the admission design (DESIGN.md, decision 5; issue 3,
// "Security from the first byte").
//
// Token text:  colony1.<coordinator public key>.<join secret key>
//   each key is its 32 raw bytes in unpadded base64url (RFC 4648 section 5,
//   alphabet A-Z a-z 0-9 - _, 43 characters), so a token is 95 characters of
//   [A-Za-z0-9._-]: safe to paste into a shell, a URL or a chat. (Z85, libzmq's
//   own key text, is not: it contains '.', '$', '&', '<', '>' and quotes.)
//   A token's id is key_fingerprint(join public key): 16 hex characters.
//
// Admission:
//   1. `serve` creates a token: a fresh CURVE key pair (the join key) stored in
//      <config_dir>/tokens (mode 0600). The token carries the join SECRET key,
//      so whoever holds the token can authenticate as the join key, and the
//      coordinator's public key, so the worker authenticates the coordinator
//      (CURVE client with the server key pinned) and cannot be redirected.
//   2. The coordinator's control socket is a CURVE server in ZAP domain
//      kZapDomainControl; its allow-list is the public keys of active tokens.
//      A worker connects as a CURVE client with the token's key pair; the ZAP
//      handler admits it and tags its messages with User-Id = token id.
//   3. The worker sends JOIN carrying its own long-term node public key. The
//      coordinator records (node key -> token id) as a member (AdmissionControl
//      below) and puts the node key on the data-plane allow-list
//      (kZapDomainData), which holds only member node keys and the
//      coordinator's own key.
//   4. Revoking a token marks it revoked in the tokens file, removes its join
//      key from the control allow-list, and removes every member it admitted
//      from the data allow-list. ZAP runs at handshake time: connections that
//      are already up stay up, so the caller must also stop serving the
//      returned members (their messages carry User-Id of a revoked token or
//      a removed node key) and close or re-plan around them.
//
// Tokens file (<config_dir>/tokens, mode 0600, rewritten atomically):
//     # colony join tokens: id created_unix revoked(0|1) join_public_z85 join_secret_z85
//     <16 hex> <decimal seconds> <0|1> <40 chars> <40 chars>
// The secret stays in the file so that `serve` can print an existing token again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/keys.h"

namespace colony {

/// What a token carries: the coordinator's public key and the join key pair.
struct JoinToken {
    std::string coordinator_public_z85;
    CurveKeypair join_keys;

    /// key_fingerprint(join_keys.public_z85).
    std::string id() const;
};

/// "colony1.<base64url coordinator public>.<base64url join secret>" (95 chars).
std::string join_token_format(const JoinToken &token);

/// Parses a token (surrounding whitespace is ignored) and derives the join
/// public key from its secret. Throws Error(kInvalidArgument, why) when the
/// prefix, the separators, the lengths or the base64url digits are wrong.
JoinToken join_token_parse(std::string_view text);

/// One line of the tokens file.
struct TokenRecord {
    std::string id;  // key_fingerprint(join_public_z85)
    int64_t created_unix = 0;
    bool revoked = false;
    CurveKeypair join_keys;
};

/// The coordinator's tokens file. Not thread-safe: guard it with the caller's
/// lock. Every mutation rewrites the file before returning.
class TokenStore {
  public:
    /// Opens <config_dir>/tokens; a missing file is an empty store. Throws what
    /// read_private_file throws (kUnauthorized for a file others can read) and
    /// Error(kCorrupt) for a malformed line.
    explicit TokenStore(std::filesystem::path config_dir);

    /// Re-reads the file (another process, e.g. `colony token revoke`, may have
    /// changed it). Throws like the constructor.
    void reload();

    /// Creates, stores and returns a new token record (created now, active).
    /// Creates config_dir (0700) if needed. Throws Error(kResource) on I/O errors.
    TokenRecord create();

    /// All tokens, in creation order.
    const std::vector<TokenRecord> &list() const { return records_; }

    /// The token whose id starts with id_prefix (at least 4 characters).
    /// Returns nullopt when none matches; throws Error(kInvalidArgument) when
    /// the prefix is shorter than 4 characters or matches several tokens.
    std::optional<TokenRecord> find(std::string_view id_prefix) const;

    /// Marks the token revoked and rewrites the file. Returns false when it was
    /// already revoked. Throws Error(kNotFound) when no token matches, plus
    /// what find() throws.
    bool revoke(std::string_view id_prefix);

    /// Public keys (Z85) of the tokens that are not revoked.
    std::vector<std::string> active_join_keys() const;

    std::filesystem::path path() const { return file_; }

  private:
    void save() const;

    std::filesystem::path dir_;
    std::filesystem::path file_;
    std::vector<TokenRecord> records_;
};

}  // namespace colony
