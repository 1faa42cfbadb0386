// Discovery beacons (src/net/discovery.h): unauthenticated UDP datagrams from
// anyone on the LAN. A datagram that decodes must encode and decode to the
// same beacon.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_util.h"
#include "net/discovery.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    fuzz::expect_clean("beacon", [&] {
        const Beacon b =
            beacon_decode(std::string_view(reinterpret_cast<const char *>(data), size));
        if (!(beacon_decode(beacon_encode(b)) == b)) {
            std::fprintf(stderr, "beacon: a decoded beacon does not round-trip\n");
            std::abort();
        }
    });
    return 0;
}
