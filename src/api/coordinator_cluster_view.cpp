// CoordinatorBackend::stats and ::cluster_json: the pipeline as /metrics and
// GET /v1/cluster show it (schema: docs/api.md). Three sources are joined:
//   - the control plane's cluster view (ClusterState::cluster_view(): every
//     node's role, state, layer range, measured profile and link round trip;
//     the plan and the re-plan log),
//   - the workers' run-time reports (ClusterState::node_reports(): STATUS
//     answers to heartbeats: stage counters, KV cache use, memory, battery,
//     temperature, shard download and loading phase), matched by key
//     fingerprint,
//   - the coordinator's own stage 0 (the scheduler's StageMeter) and probes.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/coordinator_backend.h"
#include "api/openai/cluster_json.h"
#include "cluster/cpu_placement.h"
#include "cluster/device_probe.h"
#include "cluster/plan_table.h"
#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator.h"
#include "pipeline/node_status.h"
#include "runtime/gpu_device.h"
#include "util/clock.h"
#include "util/process_stats.h"

namespace colony {

namespace {

using nlohmann::json;

/// What is known at run time about one node (its report, or this process).
struct Runtime {
    StageRuntime counters;
    std::string device;   // CPU description
    std::string arch;     // uname's machine, e.g. "aarch64"; "" when unknown
    std::string phase;    // node_status.h phases; "" when unknown
    double progress = 0;  // of the phase
    uint64_t rss_bytes = 0;
    std::optional<uint64_t> available_bytes;
    std::optional<BatteryState> battery;
    std::optional<double> temperature_c;
    std::optional<double> rtt_ms;         // latest heartbeat round trip
    std::optional<double> report_age_ms;  // since the report arrived
    FenceCounts dropped;                  // messages the node dropped (message_fence.h)
    NodeThreads threads;                  // its stage's compute threads (n = 0: unknown)
};

/// {"n", "cores", "thermal_limited"}, or null when not reported.
json threads_json(const NodeThreads &t) {
    if (t.n <= 0)
        return nullptr;
    return {{"n", t.n},
            {"cores", t.cores},
            {"thermal_limited", t.thermal_limited},
            {"gpu", t.gpu.empty() ? json(nullptr) : json(t.gpu)}};
}

json dropped_json(const FenceCounts &c) {
    json o = json::object();
    for (FenceReason r : {FenceReason::kStaleEpoch, FenceReason::kFutureEpoch,
                          FenceReason::kReplayed, FenceReason::kUnknownRequest}) {
        o[fence_reason_name(r)] = c.of(r);
    }
    return o;
}

template <typename T>
json or_null(const std::optional<T> &v) {
    return v ? json(*v) : json(nullptr);
}

json finite_or_null(const std::optional<double> &v) {
    return v && std::isfinite(*v) ? json(*v) : json(nullptr);
}

Runtime coordinator_runtime(const Coordinator &c, const std::string &device) {
    Runtime r;
    r.counters = c.scheduler().stage_runtime();
    r.device = device;
    r.arch = probe_os().arch;
    r.phase = r.counters.loaded ? "ready" : (r.counters.range.empty() ? "waiting" : "loading");
    r.progress = r.counters.loaded ? 1.0 : r.counters.load_progress;
    r.rss_bytes = current_rss_bytes();
    r.available_bytes = probe_mem_available_bytes();
    r.battery = probe_battery_sysfs();
    r.temperature_c = probe_temperature_c();
    r.dropped = c.dropped_messages();
    const CoordinatorOptions &o = c.options();
    r.threads = NodeThreads{o.n_threads > 0 ? o.n_threads : default_thread_count(),
                            format_cpu_list(o.cpu.cores), false, gpu_label(o.gpu)};
    return r;
}

/// The freshest report of the node with key fingerprint `key`.
std::optional<Runtime> worker_runtime(const std::vector<NodeReport> &reports,
                                      const std::string &key) {
    const NodeReport *best = nullptr;
    for (const NodeReport &r : reports) {
        if (r.key == key && (!best || r.received_us > best->received_us))
            best = &r;
    }
    if (!best)
        return std::nullopt;
    Runtime r;
    r.rtt_ms = best->rtt_ms;
    const NodeRuntime &rt = best->runtime;
    r.counters = rt.stage;
    r.device = rt.device;
    r.arch = rt.arch;
    r.phase = rt.phase;
    r.progress = rt.progress;
    r.rss_bytes = rt.rss_bytes;
    r.available_bytes = rt.available_bytes;
    r.battery = rt.battery;
    r.temperature_c = rt.temperature_c;
    r.report_age_ms = (now_us() - best->received_us) / 1000.0;
    r.dropped = rt.dropped;
    r.threads = rt.threads;
    return r;
}

/// Progress of a node in state "loading": the shard download takes the first
/// 90 %, loading the stage the rest.
double loading_progress(const NodeView &n, const Runtime &rt) {
    if (rt.phase == "downloading")
        return 0.9 * rt.progress;
    if (rt.phase == "loading")
        return 0.9 + 0.1 * rt.progress;
    return 0.9 * std::clamp(n.load_progress, 0.0, 1.0);
}

/// The node's state for people: the control plane's, except that before the
/// first plan the coordinator is "waiting" and the workers that joined are
/// "joining" (the control plane calls both spares).
std::string shown_state(const NodeView &n, bool has_plan) {
    if (has_plan || n.state != "spare")
        return n.state;
    return n.role == "coordinator" ? "waiting" : "joining";
}

json node_json(const NodeView &n, const Runtime &rt, bool has_plan) {
    const StageRuntime &s = rt.counters;
    json battery = nullptr;
    const std::optional<BatteryState> bat =
        rt.battery ? rt.battery : (n.profile ? n.profile->battery : std::nullopt);
    if (bat)
        battery = {{"percent", bat->percent}, {"charging", bat->charging}};
    const std::optional<double> temp =
        rt.temperature_c ? rt.temperature_c : (n.profile ? n.profile->temperature_c : std::nullopt);
    std::optional<uint64_t> available = rt.available_bytes;
    if (!available && n.profile && n.profile->mem_available_bytes > 0)
        available = n.profile->mem_available_bytes;
    std::string device = rt.device;
    if (device.empty() && n.profile)
        device = n.profile->backend + (n.profile->arch.empty() ? "" : " " + n.profile->arch);
    const double progress = n.state == "loading" ? loading_progress(n, rt)
                            : n.state == "ready" ? 1.0
                                                 : 0.0;
    return {
        {"id", n.id},
        {"name", n.name},
        {"role", n.role},
        {"device", device.empty() ? "unknown" : device},
        {"arch", !rt.arch.empty()                        ? json(rt.arch)
                 : n.profile && !n.profile->arch.empty() ? json(n.profile->arch)
                                                         : json(nullptr)},
        {"state", shown_state(n, has_plan)},
        {"progress", progress},
        {"layers",
         {{"first", n.layers ? n.layers->first : 0}, {"last", n.layers ? n.layers->last : 0}}},
        {"stage", n.stage >= 0 ? json(n.stage) : json(nullptr)},
        {"address", n.address},
        {"memory",
         {{"weights_bytes", s.weights_bytes},
          {"kv_bytes", s.kv_bytes},
          {"rss_bytes", rt.rss_bytes},
          {"available_bytes", or_null(available)}}},
        {"kv", {{"used_cells", s.kv_used_cells}, {"size_cells", s.kv_size_cells}}},
        {"tokens_per_s", s.tokens_per_s},
        {"compute_ms", s.ubatches ? s.compute_seconds * 1000.0 / s.ubatches : 0.0},
        {"hop_ms", s.hops ? s.hop_seconds * 1000.0 / s.hops : 0.0},
        {"ubatches", s.ubatches},
        {"link_rtt_ms", finite_or_null(n.rtt_ms ? n.rtt_ms : rt.rtt_ms)},
        {"battery", battery},
        {"temperature_c", finite_or_null(temp)},
        {"phase", rt.phase},
        {"report_age_ms", finite_or_null(rt.report_age_ms)},
        {"detail", n.detail},
        {"pairing_code", n.pairing_code},
        {"since_unix_ms", n.since_unix_ms},
        {"measured_decode_ms_per_layer", finite_or_null(n.measured_decode_ms_per_layer)},
        {"throughput_bytes_per_s", finite_or_null(n.throughput_bytes_per_s)},
        {"slowdown", n.slowdown},
        {"profile", n.profile ? device_profile_to_json(*n.profile) : json(nullptr)},
        {"messages_dropped", dropped_json(rt.dropped)},
        {"threads", threads_json(rt.threads)},
    };
}

/// Every node of the view with what is known about it at run time.
std::vector<std::pair<NodeView, Runtime>> nodes_with_runtime(const Coordinator &c,
                                                             const ClusterView &view,
                                                             const std::string &device) {
    const std::vector<NodeReport> reports = c.state().node_reports().all();
    std::vector<std::pair<NodeView, Runtime>> out;
    for (const NodeView &n : view.nodes) {
        Runtime rt;
        if (n.role == "coordinator") {
            rt = coordinator_runtime(c, device);
        } else if (auto w = worker_runtime(reports, n.id)) {
            rt = std::move(*w);
        }
        out.emplace_back(n, std::move(rt));
    }
    return out;
}

}  // namespace

BackendStats CoordinatorBackend::stats() const {
    BackendStats s;
    const BatchScheduler &sched = c_.scheduler();
    s.n_queued = sched.n_queued();
    s.n_running = sched.n_active();
    s.n_parallel = c_.options().n_parallel;
    s.max_queue = sched.max_queue();
    s.prompt_tokens_shared = sched.prompt_tokens_shared();
    const ClusterView view = c_.state().cluster_view();
    s.recovery = {view.recovery_totals.recoveries, view.recovery_totals.failed,
                  view.recovery_totals.requests_replayed, view.recovery_totals.tokens_recomputed};
    auto nodes = nodes_with_runtime(c_, view, device_);
    std::stable_sort(nodes.begin(), nodes.end(),
                     [](const auto &a, const auto &b) { return a.first.stage < b.first.stage; });
    for (const auto &[n, rt] : nodes) {
        if (n.state == "lost")
            continue;  // its last report stays in the view, not in the counters
        for (FenceReason r : {FenceReason::kStaleEpoch, FenceReason::kFutureEpoch,
                              FenceReason::kReplayed, FenceReason::kUnknownRequest}) {
            s.messages_dropped.push_back({n.name, fence_reason_name(r), rt.dropped.of(r)});
        }
    }
    for (const auto &[n, rt] : nodes) {
        if (n.stage < 0 || !n.layers)
            continue;
        StageStats st;
        st.node_id = n.name;
        st.index = static_cast<uint32_t>(n.stage);
        st.layers = {static_cast<uint32_t>(n.layers->first), static_cast<uint32_t>(n.layers->last)};
        st.n_ubatches = rt.counters.ubatches;
        st.compute_seconds = rt.counters.compute_seconds;
        st.n_hops = rt.counters.hops;
        st.hop_seconds = rt.counters.hop_seconds;
        st.kv_used_cells = rt.counters.kv_used_cells;
        st.kv_size_cells = rt.counters.kv_size_cells;
        s.stages.push_back(std::move(st));
    }
    return s;
}

std::string CoordinatorBackend::cluster_json() const {
    const BackendHealth h = health();
    const BatchScheduler &sched = c_.scheduler();
    const ClusterView view = c_.state().cluster_view();
    json nodes = json::array();
    const bool has_plan = c_.state().snapshot().plan.has_value();
    for (const auto &[n, rt] : nodes_with_runtime(c_, view, device_))
        nodes.push_back(node_json(n, rt, has_plan));
    json replans = json::array();
    for (const ReplanRecord &r : view.replans) {
        replans.push_back({{"time_unix_ms", r.time_unix_ms},
                           {"epoch", r.epoch},
                           {"trigger", r.trigger},
                           {"decision", r.decision},
                           {"adopted", r.adopted},
                           {"current_ms", finite_or_null(r.current_ms)},
                           {"candidate_ms", finite_or_null(r.candidate_ms)}});
    }
    const json out = {
        {"model", cluster_model_json(info_)},
        {"status", h.status},
        {"reason", h.reason},
        {"requests",
         {{"running", sched.n_active()},
          {"queued", sched.n_queued()},
          {"parallel", c_.options().n_parallel}}},
        {"speculative", speculative_json(sched.spec_params(), sched.spec_totals())},
        {"pipeline",
         {{"epoch", view.epoch},
          {"ready", view.ready},
          {"replanning", view.replanning},
          {"planner", view.planner},
          {"objective", view.objective},
          {"round_trip_ms", sched.round_trip_ms()}}},
        {"nodes", nodes},
        {"plan", view.plan ? plan_to_json(*view.plan) : json(nullptr)},
        {"replans", replans},
        {"recoveries", recoveries_to_json(view.recoveries)},
        {"recoveries_total", view.recovery_totals.recoveries},
    };
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace colony
