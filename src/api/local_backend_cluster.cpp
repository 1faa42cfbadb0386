// LocalBackend::cluster_json: the cluster of one as GET /v1/cluster shows it
// (schema: docs/api.md).
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "api/local_backend.h"
#include "api/openai/cluster_json.h"
#include "cluster/cpu_placement.h"
#include "cluster/device_probe.h"
#include "pipeline/batch_scheduler.h"
#include "runtime/gpu_device.h"
#include "util/process_stats.h"

namespace colony {

namespace {

template <typename T>
nlohmann::json or_null(const std::optional<T> &v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

std::string LocalBackend::cluster_json() const {
    using nlohmann::json;
    const BackendHealth h = health();
    const BackendStats s = stats();
    const StageStats &st = s.stages.front();

    const StageRuntime rt = scheduler_->stage_runtime();
    const std::string state = h.status == "ok" ? "ready" : h.status;  // loading, failed
    const double progress = rt.loaded ? 1.0 : rt.load_progress;
    const double tokens_per_s = rt.tokens_per_s;
    const uint64_t weight_bytes = rt.weights_bytes, kv_bytes = rt.kv_bytes;

    json battery = nullptr;
    if (auto b = probe_battery_sysfs())
        battery = {{"percent", b->percent}, {"charging", b->charging}};

    json node = {
        {"id", "local"},
        {"name", hostname_},
        {"role", "coordinator"},
        {"device", device_.empty() ? "CPU" : device_},
        {"arch", probe_os().arch},
        {"state", state},
        {"progress", progress},
        {"layers", {{"first", st.layers.first}, {"last", st.layers.last}}},
        {"memory",
         {{"weights_bytes", weight_bytes},
          {"kv_bytes", kv_bytes},
          {"rss_bytes", current_rss_bytes()},
          {"available_bytes", or_null(probe_mem_available_bytes())}}},
        {"kv", {{"used_cells", st.kv_used_cells}, {"size_cells", st.kv_size_cells}}},
        {"tokens_per_s", tokens_per_s},
        {"compute_ms", st.n_ubatches ? st.compute_seconds * 1000.0 / st.n_ubatches : 0.0},
        {"ubatches", st.n_ubatches},
        {"link_rtt_ms", nullptr},
        {"battery", battery},
        {"temperature_c", or_null(probe_temperature_c())},
        {"threads",
         {{"n", opts_.n_threads > 0 ? opts_.n_threads : default_thread_count()},
          {"cores", format_cpu_list(opts_.cpu.cores)},
          {"thermal_limited", false},
          {"gpu", opts_.gpu.n_gpu_layers != 0 ? json(gpu_label(opts_.gpu)) : json(nullptr)}}},
    };
    json out = {
        {"model", cluster_model_json(info_)},
        {"status", h.status},
        {"reason", h.reason},
        {"requests",
         {{"running", s.n_running}, {"queued", s.n_queued}, {"parallel", s.n_parallel}}},
        {"speculative", speculative_json(scheduler_->spec_params(), scheduler_->spec_totals())},
        {"nodes", json::array({node})},
    };
    return out.dump();
}

}  // namespace colony
