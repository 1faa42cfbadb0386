#include "pipeline/chain_evaluator.h"

#include <algorithm>
#include <numeric>
#include <span>

#include "runtime/stage.h"
#include "util/error.h"

namespace colony {

ChunkEvaluator stage_chain_evaluator(std::vector<Stage *> stages, WireDtype wire_type) {
    if (stages.empty() || !stages.front()->is_first() || !stages.back()->is_last())
        throw Error(ErrorCode::kInvalidArgument,
                    "a stage chain must start with the embedding and end with the output head");
    for (size_t i = 1; i < stages.size(); ++i) {
        if (stages[i]->range().first != stages[i - 1]->range().last)
            throw Error(ErrorCode::kInvalidArgument, "the stage chain's ranges are not contiguous");
    }
    return [stages, wire_type](std::span<const int32_t> tokens, uint32_t first,
                               std::vector<float> &logits) {
        Stage &last = *stages.back();
        const uint32_t n_ubatch = stages.front()->config().n_ubatch;
        const uint32_t n_vocab = last.hparams().n_vocab;
        const uint32_t n_embd = last.hparams().n_embd;
        for (Stage *s : stages)
            s->seq_rm(0);
        logits.clear();
        std::vector<int32_t> pos(n_ubatch), seq(n_ubatch, 0), out_ids(n_ubatch);
        std::vector<float> hidden;
        for (size_t start = 0; start < tokens.size(); start += n_ubatch) {
            const auto n = static_cast<uint32_t>(std::min<size_t>(n_ubatch, tokens.size() - start));
            std::iota(pos.begin(), pos.begin() + n, static_cast<int32_t>(start));
            // rows at positions >= first (at least one: the engine computes one)
            uint32_t n_out = 0;
            for (uint32_t i = 0; i < n; ++i) {
                if (start + i >= first)
                    out_ids[n_out++] = static_cast<int32_t>(i);
            }
            const bool wanted = n_out > 0;
            if (!wanted)
                out_ids[n_out++] = static_cast<int32_t>(n - 1);
            const float *out = nullptr;
            for (Stage *s : stages) {
                Ubatch ub;
                ub.n_tokens = n;
                ub.pos = pos.data();
                ub.seq_id = seq.data();
                if (s->is_first())
                    ub.tokens = tokens.data() + start;
                else
                    ub.embd = hidden.data();
                if (s->is_last()) {
                    ub.out_ids = out_ids.data();
                    ub.n_outputs = n_out;
                }
                out = s->forward(ub);
                if (!s->is_last()) {  // through the wire type, as ACTIVATIONS carry it
                    const std::vector<uint8_t> packed = wire_pack_hidden(
                        std::span<const float>(out, size_t{n_embd} * n), n_embd, wire_type);
                    hidden.resize(size_t{n_embd} * n);
                    wire_unpack_hidden(packed, wire_type, n_embd, hidden);
                }
            }
            if (wanted)
                logits.insert(logits.end(), out, out + size_t{n_out} * n_vocab);
        }
    };
}

}  // namespace colony
