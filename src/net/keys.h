// Node identity: every node (coordinator or worker) has one long-term CURVE
// key pair (Curve25519, as CurveZMQ uses it; ref: rfc.zeromq.org/spec/26),
// stored in its config directory as <config_dir>/node.key with mode 0600.
// The public key names the node; its fingerprint is what logs and the
// dashboard show.
//
// node.key format (text; Z85 is ZeroMQ's base-85 key encoding, 40 characters
// for 32 bytes, ref: rfc.zeromq.org/spec/32):
//     # colony node key (CURVE). Secret: keep this file mode 0600.
//     public <40 chars Z85>
//     secret <40 chars Z85>
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

namespace colony {

/// A CURVE key pair in Z85 text, the form libzmq's socket options take.
struct CurveKeypair {
    std::string public_z85;  // 40 characters
    std::string secret_z85;  // 40 characters
};

/// Raw 32-byte CURVE key (public or secret).
using CurveKey = std::array<uint8_t, 32>;

/// A fresh key pair from zmq_curve_keypair. Throws Error(kUnsupported) when
/// libzmq was built without CURVE (zmq_has("curve") == 0).
CurveKeypair curve_keypair_generate();

/// The public key of a Z85 secret key (zmq_curve_public). Throws
/// Error(kInvalidArgument) when secret_z85 is not a 40-character Z85 key.
std::string curve_public_from_secret(const std::string &secret_z85);

/// Z85 (40 characters) <-> raw 32 bytes (zmq_z85_decode / zmq_z85_encode).
/// curve_key_from_z85 throws Error(kInvalidArgument) on a malformed key.
CurveKey curve_key_from_z85(const std::string &z85);
std::string curve_key_to_z85(const CurveKey &raw);

/// Fingerprint of a public key: the first 16 lowercase hex characters of
/// SHA-256 over its 32 raw bytes. Throws like curve_key_from_z85.
std::string key_fingerprint(const std::string &public_z85);
std::string key_fingerprint(const CurveKey &raw_public);

/// $XDG_CONFIG_HOME/colony when XDG_CONFIG_HOME is set, else $HOME/.config/colony.
/// Throws Error(kNotFound) when neither variable is set.
std::filesystem::path default_config_dir();

/// Path of the node key file in config_dir: <config_dir>/node.key.
std::filesystem::path node_key_path(const std::filesystem::path &config_dir);

/// Reads a key file. Throws what read_private_file throws (kNotFound;
/// kUnauthorized with the reason when the file is group- or world-accessible,
/// not ours, or a symlink), and Error(kCorrupt) when the content is not the
/// format above or the public key does not belong to the secret key.
CurveKeypair load_key_file(const std::filesystem::path &file);

/// Writes a new key file with mode 0600 (create_private_file: O_CREAT|O_EXCL).
/// Throws Error(kInvalidArgument) when it exists, Error(kResource) on I/O errors.
void save_key_file(const std::filesystem::path &file, const CurveKeypair &keys);

/// The node's key pair: loads <config_dir>/node.key, or creates config_dir
/// (mode 0700) and a new key file when there is none. A key file that exists
/// but is unsafe or corrupt is never replaced: the error is thrown.
CurveKeypair load_or_create_node_keys(const std::filesystem::path &config_dir);

}  // namespace colony
