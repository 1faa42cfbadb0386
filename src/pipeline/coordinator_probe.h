// The coordinator measures itself on the model it serves, for the planner
// (DESIGN.md, decision 8): time per block at decode and prefill on one middle
// block, and the output head's extra time on the last block. The ratio of the
// two (head_ratio) is also how the coordinator separates the head from the
// blocks in the whole-stage times that workers report (measured_planner.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "cluster/profile.h"
#include "model/layer_range.h"
#include "runtime/stage.h"  // CpuAffinity

namespace colony {

class GgufFile;
struct ModelHparams;

struct CoordinatorMeasurement {
    DeviceProfile profile;  // times filled; memory, cores, battery, OS from the probes
    // decode time of the output head (norm, LM head, sampling) / decode time
    // of one block, on this machine.
    double head_ratio = 0;
};

/// Builds scratch stages (256 KV cells, one sequence, n_threads threads, the
/// debug slow-down factor of stage 0) of probe_range() (more blocks than the
/// CPU caches hold) and of as many blocks
/// at the end of the model, with the output head, and times them with
/// measure_stage_speed, in turns, three times each, keeping the fastest
/// (other work on the machine only slows a measurement down).
/// decode_ms_per_layer: the first range per block;
/// decode_ms_output: the second range minus its blocks at that speed (never
/// negative); with one block, the head's share is estimated from the weight
/// bytes of the head and the block. mem_limit_bytes caps mem_available_bytes (then
/// headroom 0; else 10 % of MemAvailable, at most 512 MiB). Takes a second or
/// two on a small model. With gpu, the ranges run as the coordinator's stage
/// would: their last gpu.n_gpu_layers blocks on the GPU. Errors: what loading
/// a stage throws.
CoordinatorMeasurement measure_coordinator(std::shared_ptr<const GgufFile> file,
                                           const ModelHparams &hp, int n_threads,
                                           std::optional<uint64_t> mem_limit_bytes,
                                           const std::string &node_id, const std::string &name,
                                           double slowdown = 1.0, const CpuAffinity &cpu = {},
                                           const GpuOffload &gpu = {});

/// Bytes of the output head's weights (output.weight, or the token embedding
/// of a tied model); for estimates.
uint64_t head_weight_bytes(const GgufFile &file);

/// speed_probe_range (cluster/model_shape.h) as the engine's LayerRange.
LayerRange probe_range(const GgufFile &file, const ModelHparams &hp);

}  // namespace colony
