// Which machines can be peers: colony's frames carry hidden states, logits
// and shard bytes as raw little-endian arrays (wire.h), and GGUF files are
// little-endian, so every node must be a little-endian machine. A JOIN names
// the worker's architecture as uname(2)'s `machine` (WireJoin::arch); the
// coordinator refuses a big-endian or unknown one with a reason that says so.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace colony {

/// Byte order of a CPU architecture named as uname -m prints it.
enum class ByteOrder { kLittle, kBig, kUnknown };

/// kLittle for x86_64/i?86, aarch64/arm64, armv[5-8]l, riscv64/32, ppc64le,
/// loongarch64; kBig for aarch64_be, armeb/armv?b, ppc/ppc64, s390/s390x,
/// sparc/sparc64, m68k; kUnknown otherwise (mips/mips64 included: Linux
/// prints the same name for both byte orders).
ByteOrder arch_byte_order(std::string_view machine);

/// Why a node of this architecture cannot join, or nullopt when it can.
/// E.g. "s390x is big-endian; colony's wire format and GGUF shards are
/// little-endian, so only little-endian machines can join".
std::optional<std::string> peer_arch_refusal(std::string_view machine);

}  // namespace colony
