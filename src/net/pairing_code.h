// Pairing codes: a short authentication string (SAS) that the coordinator and
// a joining worker each compute from the two public keys, so that a person
// can compare them on both screens before the coordinator admits the worker
// (`colony serve --confirm-pairing`, `colony node approve CODE`), the way
// Bluetooth numeric comparison, KDE Connect and Syncthing pair devices.
//
// code = decimal(u64_be(SHA-256("colony-pairing-v1" || coordinator key || node key)[0..8])
//               mod 10^6), six digits shown as "ddd-ddd"
// where each key is its 32 raw bytes. Both sides know both keys: the worker
// takes the coordinator's from its join token (and CURVE proves the peer holds
// it), the coordinator takes the worker's from its JOIN. A different node key
// gives the same code with probability 10^-6, so an impostor holding a stolen
// token must both guess which code the real device shows and grind a key for
// it while the person watches; the approval then still names one pending node.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace colony {

/// The six-digit pairing code "ddd-ddd" of a (coordinator, node) key pair,
/// both in Z85. Throws Error(kInvalidArgument) on a malformed key.
std::string pairing_code(const std::string &coordinator_public_z85,
                         const std::string &node_public_z85);

/// The canonical form ("ddd-ddd") of what a person typed: six digits, with
/// any '-' or ' ' between them ignored. nullopt when it is not six digits.
std::optional<std::string> normalize_pairing_code(std::string_view text);

}  // namespace colony
