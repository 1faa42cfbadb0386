#include "pipeline/node_status.h"

#include "util/process_stats.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cluster/device_probe.h"
#include "ggml-backend.h"
#include "runtime/stage.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/host.h"
#include "util/log.h"

namespace colony {

namespace {

using nlohmann::json;

constexpr int64_t kRateWindowUs = 5'000'000;  // tokens_per_s is averaged over this window
constexpr size_t kMaxStringBytes = 256;
constexpr double kMaxCount = 1e18;  // bytes, cells, counts: anything larger is absurd

const char *const kPhases[] = {"waiting", "downloading", "loading", "ready", "failed"};

template <typename T>
json or_null(const std::optional<T> &v) {
    return v ? json(*v) : json(nullptr);
}

[[noreturn]] void bad(const std::string &field, const std::string &why) {
    throw Error(ErrorCode::kProtocol, "STATUS runtime." + field + ": " + why);
}

double number(const json &o, const char *field, double max, const std::string &path) {
    const auto it = o.find(field);
    if (it == o.end() || !it->is_number())
        bad(path + field, "missing or not a number");
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < 0 || v > max)
        bad(path + field, "out of range (" + std::to_string(v) + ")");
    return v;
}

std::optional<double> optional_number(const json &o, const char *field, double lo, double hi,
                                      const std::string &path) {
    const auto it = o.find(field);
    if (it == o.end() || it->is_null())
        return std::nullopt;
    if (!it->is_number())
        bad(path + field, "not a number");
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
        bad(path + field, "out of range (" + std::to_string(v) + ")");
    return v;
}

std::string text(const json &o, const char *field) {
    const auto it = o.find(field);
    if (it == o.end() || !it->is_string())
        bad(field, "missing or not a string");
    std::string s = it->get<std::string>();
    if (s.size() > kMaxStringBytes)
        bad(field, "longer than " + std::to_string(kMaxStringBytes) + " bytes");
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f)
            bad(field, "holds a control character");
    }
    return s;
}

json fence_counts_to_json(const FenceCounts &c) {
    json o = json::object();
    for (FenceReason r : {FenceReason::kStaleEpoch, FenceReason::kFutureEpoch,
                          FenceReason::kReplayed, FenceReason::kUnknownRequest}) {
        o[fence_reason_name(r)] = c.of(r);
    }
    return o;
}

json stage_to_json(const StageRuntime &s) {
    return {{"first", s.range.first},
            {"last", s.range.last},
            {"loaded", s.loaded},
            {"load_progress", s.load_progress},
            {"ubatches", s.ubatches},
            {"compute_seconds", s.compute_seconds},
            {"hops", s.hops},
            {"hop_seconds", s.hop_seconds},
            {"kv_used_cells", s.kv_used_cells},
            {"kv_size_cells", s.kv_size_cells},
            {"weights_bytes", s.weights_bytes},
            {"kv_bytes", s.kv_bytes},
            {"tokens_per_s", s.tokens_per_s},
            {"next_link_down_ms", s.next_link_down_ms}};
}

