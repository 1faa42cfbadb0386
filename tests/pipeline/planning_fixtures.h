// Small builders shared by the in-process planning tests of the coordinator
// (unit_cluster_planning_test.cpp, unit_layout_test.cpp).
#pragma once

#include <string>

#include "cluster/plan.h"

namespace colony::planning_fixtures {

/// A device of one thread: `ms_per_layer` per block at decode, a quarter of
/// it per prompt token, `mem` bytes available, no headroom.
inline DeviceProfile profile(const std::string &id, double ms_per_layer, uint64_t mem) {
    DeviceProfile p;
    p.node_id = id;
    p.name = id;
    p.decode_ms_per_layer = ms_per_layer;
    p.prefill_ms_per_layer_per_token = ms_per_layer / 4;
    p.mem_available_bytes = mem;
    p.n_threads = 1;
    return p;
}

/// 8 blocks of 10 MB, a 20 MB embedding and a 20 MB head, no KV cache: easy
/// memory arithmetic (a stage of n blocks needs 10n MB, +20 MB on the first
/// or the last stage).
inline ModelShape shape() {
    ModelShape m;
    m.n_layer = 8;
    m.hidden_bytes_per_token = 2048;
    m.layer_weight_bytes.assign(8, 10'000'000);
    m.first_stage_extra_bytes = 20'000'000;
    m.last_stage_extra_bytes = 20'000'000;
    m.n_ctx = 1;
    return m;
}

}  // namespace colony::planning_fixtures
