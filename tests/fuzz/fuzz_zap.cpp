// The ZAP handler's decision (src/net/zap.h, zap_decide): the frames a CURVE
// handshake hands to it come from an unauthenticated peer. The input is split
// into frames at each 0xFF 0x00 pair. Admitted only when the domain and key are
// on the allow-list, and then with the key's fingerprint as User-Id.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "net/keys.h"
#include "net/zap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    std::vector<std::string> parts(1);
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0xFF && i + 1 < size && data[i + 1] == 0x00) {
            parts.emplace_back();
            ++i;
        } else {
            parts.back().push_back(static_cast<char>(data[i]));
        }
    }
    CurveKey allowed_key{};
    allowed_key.fill(0x41);  // "AAAA..." : a seed can reach admission
    const auto allow = [&](const std::string &domain, const CurveKey &key) {
        return domain == kZapDomainControl && key == allowed_key;
    };
    fuzz::expect_clean("zap_decide", [&] {
        const ZapDecision d = zap_decide(parts, allow);
        const bool admitted = d.status == "200";
        const bool should = parts.size() == 7 && parts[0] == "1.0" && parts[5] == "CURVE" &&
                            parts[2] == kZapDomainControl && parts[6] == std::string(32, 'A');
        if (admitted != should || (admitted && d.user_id != key_fingerprint(allowed_key)))
            std::abort();
    });
    return 0;
}
