// SHA-256 (FIPS 180-4) through OpenSSL's EVP interface, for key fingerprints
// and shard verification (DESIGN.md, decision 7).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace colony {

using sha256_digest = std::array<uint8_t, 32>;

/// Incremental SHA-256: update() any number of times, then finish() once.
/// Not thread-safe; one hasher per stream.
class sha256_hasher {
  public:
    sha256_hasher();  // throws Error(kInternal) if OpenSSL cannot set up SHA-256
    ~sha256_hasher();
    sha256_hasher(const sha256_hasher &) = delete;
    sha256_hasher &operator=(const sha256_hasher &) = delete;

    void update(std::span<const uint8_t> bytes);
    /// The digest of everything passed to update(). Throws Error(kInternal)
    /// when called twice.
    sha256_digest finish();

  private:
    struct state;
    std::unique_ptr<state> state_;
};

/// SHA-256 of one buffer.
sha256_digest sha256(std::span<const uint8_t> bytes);

/// Lowercase hex of bytes ("a1b2...").
std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace colony
