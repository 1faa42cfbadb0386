#include "runtime/dynamic_skip.h"

#include <cmath>
#include <limits>
#include <string>

#include "util/error.h"

namespace colony {

void check_dynamic_skip(const DynamicSkip &d, uint32_t n_layer) {
    if (!(d.threshold >= 0 && d.threshold <= 1))
        throw Error(ErrorCode::kInvalidArgument,
                    "--dynamic-skip must be a cosine in (0, 1] (0 = off), not " +
                        std::to_string(d.threshold));
    if (d.probe == 0)
        throw Error(ErrorCode::kInvalidArgument, "--skip-probe must be at least 1");
    check_blocks_exist(d.hot.blocks, n_layer, "--hot-layers");
}

LayerSkip default_hot_layers(uint32_t n_layer) {
    LayerSkip hot;
    if (n_layer > 0)
        hot.blocks.push_back(0);
    if (n_layer > 1)
        hot.blocks.push_back(n_layer - 1);
    return hot;
}

DynamicSkip resolve_dynamic_skip(DynamicSkip d, uint32_t n_layer) {
    if (d.hot_default) {
        d.hot = default_hot_layers(n_layer);
        d.hot_default = false;
    }
    check_dynamic_skip(d, n_layer);
    return d;
}

DynamicSkipGate::DynamicSkipGate(const DynamicSkip &opts, LayerRange range,
                                 const LayerSkip &static_skip)
    : opts_(opts), range_(range), static_skip_(static_skip) {}

std::vector<uint8_t> DynamicSkipGate::decide(const int32_t *seq_id, const int32_t *pos,
                                             uint32_t n_tokens, int32_t scratch_seq,
                                             std::vector<std::vector<float>> &keep) {
    const uint32_t n_blocks = range_.size();
    std::vector<uint8_t> mode(n_blocks, kCompute);
    keep.assign(n_blocks, std::vector<float>(n_tokens, 1.0f));
    std::unordered_map<int32_t, uint32_t> rows;
    for (uint32_t r = 0; r < n_tokens; ++r)
        ++rows[seq_id[r]];
    single_.assign(n_tokens, false);
    for (uint32_t r = 0; r < n_tokens; ++r)
        single_[r] = seq_id[r] != scratch_seq && rows[seq_id[r]] == 1;
    if (!on())
        return mode;
    for (uint32_t b = 0; b < n_blocks; ++b) {
        const uint32_t il = range_.first + b;
        if (static_skip_.contains(il))
            continue;
        uint32_t n_real = 0, n_skip = 0;
        for (uint32_t r = 0; r < n_tokens; ++r) {
            if (seq_id[r] == scratch_seq)
                continue;
            ++n_real;
            if (!decode_row(r) || opts_.hot.contains(il))
                continue;
            ++n_evaluated_;
            if (static_cast<uint32_t>(pos[r]) % opts_.probe == 0)
                continue;
            const auto it = mean_.find(seq_id[r]);
            if (it == mean_.end() || !(it->second[b] >= opts_.threshold))
                continue;
            keep[b][r] = 0.0f;
            ++n_skip;
            ++n_skipped_;
        }
        if (n_skip == 0)
            continue;
        if (n_skip == n_real) {
            mode[b] = kKvOnly;
            for (uint32_t r = 0; r < n_tokens; ++r)
                keep[b][r] = 0.0f;
        } else {
            mode[b] = kMixed;
            for (uint32_t r = 0; r < n_tokens; ++r)
                if (seq_id[r] == scratch_seq)
                    keep[b][r] = 1.0f;
        }
    }
    return mode;
}

void DynamicSkipGate::observe(uint32_t il, const float *cos, const int32_t *seq_id,
                              uint32_t n_tokens, const std::vector<float> &keep) {
    const uint32_t b = il - range_.first;
    for (uint32_t r = 0; r < n_tokens && r < single_.size(); ++r) {
        if (!single_[r] || keep[r] == 0.0f || !std::isfinite(cos[r]))
            continue;
        auto [it, fresh] = mean_.try_emplace(
            seq_id[r], std::vector<float>(range_.size(), std::numeric_limits<float>::quiet_NaN()));
        float &m = it->second[b];
        m = std::isnan(m) ? cos[r] : 0.5f * m + 0.5f * cos[r];
    }
}

}  // namespace colony