StageRuntime stage_from_json(const json &o) {
    if (!o.is_object())
        bad("stage", "not an object");
    const std::string p = "stage.";
    StageRuntime s;
    s.range.first = static_cast<uint32_t>(number(o, "first", 1 << 20, p));
    s.range.last = static_cast<uint32_t>(number(o, "last", 1 << 20, p));
    if (s.range.last < s.range.first)
        bad("stage.last", "below stage.first");
    const auto loaded = o.find("loaded");
    if (loaded == o.end() || !loaded->is_boolean())
        bad("stage.loaded", "missing or not a boolean");
    s.loaded = loaded->get<bool>();
    s.load_progress = number(o, "load_progress", 1, p);
    s.ubatches = static_cast<uint64_t>(number(o, "ubatches", kMaxCount, p));
    s.compute_seconds = number(o, "compute_seconds", 1e12, p);
    s.hops = static_cast<uint64_t>(number(o, "hops", kMaxCount, p));
    s.hop_seconds = number(o, "hop_seconds", 1e12, p);
    s.kv_size_cells = static_cast<uint32_t>(number(o, "kv_size_cells", 1u << 30, p));
    s.kv_used_cells = static_cast<uint32_t>(number(o, "kv_used_cells", s.kv_size_cells, p));
    s.weights_bytes = static_cast<uint64_t>(number(o, "weights_bytes", kMaxCount, p));
    s.kv_bytes = static_cast<uint64_t>(number(o, "kv_bytes", kMaxCount, p));
    s.tokens_per_s = number(o, "tokens_per_s", 1e9, p);
    // absent in reports of workers before recovery
    if (auto v = optional_number(o, "next_link_down_ms", 0, 3.6e9, p))
        s.next_link_down_ms = static_cast<int64_t>(*v);
    return s;
}

}  // namespace

// ---- StageMeter -----------------------------------------------------------

void StageMeter::loading(LayerRange range, double progress) {
    std::lock_guard<std::mutex> lock(mutex_);
    r_.range = range;
    r_.loaded = false;
    r_.load_progress = std::clamp(progress, 0.0, 1.0);
}

void StageMeter::loaded(const Stage &stage) {
    std::lock_guard<std::mutex> lock(mutex_);
    r_.range = stage.range();
    r_.loaded = true;
    r_.load_progress = 1;
    r_.kv_used_cells = stage.kv_used();
    r_.kv_size_cells = stage.kv_size();
    r_.weights_bytes = stage.weight_bytes();
    r_.kv_bytes = stage.kv_bytes();
}

void StageMeter::unloaded() {
    std::lock_guard<std::mutex> lock(mutex_);
    r_.range = {};
    r_.loaded = false;
    r_.load_progress = 0;
    r_.kv_used_cells = r_.kv_size_cells = 0;
    r_.weights_bytes = r_.kv_bytes = 0;
}

void StageMeter::record_step(const Stage &stage, double seconds, uint32_t n_outputs) {
    const int64_t now = now_us();
    std::lock_guard<std::mutex> lock(mutex_);
    ++r_.ubatches;
    r_.compute_seconds += seconds;
    r_.kv_used_cells = stage.kv_used();
    if (n_outputs > 0)
        recent_.emplace_back(now, n_outputs);
    while (!recent_.empty() && recent_.front().first < now - kRateWindowUs)
        recent_.pop_front();
}

void StageMeter::record_hop(double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++r_.hops;
    r_.hop_seconds += seconds;
}

void StageMeter::record_kv(const Stage &stage) {
    std::lock_guard<std::mutex> lock(mutex_);
    r_.kv_used_cells = stage.kv_used();
}

void StageMeter::record_link(int64_t down_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    r_.next_link_down_ms = down_ms;
}

StageRuntime StageMeter::snapshot() const {
    const int64_t now = now_us();
    std::lock_guard<std::mutex> lock(mutex_);
    StageRuntime s = r_;
    uint64_t n = 0;
    for (const auto &[t, k] : recent_) {
        if (t >= now - kRateWindowUs)
            n += k;
    }
    s.tokens_per_s = n / (kRateWindowUs / 1e6);
    return s;
}

// ---- NodeRuntime ----------------------------------------------------------

