#include "net/pairing_code.h"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "net/hash.h"
#include "net/keys.h"

namespace colony {

namespace {

constexpr std::string_view kPairingLabel = "colony-pairing-v1";
constexpr uint64_t kCodeSpace = 1000000;

std::string format_code(uint64_t value) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%03u-%03u", static_cast<unsigned>(value / 1000),
                  static_cast<unsigned>(value % 1000));
    return buf;
}

}  // namespace

std::string pairing_code(const std::string &coordinator_public_z85,
                         const std::string &node_public_z85) {
    const CurveKey coordinator = curve_key_from_z85(coordinator_public_z85);
    const CurveKey node = curve_key_from_z85(node_public_z85);
    std::vector<uint8_t> input(kPairingLabel.begin(), kPairingLabel.end());
    input.insert(input.end(), coordinator.begin(), coordinator.end());
    input.insert(input.end(), node.begin(), node.end());
    const Sha256Digest d = sha256(input);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | d[i];
    // the bias of 2^64 mod 10^6 is below 10^-13
    return format_code(v % kCodeSpace);
}

std::optional<std::string> normalize_pairing_code(std::string_view text) {
    std::string digits;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            digits.push_back(c);
        } else if (c != '-' && c != ' ') {
            return std::nullopt;
        }
        if (digits.size() > 6)
            return std::nullopt;
    }
    if (digits.size() != 6)
        return std::nullopt;
    return digits.substr(0, 3) + "-" + digits.substr(3);
}

}  // namespace colony
