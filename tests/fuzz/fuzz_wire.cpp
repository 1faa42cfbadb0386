// One wire frame (src/net/wire.h): decode; a frame that decodes must encode
// back to a frame that decodes to the same message (the sender and receiver
// run the same checks), and an ACTIVATIONS frame goes through the stage's
// plan check (wire_check_activations) as a worker does.
#include <cstdint>
#include <cstdlib>

#include "fuzz_util.h"
#include "net/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    WireLimits limits;
    limits.max_tokens = 64;  // small limits reach the limit checks from small inputs
    limits.max_string_bytes = 256;
    fuzz::expect_clean("wire", [&] {
        const WireMessage msg = wire_decode({data, size}, limits);
        const std::vector<uint8_t> again = wire_encode(msg, limits);
        if (!(wire_decode(again, limits) == msg)) {
            std::fprintf(stderr, "wire: a decoded frame does not round-trip\n");
            std::abort();
        }
        if (const auto *act = std::get_if<WireActivations>(&msg.body)) {
            for (uint32_t n_embd : {0u, 8u}) {
                fuzz::expect_clean("wire_check_activations", [&] {
                    wire_check_activations(*act, WirePlanShape{1, n_embd, 128, 512, 32, 4});
                });
            }
        }
    });
    return 0;
}
