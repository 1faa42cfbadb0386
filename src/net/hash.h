// SHA-256 (FIPS 180-4) through OpenSSL's EVP interface, for key fingerprints
// and shard verification (DESIGN.md, decision 7).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace colony {

using Sha256Digest = std::array<uint8_t, 32>;

/// Incremental SHA-256: update() any number of times, then finish() once.
/// Not thread-safe; one hasher per stream.
class Sha256Hasher {
  public:
    Sha256Hasher();  // throws Error(kInternal) if OpenSSL cannot set up SHA-256
    ~Sha256Hasher();
    Sha256Hasher(const Sha256Hasher &) = delete;
    Sha256Hasher &operator=(const Sha256Hasher &) = delete;

    void update(std::span<const uint8_t> bytes);
    /// The digest of everything passed to update(). Throws Error(kInternal)
    /// when called twice.
    Sha256Digest finish();

  private:
    struct state;
    std::unique_ptr<state> state_;
};

/// SHA-256 of one buffer.
Sha256Digest sha256(std::span<const uint8_t> bytes);

/// Lowercase hex of bytes ("a1b2...").
std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace colony
