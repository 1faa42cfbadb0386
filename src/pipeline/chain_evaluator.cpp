#include "pipeline/chain_evaluator.h"

#include <span>

namespace colony {

ChunkEvaluator stage_chain_evaluator(std::vector<Stage *> stages, WireDtype wire_type) {
    return stage_chain_chunk_evaluator(
        std::move(stages), [wire_type](std::vector<float> &hidden, uint32_t n_embd) {
            // as ACTIVATIONS carry it: packed by the sender, unpacked by the receiver
            const std::vector<uint8_t> packed = wire_pack_hidden(hidden, n_embd, wire_type);
            wire_unpack_hidden(packed, wire_type, n_embd, hidden);
        });
}

}  // namespace colony
