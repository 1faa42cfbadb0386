// Which machines may join: little-endian ones only (net/peer_arch.h).
#include <gtest/gtest.h>

#include "net/peer_arch.h"

namespace colony {
namespace {

TEST(PeerArch, LittleEndianMachinesJoin) {
    for (const char *m : {"x86_64", "i686", "aarch64", "arm64", "armv7l", "armv8l", "armv6l",
                          "riscv64", "ppc64le", "loongarch64"}) {
        EXPECT_EQ(arch_byte_order(m), ByteOrder::kLittle) << m;
        EXPECT_FALSE(peer_arch_refusal(m).has_value()) << m;
    }
}

TEST(PeerArch, BigEndianMachinesAreRefusedSayingSo) {
    for (const char *m : {"s390x", "ppc64", "ppc", "aarch64_be", "armv7b", "armeb", "sparc64"}) {
        EXPECT_EQ(arch_byte_order(m), ByteOrder::kBig) << m;
        const auto why = peer_arch_refusal(m);
        ASSERT_TRUE(why.has_value()) << m;
        EXPECT_NE(why->find(std::string(m) + " is big-endian"), std::string::npos) << *why;
    }
}

TEST(PeerArch, UnknownMachinesAreRefusedSayingSo) {
    // mips: Linux prints the same name for both byte orders.
    for (const char *m : {"mips", "mips64", "vax", "", "armv", "x86_64 "}) {
        EXPECT_EQ(arch_byte_order(m), ByteOrder::kUnknown) << "'" << m << "'";
        const auto why = peer_arch_refusal(m);
        ASSERT_TRUE(why.has_value()) << m;
        EXPECT_NE(why->find("is unknown to this coordinator"), std::string::npos) << *why;
    }
}

}  // namespace
}  // namespace colony
