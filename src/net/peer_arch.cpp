#include "net/peer_arch.h"

#include <array>
#include <bit>

namespace colony {

static_assert(std::endian::native == std::endian::little,
              "colony's wire format and GGUF shards are little-endian (src/net/peer_arch.h)");

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

ByteOrder arch_byte_order(std::string_view m) {
    constexpr std::array little = {"x86_64",  "amd64",   "i386",        "i486",       "i586",
                                   "i686",    "x86",     "aarch64",     "arm64",      "riscv64",
                                   "riscv32", "ppc64le", "powerpc64le", "loongarch64"};
    constexpr std::array big = {"aarch64_be", "armeb", "ppc",   "ppc64",   "powerpc", "powerpc64",
                                "s390",       "s390x", "sparc", "sparc64", "m68k"};
    for (std::string_view a : little)
        if (m == a)
            return ByteOrder::kLittle;
    for (std::string_view a : big)
        if (m == a)
            return ByteOrder::kBig;
    // 32-bit ARM: armv7l, armv8l, armv6l ... are little-endian, armv7b big.
    if (starts_with(m, "armv") && m.size() > 4) {
        if (ends_with(m, "l"))
            return ByteOrder::kLittle;
        if (ends_with(m, "b"))
            return ByteOrder::kBig;
    }
    return ByteOrder::kUnknown;
}

std::optional<std::string> peer_arch_refusal(std::string_view machine) {
    const std::string name = machine.empty() ? "an unnamed architecture" : std::string(machine);
    switch (arch_byte_order(machine)) {
        case ByteOrder::kLittle:
            return std::nullopt;
        case ByteOrder::kBig:
            return name +
                   " is big-endian; colony's wire format and GGUF shards are little-endian, "
                   "so only little-endian machines can join";
        case ByteOrder::kUnknown:
            break;
    }
    return "the worker's CPU architecture (" + name +
           ") is unknown to this coordinator, so its byte order cannot be checked; only "
           "little-endian machines (x86_64, aarch64, armv7l, riscv64, ppc64le, ...) can join";
}

}  // namespace colony