void probe_node_runtime(NodeRuntime &r) {
    if (std::optional<std::string> host = host_name())
        r.host = *host;
    if (ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        r.device = ggml_backend_dev_description(dev);
    const OsInfo os = probe_os();
    r.os = os.os;
    r.arch = os.arch;
    r.rss_bytes = current_rss_bytes();
    r.available_bytes = probe_mem_available_bytes();
    r.battery = probe_battery_sysfs();
    r.temperature_c = probe_temperature_c();
    for (std::string *s : {&r.host, &r.device, &r.os, &r.arch}) {
        if (s->size() > kMaxStringBytes)
            s->resize(kMaxStringBytes);
    }
}

std::string node_runtime_to_json(const NodeRuntime &r) {
    json battery = nullptr;
    if (r.battery)
        battery = {{"percent", r.battery->percent}, {"charging", r.battery->charging}};
    const json rt = {{"phase", r.phase},
                     {"progress", r.progress},
                     {"plan_epoch", r.plan_epoch},
                     {"stage", stage_to_json(r.stage)},
                     {"host", r.host},
                     {"device", r.device},
                     {"os", r.os},
                     {"arch", r.arch},
                     {"rss_bytes", r.rss_bytes},
                     {"available_bytes", or_null(r.available_bytes)},
                     {"battery", battery},
                     {"temperature_c", or_null(r.temperature_c)},
                     {"error", r.error.substr(0, kMaxStringBytes)},
                     {"echo_ns", r.echo_ns},
                     {"hold_us", r.hold_us},
                     {"dropped", fence_counts_to_json(r.dropped)},
                     {"threads",
                      {{"n", r.threads.n},
                       {"cores", r.threads.cores.substr(0, kMaxStringBytes)},
                       {"thermal_limited", r.threads.thermal_limited},
                       {"gpu", r.threads.gpu.substr(0, kMaxStringBytes)}}}};
    return json{{"runtime", rt}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

WireStatus worker_runtime_status(uint64_t echo_ns, std::chrono::steady_clock::time_point received,
                                 uint64_t assigned_epoch,
                                 std::optional<std::pair<uint64_t, uint64_t>> download,
                                 uint64_t loaded_epoch, const std::string &load_error,
                                 const StageRuntime &stage, const FenceCounts &dropped,
                                 const NodeThreads &threads) {
    NodeRuntime r;
    r.threads = threads;
    r.plan_epoch = assigned_epoch;
    r.stage = stage;
    if (assigned_epoch == 0) {
        r.phase = "waiting";
    } else if (download) {
        r.phase = "downloading";
        r.progress = download->second ? static_cast<double>(download->first) / download->second : 0;
    } else if (loaded_epoch == assigned_epoch) {
        r.phase = "ready";
        r.progress = 1;
    } else if (!load_error.empty()) {
        r.phase = "failed";
        r.error = load_error;
    } else {
        r.phase = "loading";
        r.progress = stage.load_progress;
    }
    r.progress = std::clamp(r.progress, 0.0, 1.0);
    probe_node_runtime(r);
    r.echo_ns = echo_ns;
    r.dropped = dropped;
    r.hold_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - received)
                    .count();
    return WireStatus{node_runtime_to_json(r)};
}

std::optional<NodeRuntime> node_runtime_from_json(const std::string &text_json) {
    const json doc = json::parse(text_json, nullptr, false);
    if (doc.is_discarded())
        throw Error(ErrorCode::kProtocol, "STATUS is not valid JSON");
    if (!doc.is_object())
        throw Error(ErrorCode::kProtocol, "STATUS is not a JSON object");
    const auto it = doc.find("runtime");
    if (it == doc.end())
        return std::nullopt;
    const json &o = *it;
    if (!o.is_object())
        bad("", "not an object");
    NodeRuntime r;
    r.phase = text(o, "phase");
    bool known = false;
    for (const char *p : kPhases)
        known = known || r.phase == p;
    if (!known)
        bad("phase", "unknown value '" + r.phase + "'");
    r.progress = number(o, "progress", 1, "");
    r.plan_epoch = static_cast<uint64_t>(number(o, "plan_epoch", kMaxCount, ""));
    const auto st = o.find("stage");
    if (st == o.end())
        bad("stage", "missing");
    r.stage = stage_from_json(*st);
    r.host = text(o, "host");
    r.device = text(o, "device");
    r.os = text(o, "os");
    r.arch = text(o, "arch");
    r.rss_bytes = static_cast<uint64_t>(number(o, "rss_bytes", kMaxCount, ""));
    if (auto v = optional_number(o, "available_bytes", 0, kMaxCount, ""))
        r.available_bytes = static_cast<uint64_t>(*v);
    const auto b = o.find("battery");
    if (b != o.end() && !b->is_null()) {
        if (!b->is_object())
            bad("battery", "not an object");
        BatteryState bs;
        bs.percent = number(*b, "percent", 100, "battery.");
        const auto ch = b->find("charging");
        if (ch == b->end() || !ch->is_boolean())
            bad("battery.charging", "missing or not a boolean");
        bs.charging = ch->get<bool>();
        r.battery = bs;
    }
    r.temperature_c = optional_number(o, "temperature_c", -60, 200, "");
    r.error = text(o, "error");
    r.echo_ns = static_cast<uint64_t>(number(o, "echo_ns", 1.8e19, ""));
    r.hold_us = static_cast<int64_t>(number(o, "hold_us", 3.6e9, ""));
    // absent in reports of workers before thread placement
    if (const auto t = o.find("threads"); t != o.end() && !t->is_null()) {
        if (!t->is_object())
            bad("threads", "not an object");
        r.threads.n = static_cast<int>(number(*t, "n", 4096, "threads."));
        r.threads.cores = text(*t, "cores");
        const auto lim = t->find("thermal_limited");
        if (lim == t->end() || !lim->is_boolean())
            bad("threads.thermal_limited", "missing or not a boolean");
        r.threads.thermal_limited = lim->get<bool>();
        if (t->contains("gpu"))  // absent in reports of workers before GPU offload
            r.threads.gpu = text(*t, "gpu");
    }
    // absent in reports of workers before fencing
    if (const auto d = o.find("dropped"); d != o.end() && !d->is_null()) {
        if (!d->is_object())
            bad("dropped", "not an object");
        r.dropped.stale_epoch =
            static_cast<uint64_t>(number(*d, "stale_epoch", kMaxCount, "dropped."));
        r.dropped.future_epoch =
            static_cast<uint64_t>(number(*d, "future_epoch", kMaxCount, "dropped."));
        r.dropped.replayed = static_cast<uint64_t>(number(*d, "replayed", kMaxCount, "dropped."));
        r.dropped.unknown_request =
            static_cast<uint64_t>(number(*d, "unknown_request", kMaxCount, "dropped."));
    }
    return r;
}

// ---- NodeReports ----------------------------------------------------------

std::optional<NodeRuntime> NodeReports::on_status(uint32_t node_id, const std::string &name,
                                                  const std::string &key,
                                                  const std::string &json_text) {
    std::optional<NodeRuntime> rt;
    try {
        rt = node_runtime_from_json(json_text);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: dropped the status of node %u (%s): %s", node_id, name.c_str(),
                        e.what());
        return std::nullopt;
    }
    if (!rt)
        return std::nullopt;
    std::optional<double> rtt;
    if (rt->echo_ns > 0) {
        const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count();
        const double ms = (now_ns - static_cast<int64_t>(rt->echo_ns)) / 1e6 -
                          static_cast<double>(rt->hold_us) / 1e3;
        if (ms >= 0 && ms < 60'000)
            rtt = ms;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    NodeReport &n = nodes_[node_id];
    n.node_id = node_id;
    n.name = name;
    n.key = key;
    n.runtime = *rt;
    if (rtt)
        n.rtt_ms = rtt;
    n.received_us = now_us();
    return rt;
}

void NodeReports::on_lost(uint32_t node_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    nodes_.erase(node_id);
}

std::vector<NodeReport> NodeReports::all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<NodeReport> out;
    out.reserve(nodes_.size());
    for (const auto &[id, n] : nodes_)
        out.push_back(n);
    return out;
}

}  // namespace colony
