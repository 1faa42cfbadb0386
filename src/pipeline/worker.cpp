#include "pipeline/worker.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>
#include <tuple>

#include "cluster/cpu_placement.h"
#include "cluster/device_probe.h"
#include "net/hash.h"
#include "net/pairing_code.h"
#include "net/transport.h"
#include "net/zap.h"
#include "nlohmann/json.hpp"
#include "pipeline/logits_dump.h"
#include "pipeline/node_status.h"
#include "pipeline/shard_build.h"
#include "pipeline/shard_cache.h"
#include "pipeline/shard_verify.h"
#include "pipeline/worker_data.h"
#include "pipeline/worker_status.h"
#include "runtime/gpu_device.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/host.h"
#include "util/log.h"
#include "util/version.h"

namespace colony {

namespace {

constexpr int kPollMs = 50;
constexpr int kJoinRetryMs = 2000;
constexpr int kJoinWarnMs = 10000;
constexpr int kAuthGraceMs = 3000;  // a refused token is retried this long
constexpr int kAuthRetryMs = 500;

std::string random_hex(size_t n) {
    std::random_device rd;
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += "0123456789abcdef"[rd() % 16];
    return s;
}

uint64_t free_memory_bytes() {
    const long pages = sysconf(_SC_AVPHYS_PAGES);
    const long size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

}  // namespace

Worker::Worker(WorkerOptions opts) : opts_(std::move(opts)), ctx_(1) {
    coordinator_ = parse_host_port(opts_.coordinator, 7411);
    if (opts_.name.empty())
        opts_.name = host_name().value_or("worker");
    if (opts_.n_threads <= 0) {  // the default placement: the big cores (cpu_placement.h)
        const CpuPlacement pl = place_threads(probe_cpu_topology(), CpuOptions{});
        opts_.n_threads = pl.n_threads;
        opts_.cpu = CpuAffinity{pl.cores, pl.strict, pl.prio};
    }
    if (!opts_.insecure) {
        token_ = join_token_parse(opts_.token);
        coordinator_key_z85_ = token_->coordinator_public_z85;
    }
    node_keys_ = load_or_create_node_keys(opts_.config_dir);
    if (!opts_.insecure)
        pairing_code_ = colony::pairing_code(coordinator_key_z85_, node_keys_.public_z85);
    if (!opts_.insecure)
        zap_ = std::make_unique<ZapHandler>(ctx_);
    data_ = std::make_unique<WorkerData>(
        ctx_, zap_.get(), node_keys_, coordinator_key_z85_,
        WorkerStageOptions{opts_.n_threads, opts_.cpu, opts_.gpu, opts_.type_k, opts_.type_v,
                           opts_.use_mmap, opts_.invariance},
        tcp_endpoint(opts_.data_host, opts_.data_port));
    data_->set_slowdown(opts_.debug_slowdown);
    if (!opts_.debug_logits_file.empty())
        data_->set_logits_dump(std::make_shared<LogitsDump>(opts_.debug_logits_file));
    announced_data_endpoint_ = announced_endpoint(data_->endpoint());
    std::optional<uint64_t> limit;
    if (opts_.mem_limit_gib > 0)
        limit = static_cast<uint64_t>(opts_.mem_limit_gib * (1ull << 30));
    base_profile_ = probe_device_profile("/", limit);
    base_profile_.node_id = key_fingerprint(node_keys_.public_z85);
    base_profile_.name = opts_.name;
    base_profile_.n_threads = opts_.n_threads;
    base_profile_.cpu_cores = format_cpu_list(opts_.cpu.cores);
    thermal_.emplace(opts_.n_threads, opts_.max_temp_c);
    base_profile_.backend = "CPU";
    if (opts_.gpu.n_gpu_layers != 0) {  // fail now, not at the first assignment
        opts_.gpu.device = ggml_backend_dev_name(find_gpu_device(opts_.gpu.device));
        base_profile_.backend = opts_.gpu.device + "+CPU";
    }
}

Worker::~Worker() {
    if (data_)
        data_->stop();
    monitor_.reset();
    control_.reset();
    data_.reset();
    zap_.reset();
    ctx_.shutdown();
}

uint64_t Worker::ubatches() const {
    return data_->status().ubatches;
}
uint64_t Worker::data_bytes_sent() const {
    return data_->status().bytes_out;
}
FenceCounts Worker::dropped_messages() const {
    FenceCounts c = fence_.counts();
    c += data_->dropped_messages();
    return c;
}

void Worker::connect_control() {
    monitor_.reset();
    control_.reset();
    control_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    configure_socket(*control_);
    control_->set(zmq::sockopt::immediate, 1);  // no JOIN queued for a connection not yet up
    control_->set(zmq::sockopt::routing_id,
                  "w-" + key_fingerprint(node_keys_.public_z85) + "-" + random_hex(8));
    if (opts_.insecure) {
        configure_insecure(*control_, "control client");
    } else {
        configure_curve_client(*control_, coordinator_key_z85_, token_->join_keys);
    }
    const std::string monitor_ep = "inproc://colony-worker-control-" + random_hex(8);
    if (zmq_socket_monitor(control_->handle(), monitor_ep.c_str(),
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0) {
        throw Error(ErrorCode::kInternal, "cannot monitor the control socket");
    }
    monitor_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair);
    monitor_->connect(monitor_ep);
    control_->connect(tcp_endpoint(coordinator_.host, coordinator_.port));
    sender_.renew();  // a new connection: a new session for the coordinator's fence
    state_ = State::kJoining;
    last_join_sent_ = {};
}

void Worker::run(const std::atomic<bool> &stop) {
    data_->start();
    connect_control();
    joining_since_ = clock::now();
    COLONY_LOG_INFO("worker '%s': joining %s:%u (node key %s, pairing code %s, data %s)",
                    opts_.name.c_str(), coordinator_.host.c_str(), coordinator_.port,
                    key_fingerprint(node_keys_.public_z85).c_str(),
                    pairing_code_.empty() ? "-" : pairing_code_.c_str(),
                    announced_data_endpoint_.c_str());
    while (!stop.load()) {
        zmq::pollitem_t items[] = {{control_->handle(), 0, ZMQ_POLLIN, 0},
                                   {monitor_->handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 2, std::chrono::milliseconds(kPollMs));
        for (;;) {
            ReceivedMessage rm = recv_message(*control_, {}, zmq::recv_flags::dontwait);
            if (rm.status == RECV_STATUS_TIMEOUT)
                break;
            if (rm.status == RECV_STATUS_OK)
                handle(rm);
        }
        check_monitor();
        tick();
    }
}

void Worker::send(WireBody body) {
    WireMessage msg;
    std::tie(msg.session, msg.sequence) = sender_.next();
    msg.body = std::move(body);
    try {
        if (!send_message(*control_, msg, {}, {}, zmq::send_flags::dontwait)) {
            COLONY_LOG_DEBUG("worker: %s not sent: no connection to the coordinator",
                             wire_type_name(wire_message_type(msg)));
        }
    } catch (const Error &e) {
        COLONY_LOG_WARN("worker: %s", e.what());
    }
}

void Worker::handle(const ReceivedMessage &rm) {
    const WireType type = wire_message_type(rm.message);
    // Fencing (message_fence.h): the DEALER's only peer is the coordinator;
    // its sequence must grow per session, and an ASSIGN must not be older
    // than the newest one (epoch 0: a probe, outside any plan).
    const WireMessage &msg = rm.message;
    const auto *assign = std::get_if<WireAssign>(&msg.body);
    const FenceReason verdict =
        assign && assign->plan_epoch != 0
            ? fence_.admit("coordinator", msg.session, msg.sequence, assign->plan_epoch,
                           assign_epoch_, EpochRule::kNotOlder)
            : fence_.admit("coordinator", msg.session, msg.sequence);
    if (verdict != FenceReason::kAccepted) {
        COLONY_LOG_WARN("worker: dropped %s from the coordinator (%s, session %08x, sequence %u)",
                        wire_type_name(type), fence_reason_name(verdict), msg.session,
                        msg.sequence);
        return;
    }
    last_seen_ = clock::now();
    switch (type) {
        case WIRE_TYPE_JOIN_ACCEPT: {
            if (state_ != State::kJoining)
                break;
            const auto &acc = std::get<WireJoinAccept>(rm.message.body);
            state_ = State::kMember;
            node_id_ = acc.node_id;
            assign_epoch_ = 0;  // a coordinator that restarted counts its epochs afresh
            heartbeat_interval_ms_ = std::clamp<uint32_t>(acc.heartbeat_interval_ms, 100, 10000);
            COLONY_LOG_INFO("worker: joined %s:%u as node %u%s", coordinator_.host.c_str(),
                            coordinator_.port, node_id_,
                            pairing_pending_ ? " (pairing confirmed)" : "");
            pairing_pending_ = false;
            break;
        }
        case WIRE_TYPE_JOIN_REJECT:
            // a refused token or node key, or one revoked while we were a member
            throw Error(
                ErrorCode::kUnauthorized,
                std::string(state_ == State::kMember ? "the coordinator revoked this worker: "
                                                     : "the coordinator refused this worker: ") +
                    std::get<WireJoinReject>(rm.message.body).reason);
        case WIRE_TYPE_HEARTBEAT:
            if (state_ == State::kMember) {
                // the run-time report for the coordinator's cluster view (node_status.h)
                const WorkerData::Status st = data_->status();
                std::optional<std::pair<uint64_t, uint64_t>> fetched;
                if (download_)
                    fetched = std::make_pair(download_->received(), download_->total());
                send(worker_runtime_status(
                    std::get<WireHeartbeat>(rm.message.body).timestamp_ns, last_seen_,
                    assign_ ? assign_->plan_epoch : 0, fetched, st.loaded_epoch, st.error,
                    data_->stage_runtime(), dropped_messages(),
                    NodeThreads{thermal_->threads(), format_cpu_list(opts_.cpu.cores),
                                thermal_->limiting(), gpu_label(opts_.gpu)}));
            }
            break;
        case WIRE_TYPE_ASSIGN:
            if (state_ == State::kMember) {
                assign_epoch_ = std::max(assign_epoch_, assign->plan_epoch);
                on_assign(*assign);
            }
            break;
        case WIRE_TYPE_SHARD_CHUNK:
            on_chunk(std::get<WireShardChunk>(rm.message.body));
            break;
        case WIRE_TYPE_SHARD_END:
            on_shard_end(std::get<WireShardEnd>(rm.message.body));
            break;
        case WIRE_TYPE_ERROR: {
            const auto &err = std::get<WireError>(rm.message.body);
            if (err.code == ErrorCode::kUnavailable && state_ == State::kMember) {
                rejoin("the coordinator does not know this worker (" + err.message + ")");
            } else if (err.code == ErrorCode::kUnauthorized && state_ == State::kJoining) {
                // --confirm-pairing: our JOIN waits for a person (repeated every 2 s)
                if (!pairing_pending_) {
                    pairing_pending_ = true;
                    COLONY_LOG_WARN(
                        "worker: the coordinator waits for a person to confirm this node: check "
                        "that it shows pairing code %s, then run there: colony node approve %s",
                        pairing_code_.c_str(), pairing_code_.c_str());
                }
            } else {
                COLONY_LOG_WARN("worker: the coordinator reports: %s", err.message.c_str());
            }
            break;
        }
        default:
            COLONY_LOG_WARN("worker: dropped unexpected %s on the control socket",
                            wire_type_name(type));
    }
}

void Worker::hand_to_data_plane(const std::filesystem::path &shard) {
    const WireAssign &a = *assign_;
    WorkerAssignment w;
    w.assign = a;
    w.shard_path = shard;
    w.next_endpoint = resolve_endpoint(a.next_endpoint, coordinator_.host);
    if (!opts_.insecure) {
        if (a.next_key == WireKey{}) {
            throw Error(ErrorCode::kProtocol, "ASSIGN without the next stage's key");
        }
        w.next_key_z85 = curve_key_to_z85(a.next_key);
        if (a.prev_key != WireKey{})
            w.prev_key_z85 = curve_key_to_z85(a.prev_key);
    }
    data_->assign(std::move(w));
}

void Worker::check_monitor() {
    for (;;) {
        zmq::message_t event;
        if (!monitor_->recv(event, zmq::recv_flags::dontwait))
            return;
        zmq::message_t address;
        if (event.more())
            (void)monitor_->recv(address, zmq::recv_flags::none);
        if (event.size() < 6)
            continue;
        uint16_t id = 0;
        uint32_t value = 0;
        std::memcpy(&id, event.data(), sizeof id);
        std::memcpy(&value, static_cast<const uint8_t *>(event.data()) + 2, sizeof value);
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            // A token created a moment ago may not be loaded yet: retry briefly.
            if (!auth_failed_since_) {
                auth_failed_since_ = clock::now();
                COLONY_LOG_WARN(
                    "worker: the coordinator refused the join token; retrying for "
                    "%d s",
                    kAuthGraceMs / 1000);
            }
            if (ms_since(*auth_failed_since_) >= kAuthGraceMs) {
                throw Error(ErrorCode::kUnauthorized,
                            "the coordinator at " + opts_.coordinator +
                                " refused the join token (ZAP status " + std::to_string(value) +
                                "): it was revoked, or this coordinator never issued it");
            }
            reconnect_at_ = clock::now() + std::chrono::milliseconds(kAuthRetryMs);
            return;
        }
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            char code[16];
            std::snprintf(code, sizeof code, "0x%08x", value);  // ZMQ_PROTOCOL_ERROR_*
            throw Error(ErrorCode::kUnauthorized,
                        "the handshake with the coordinator at " + opts_.coordinator +
                            " failed (ZMTP error " + code +
                            "): one side uses --insecure and the other does not, or the "
                            "token belongs to another coordinator");
        }
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            COLONY_LOG_DEBUG("worker: secure connection to the coordinator is up");
            auth_failed_since_.reset();
        }
    }
}

