#include "pipeline/coordinator_probe.h"

#include <algorithm>

#include "cluster/device_probe.h"
#include "cluster/model_shape.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/stage.h"
#include "runtime/stage_probe.h"
#include "util/log.h"

namespace colony {
namespace {

constexpr uint32_t kScratchCells = 256;
constexpr int kDecodeSteps = 12;
constexpr int kPrefillTokens = 64;
constexpr int kRounds = 3;

std::unique_ptr<Stage> scratch_stage(const std::shared_ptr<const GgufFile> &file,
                                     const ModelHparams &hp, LayerRange range, int n_threads,
                                     const CpuAffinity &cpu, const GpuOffload &gpu,
                                     double slowdown) {
    StageConfig cfg;
    cfg.range = range;
    cfg.n_ctx = kScratchCells;
    cfg.n_seq_max = 1;
    cfg.n_ubatch = kPrefillTokens;
    cfg.n_threads = n_threads;
    cfg.cpu = cpu;
    cfg.gpu = gpu;
    cfg.slowdown = slowdown;
    return std::make_unique<Stage>(file, hp, cfg);
}

/// The faster of two measurements: other work on the machine only ever
/// slows one down.
StageSpeed fastest(const StageSpeed &a, const StageSpeed &b) {
    return {std::min(a.decode_ms_per_layer, b.decode_ms_per_layer),
            std::min(a.prefill_ms_per_layer_per_token, b.prefill_ms_per_layer_per_token)};
}

uint64_t block_bytes(const GgufFile &file, uint32_t n_layer) {
    uint64_t total = 0;
    for (const GgufTensor &t : file.tensors()) {
        if (t.name.rfind("blk.", 0) == 0)
            total += t.nbytes;
    }
    return n_layer ? total / n_layer : 0;
}

}  // namespace

LayerRange probe_range(const GgufFile &file, const ModelHparams &hp) {
    const LayerRange r = speed_probe_range(file, hp);
    return {static_cast<uint32_t>(r.first), static_cast<uint32_t>(r.last)};
}

uint64_t head_weight_bytes(const GgufFile &file) {
    if (const GgufTensor *out = file.find("output.weight"))
        return out->nbytes;
    const GgufTensor *embd = file.find("token_embd.weight");
    return embd ? embd->nbytes : 0;
}

CoordinatorMeasurement measure_coordinator(std::shared_ptr<const GgufFile> file,
                                           const ModelHparams &hp, int n_threads,
                                           std::optional<uint64_t> mem_limit_bytes,
                                           const std::string &node_id, const std::string &name,
                                           double slowdown, const CpuAffinity &cpu,
                                           const GpuOffload &gpu) {
    const uint32_t n = hp.n_layer;
    const LayerRange blocks = probe_range(*file, hp);
    const uint32_t k = blocks.size();
    // The blocks alone and (n >= 2) as many blocks with the head, measured in
    // turns, three times each; the fastest of each counts.
    std::unique_ptr<Stage> body = scratch_stage(file, hp, blocks, n_threads, cpu, gpu, slowdown);
    std::unique_ptr<Stage> tail =
        n >= 2 ? scratch_stage(file, hp, {n - k, n}, n_threads, cpu, gpu, slowdown) : nullptr;
    StageSpeed block{1e30, 1e30}, last{1e30, 1e30};
    for (int round = 0; round < kRounds; ++round) {
        block = fastest(block, measure_stage_speed(*body, kDecodeSteps, kPrefillTokens));
        if (tail)
            last = fastest(last, measure_stage_speed(*tail, kDecodeSteps, kPrefillTokens));
    }
    body.reset();
    tail.reset();
    CoordinatorMeasurement m;
    if (n >= 2) {
        // The difference is the head.
        m.head_ratio =
            std::max(0.0, last.decode_ms_per_layer / block.decode_ms_per_layer - 1.0) * k;
    } else {
        const uint64_t per_block = block_bytes(*file, n);
        m.head_ratio = per_block ? static_cast<double>(head_weight_bytes(*file)) / per_block : 0;
    }
    DeviceProfile &p = m.profile;
    p = probe_device_profile("/", mem_limit_bytes);
    p.node_id = node_id;
    p.name = name;
    p.decode_ms_per_layer = std::max(block.decode_ms_per_layer, 1e-6);
    p.prefill_ms_per_layer_per_token = std::max(block.prefill_ms_per_layer_per_token, 1e-6);
    if (n < 2)  // the one block included the head
        p.decode_ms_per_layer = std::max(block.decode_ms_per_layer / (1 + m.head_ratio), 1e-6);
    p.decode_ms_output = p.decode_ms_per_layer * m.head_ratio;
    p.n_threads = n_threads > 0 ? n_threads : default_thread_count();
    p.headroom_bytes =
        mem_limit_bytes ? 0 : std::min<uint64_t>(p.mem_available_bytes / 10, 512ull << 20);
    p.backend = "CPU";
    p.slowdown_factor = slowdown;
    p.weight_bytes_per_layer = block_bytes(*file, n);
    COLONY_LOG_INFO(
        "control: measured the coordinator: %.3f ms per block at decode, head %.3f ms "
        "(%.2f blocks), prefill %.4f ms per block per token, %d threads",
        p.decode_ms_per_layer, p.decode_ms_output, m.head_ratio, p.prefill_ms_per_layer_per_token,
        p.n_threads);
    return m;
}

}  // namespace colony
