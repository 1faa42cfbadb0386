// Small builders for planner inputs shared by the cluster tests.
#pragma once

#include <string>
#include <vector>

#include "cluster/plan.h"

namespace colony::test {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

/// A model of n_layer blocks of 100 MiB each, 1 MiB of KV cache per block
/// (1 KiB per token x 1024 tokens), 8 KiB hidden state per token, 200 MiB
/// embedding and 300 MiB output head: 100 * n + n + 500 MiB in all.
inline ModelShape uniform_model(int n_layer) {
    ModelShape m;
    m.n_layer = n_layer;
    m.hidden_bytes_per_token = 8 * 1024;
    m.layer_weight_bytes.assign(n_layer, 100 * kMiB);
    m.kv_bytes_per_token_per_layer = 1024;
    m.n_ctx = 1024;
    m.n_parallel = 1;
    m.first_stage_extra_bytes = 200 * kMiB;
    m.last_stage_extra_bytes = 300 * kMiB;
    return m;
}

inline DeviceProfile device(const std::string &id, double decode_ms_per_layer,
                            uint64_t mem_available_bytes) {
    DeviceProfile d;
    d.node_id = id;
    d.name = id;
    d.decode_ms_per_layer = decode_ms_per_layer;
    d.prefill_ms_per_layer_per_token = decode_ms_per_layer / 8;
    d.mem_available_bytes = mem_available_bytes;
    d.headroom_bytes = 0;
    return d;
}

/// A link in both directions between every pair of ids.
inline std::vector<LinkProfile> full_mesh(const std::vector<std::string> &ids, double rtt_ms,
                                          double bytes_per_s) {
    std::vector<LinkProfile> links;
    for (size_t a = 0; a < ids.size(); ++a) {
        for (size_t b = a + 1; b < ids.size(); ++b)
            links.push_back({ids[a], ids[b], rtt_ms, bytes_per_s});
    }
    return links;
}

}  // namespace colony::test