void Worker::tick() {
    if (reconnect_at_ && clock::now() >= *reconnect_at_) {
        reconnect_at_.reset();
        connect_control();  // a fresh socket: libzmq gives up on a refused one
        return;
    }
    if (state_ == State::kJoining) {
        if (ms_since(last_join_sent_) >= kJoinRetryMs) {
            last_join_sent_ = clock::now();
            WireJoin j;
            j.node_name = opts_.name;
            j.node_key = curve_key_from_z85(node_keys_.public_z85);
            j.software_version = kSoftwareVersion;
            j.free_memory_bytes = free_memory_bytes();
            j.mem_limit_bytes = static_cast<uint64_t>(opts_.mem_limit_gib * (1ull << 30));
            j.n_threads = static_cast<uint32_t>(opts_.n_threads);
            utsname u{};
            if (uname(&u) == 0) {
                j.os = u.sysname;
                j.arch = u.machine;
            }
            j.backend = opts_.gpu.n_gpu_layers != 0 ? opts_.gpu.device : "cpu";
            j.data_endpoint = announced_data_endpoint_;
            if (!opts_.cache_dir.empty())
                j.cached_shards =
                    list_cached_shards(opts_.cache_dir, WireLimits{}.max_cached_shards);
            send(j);
        }
        const int64_t waited = ms_since(joining_since_);
        if (opts_.join_timeout_ms > 0 && waited > opts_.join_timeout_ms && pairing_pending_) {
            throw Error(ErrorCode::kUnavailable,
                        "the coordinator at " + opts_.coordinator +
                            " did not confirm the pairing (code " + pairing_code_ + ") within " +
                            std::to_string(opts_.join_timeout_ms / 1000.0).substr(0, 4) + " s");
        }
        if (opts_.join_timeout_ms > 0 && waited > opts_.join_timeout_ms) {
            throw Error(ErrorCode::kUnavailable,
                        "no answer from the coordinator at " + opts_.coordinator + " within " +
                            std::to_string(opts_.join_timeout_ms / 1000.0).substr(0, 4) +
                            " s: is it running there, and is the token its own?");
        }
        if (waited / kJoinWarnMs != (waited - kPollMs) / kJoinWarnMs && waited >= kJoinWarnMs &&
            pairing_pending_) {
            COLONY_LOG_WARN("worker: still waiting for the pairing (code %s) to be confirmed",
                            pairing_code_.c_str());
        } else if (waited / kJoinWarnMs != (waited - kPollMs) / kJoinWarnMs &&
                   waited >= kJoinWarnMs) {
            COLONY_LOG_WARN("worker: still no answer from the coordinator at %s after %lld s",
                            opts_.coordinator.c_str(), static_cast<long long>(waited / 1000));
        }
        return;
    }
    if (ms_since(last_heartbeat_) >= heartbeat_interval_ms_) {
        last_heartbeat_ = clock::now();
        send(WireHeartbeat{static_cast<uint64_t>(last_heartbeat_.time_since_epoch().count()),
                           ++heartbeats_});
    }
    if (ms_since(last_seen_) > opts_.coordinator_timeout_ms) {
        rejoin("the coordinator sent nothing for " + std::to_string(ms_since(last_seen_)) + " ms");
        return;
    }
    poll_debug_control();
    if (verify_ && verify_->done())
        on_verified();
    if (build_ && build_->done())
        on_shard_built();
    const WorkerData::Status st = data_->status();
    if (assign_ && !ready_sent_ && !download_ && !verify_ && !build_) {
        const bool measured = st.probe && st.probe->epoch == assign_->plan_epoch &&
                              st.probe->first == assign_->layer_first &&
                              st.probe->last == assign_->layer_last;
        if (measured && assign_->plan_epoch == 0) {
            // A probe assignment: the coordinator only wants the measurement.
            send_profile_status(st);
            ready_sent_ = true;
            COLONY_LOG_INFO("worker: measured on a probe shard of layers [%u,%u)",
                            assign_->layer_first, assign_->layer_last);
        } else if (measured && st.loaded_epoch == assign_->plan_epoch) {
            send_profile_status(st);  // before READY: the planner reads it first
            send(WireReady{assign_->plan_epoch, assign_->layer_first, assign_->layer_last});
            ready_sent_ = true;
            COLONY_LOG_INFO("worker: ready with layers [%u,%u)", assign_->layer_first,
                            assign_->layer_last);
        } else if (!st.error.empty()) {
            send(WireError{ErrorCode::kResource, "cannot load the stage: " + st.error});
            throw Error(ErrorCode::kResource, "cannot load the assigned stage: " + st.error);
        }
    }
    if (ready_sent_ && st.probe && ms_since(last_status_) >= opts_.status_interval_ms)
        send_profile_status(st);
}

namespace {

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

void Worker::apply_thermal_guard(DeviceProfile &profile) {
    const int before = thermal_->threads();
    const int n = thermal_->update(profile.temperature_c);
    if (n != before) {
        COLONY_LOG_WARN("worker: %.0f °C against --max-temp %.0f °C: %d -> %d compute threads",
                        profile.temperature_c.value_or(0), opts_.max_temp_c, before, n);
        data_->set_thread_limit(thermal_->limiting() ? n : 0);
    }
    profile.n_threads = n;
}

void Worker::send_profile_status(const WorkerData::Status &st) {
    last_status_ = clock::now();
    const WorkerData::StageProbe &p = *st.probe;
    const double layers = std::max<double>(p.computed, 1);  // blocks it computed
    WorkerStatus ws;
    ws.profile = base_profile_;
    // Live values: memory (the stage's own bytes count as available to it),
    // battery (sysfs only: no subprocess on the control thread), temperature.
    if (const auto avail = probe_mem_available_bytes()) {
        uint64_t mem = *avail + p.stage_bytes;
        if (opts_.mem_limit_gib > 0)
            mem =
                std::min<uint64_t>(mem, static_cast<uint64_t>(opts_.mem_limit_gib * (1ull << 30)));
        ws.profile.mem_available_bytes = mem;
    }
    if (auto battery = probe_battery_sysfs())
        ws.profile.battery = battery;
    ws.profile.temperature_c = probe_temperature_c();
    apply_thermal_guard(ws.profile);
    // With --mem-limit the limit is what colony may use; otherwise keep a
    // margin of MemAvailable for the system (10 %, at most 512 MiB).
    ws.profile.headroom_bytes =
        opts_.mem_limit_gib > 0
            ? 0
            : std::min<uint64_t>(ws.profile.mem_available_bytes / 10, 512ull << 20);
    ws.profile.decode_ms_per_layer = std::max(p.decode_ms / layers, 1e-6);
    ws.profile.prefill_ms_per_layer_per_token = std::max(p.prefill_ms_per_token / layers, 1e-6);
    ws.profile.slowdown_factor = data_->slowdown();
    // the planner counts this node's KV cache with its own types (plan_cost.h)
    ws.profile.kv_bytes_per_token_per_layer = p.kv_bytes_per_token_per_layer;
    StageReport r;
    r.epoch = p.epoch;
    r.first = p.first;
    r.last = p.last;
    r.is_last = p.is_last;
    r.probe_decode_ms = p.decode_ms;
    r.probe_prefill_ms_per_token = p.prefill_ms_per_token;
    const std::vector<double> samples = data_->take_decode_samples();
    if (!samples.empty()) {
        r.recent_decode_ms = median_of(samples);
        r.recent_samples = static_cast<uint32_t>(samples.size());
    }
    ws.stage = r;
    ws.shard_throughput_bytes_per_s = shard_throughput_;
    ws.slowdown = data_->slowdown();
    try {
        send(WireStatus{worker_status_to_json(ws).dump()});
    } catch (const Error &e) {
        COLONY_LOG_WARN("worker: cannot report the device profile: %s", e.what());
    }
}

void Worker::poll_debug_control() {
    if (opts_.debug_control_file.empty() || ms_since(last_control_poll_) < 1000)
        return;
    last_control_poll_ = clock::now();
    std::ifstream in(opts_.debug_control_file);
    double factor = 0;
    if (!in || !(in >> factor))
        return;  // absent or empty: keep the current factor
    if (!(factor >= 1.0) || factor > 1000) {
        COLONY_LOG_WARN("worker: %s holds %g; a slow-down factor must be in [1, 1000]",
                        opts_.debug_control_file.c_str(), factor);
        return;
    }
    if (factor != data_->slowdown()) {
        COLONY_LOG_INFO("worker: debug slow-down %.2f -> %.2f (%s)", data_->slowdown(), factor,
                        opts_.debug_control_file.c_str());
        data_->set_slowdown(factor);
    }
}

void Worker::rejoin(const std::string &why) {
    COLONY_LOG_WARN("worker: %s; joining again", why.c_str());
    data_->unassign();
    download_.reset();
    verify_.reset();
    build_.reset();
    assign_.reset();
    ready_sent_ = false;
    connect_control();
    joining_since_ = clock::now();
}

}  // namespace colony
