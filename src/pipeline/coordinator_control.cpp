#include "pipeline/coordinator_control.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "cluster/model_shape.h"
#include "cluster/plan_table.h"
#include "model/gguf_file.h"
#include "net/admission.h"
#include "net/hash.h"
#include "net/transport.h"
#include "pipeline/cached_assignment.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator_probe.h"
#include "pipeline/endpoint.h"
#include "pipeline/layer_split.h"
#include "pipeline/measured_planner.h"
#include "pipeline/node_status.h"
#include "pipeline/shard_service.h"
#include "pipeline/worker_status.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kPollMs = 50;
constexpr int kTokenReloadMs = 1000;
constexpr int kPlanRetryMs = 5000;
constexpr int kReplanCheckMs = 250;
constexpr int kSpareReprobeMs = 60000;  // a spare measures itself again this often
constexpr int kLocalSampleMs = 2000;    // stage 0's decode times, as a worker's STATUS interval

int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
}

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

wire_key raw_key(const std::string &z85) {
    return z85.empty() ? wire_key{} : curve_key_from_z85(z85);
}

std::string host_name() {
    char buf[256] = {};
    return gethostname(buf, sizeof(buf) - 1) == 0 ? std::string(buf) : std::string("coordinator");
}

ggml_type ggml_type_of(wire_dtype d) {
    switch (d) {
        case WIRE_DTYPE_F32:
            return GGML_TYPE_F32;
        case WIRE_DTYPE_Q8_0:
            return GGML_TYPE_Q8_0;
        default:
            return GGML_TYPE_F16;
    }
}

std::string ms_text(std::optional<double> v) {
    if (!v || !std::isfinite(*v))
        return "none";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f ms", *v);
    return buf;
}

}  // namespace

CoordinatorControl::CoordinatorControl(zmq::context_t &ctx, const CoordinatorOptions &opts,
                                       const PlannedModel &model, const curve_keypair &node_keys,
                                       admission_control *admission, ShardService &shards,
                                       ClusterState &state, std::string data_endpoint)
    : ctx_(ctx),
      opts_(opts),
      model_(model),
      node_keys_(node_keys),
      admission_(admission),
      shards_(shards),
      state_(state),
      data_endpoint_(std::move(data_endpoint)),
      router_(ctx, zmq::socket_type::router) {
    if (!opts_.split.empty()) {
        manual_split_ = parse_layer_split(opts_.split, model_.hp.n_layer);
        if (manual_split_->size() != opts_.workers_expected + 1) {
            throw Error(ErrorCode::kInvalidArgument,
                        "--split has " + std::to_string(manual_split_->size()) +
                            " ranges; with --workers-expected " +
                            std::to_string(opts_.workers_expected) + " it needs " +
                            std::to_string(opts_.workers_expected + 1) +
                            " (the coordinator runs the first)");
        }
    }
    coordinator_id_ = key_fingerprint(node_keys_.public_z85);
    coordinator_name_ = opts_.node_name.empty() ? host_name() : opts_.node_name;
    if (opts_.measured_planner && !manual_split_) {
        // --split fixes the layout: no measured planning then.
        file_ = GgufFile::open(opts_.model_path);
        MeasuredPlannerConfig pc;
        pc.objective =
            opts_.throughput_objective ? PlanObjective::kThroughput : PlanObjective::kLatency;
        pc.replan.drift_threshold = opts_.replan_drift_threshold;
        pc.replan.drift_window_s = opts_.replan_window_s;
        pc.replan.cooldown_s = opts_.replan_cooldown_s;
        pc.replan.improvement_margin = opts_.replan_margin;
        // A sample is already the median of a STATUS interval's decode steps
        // (2 s by default): two of them within the window are enough.
        pc.replan.min_samples = 2;
        pc.min_battery_percent = opts_.min_battery_percent;
        ModelShape shape =
            model_shape_from_gguf(*file_, model_.hp, opts_.n_ctx_seq(), opts_.n_parallel,
                                  GGML_TYPE_F16, GGML_TYPE_F16, ggml_type_of(opts_.wire_type));
        planner_ = std::make_unique<MeasuredPlanner>(std::move(shape), coordinator_id_, pc);
    }
    configure_socket(router_);
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.set(zmq::sockopt::router_handover, 1);
    router_.set(zmq::sockopt::sndtimeo, 1000);
    if (admission_) {
        // the ZAP handler lives in ctx (the coordinator created it before this socket)
        router_.set(zmq::sockopt::zap_domain, std::string(kZapDomainControl));
        router_.set(zmq::sockopt::curve_server, true);
        router_.set(zmq::sockopt::curve_secretkey, node_keys_.secret_z85);
    } else {
        configure_insecure(router_, "control server");
    }
    const std::string ep = tcp_endpoint(opts_.host, opts_.port);
    try {
        router_.bind(ep);
    } catch (const zmq::error_t &e) {
        throw Error(ErrorCode::kUnavailable,
                    "cannot bind the control socket " + ep + ": " + e.what());
    }
    port_ = parse_tcp_endpoint(socket_last_endpoint(router_)).port;
}

CoordinatorControl::~CoordinatorControl() {
    stop();
}

void CoordinatorControl::start() {
    started_unix_ms_ = unix_ms();
    publish_detail();
    if (opts_.workers_expected == 0) {
        make_plan("no workers expected: the coordinator runs every layer");
    } else {
        state_.invalidate("no workers", waiting_reason());
    }
    thread_ = std::thread([this] { run(); });
}

void CoordinatorControl::stop() {
    stop_.store(true);
    if (thread_.joinable())
        thread_.join();
}

void CoordinatorControl::run() {
    if (planner_)
        measure_self();
    while (!stop_.load()) {
        try {
            zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs));
            // Drain everything queued before judging anyone's silence.
            for (;;) {
                received_message rm = recv_message(router_, {}, zmq::recv_flags::dontwait);
                if (rm.status == RECV_STATUS_TIMEOUT)
                    break;
                if (rm.status == RECV_STATUS_OK)
                    handle(rm);
            }
            tick();
        } catch (const Error &e) {
            COLONY_LOG_ERROR("control: %s", e.what());
        } catch (const zmq::error_t &e) {
            if (e.num() == ETERM)
                return;
            COLONY_LOG_ERROR("control: %s", e.what());
        }
    }
}

CoordinatorControl::Member *CoordinatorControl::find_member(const std::string &routing_id) {
    for (Member &m : members_) {
        if (m.routing_id == routing_id)
            return &m;
    }
    return nullptr;
}

bool CoordinatorControl::send_to(const Member &m, wire_body body) {
    wire_message msg;
    msg.sequence = send_counter_++;
    msg.body = std::move(body);
    try {
        if (send_message(router_, msg, {}, m.routing_id))
            return true;
        COLONY_LOG_WARN("control: %s to node %u would block; dropped",
                        wire_type_name(wire_message_type(msg)), m.node_id);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: node %u: %s", m.node_id, e.what());
    }
    return false;
}

void CoordinatorControl::handle(const received_message &rm) {
    const wire_type type = wire_message_type(rm.message);
    if (type == WIRE_TYPE_JOIN) {
        on_join(rm, std::get<wire_join>(rm.message.body));
        return;
    }
    Member *m = find_member(rm.routing_id);
    if (!m || (admission_ && rm.user_id != m->token_id)) {
        if (type == WIRE_TYPE_HEARTBEAT || type == WIRE_TYPE_READY) {
            // e.g. a worker of a previous coordinator run: ask it to join again
            wire_message msg;
            msg.body = wire_error{ErrorCode::kUnavailable, "not a member: send JOIN"};
            try {
                (void)send_message(router_, msg, {}, rm.routing_id, zmq::send_flags::dontwait);
            } catch (const Error &) {
            }
        } else {
            COLONY_LOG_WARN("control: dropped %s from a peer that has not joined (%s)",
                            wire_type_name(type), rm.peer_address.c_str());
        }
        return;
    }
    m->last_seen = clock::now();
    switch (type) {
        case WIRE_TYPE_HEARTBEAT:
            break;
        case WIRE_TYPE_READY:
            on_ready(*m, std::get<wire_ready>(rm.message.body));
            break;
        case WIRE_TYPE_SHARD_REQUEST:
            on_shard_request(*m, std::get<wire_shard_request>(rm.message.body));
            break;
        case WIRE_TYPE_STATUS:
            COLONY_LOG_DEBUG("control: status of node %u: %s", m->node_id,
                             std::get<wire_status>(rm.message.body).json.c_str());
            // run-time report for the cluster view (node_status.h)
            state_.node_reports().on_status(m->node_id, m->join.node_name,
                                            key_fingerprint(m->key_z85),
                                            std::get<wire_status>(rm.message.body).json);
            // device profile for the planner (worker_status.h)
            on_status(*m, std::get<wire_status>(rm.message.body));
            break;
        case WIRE_TYPE_ERROR: {
            const auto &err = std::get<wire_error>(rm.message.body);
            COLONY_LOG_ERROR("control: worker %s (node %u) reports: %s", m->join.node_name.c_str(),
                             m->node_id, err.message.c_str());
            if (m->stage >= 0 || m->probing) {
                lose_member(static_cast<size_t>(m - members_.data()),
                            "worker " + m->join.node_name + " failed: " + err.message);
            }
            break;
        }
        default:
            COLONY_LOG_WARN("control: dropped unexpected %s from node %u", wire_type_name(type),
                            m->node_id);
    }
}

void CoordinatorControl::on_join(const received_message &rm, const wire_join &join) {
    auto reject = [&](ErrorCode code, const std::string &reason) {
        COLONY_LOG_WARN("control: refused JOIN of '%s' from %s: %s", join.node_name.c_str(),
                        rm.peer_address.c_str(), reason.c_str());
        wire_message msg;
        msg.body = wire_join_reject{code, reason};
        try {
            (void)send_message(router_, msg, {}, rm.routing_id, zmq::send_flags::dontwait);
        } catch (const Error &) {
        }
    };
    const std::string key_z85 = curve_key_to_z85(join.node_key);
    std::string data_endpoint;
    try {
        data_endpoint = resolve_endpoint(join.data_endpoint, rm.peer_address);
        (void)parse_tcp_endpoint(data_endpoint);
    } catch (const Error &e) {
        reject(ErrorCode::kInvalidArgument, std::string("bad data endpoint: ") + e.what());
        return;
    }
    if (key_fingerprint(key_z85) == coordinator_id_) {
        reject(ErrorCode::kInvalidArgument, "the worker uses the coordinator's own node key");
        return;
    }
    if (Member *same = find_member(rm.routing_id); same && same->key_z85 == key_z85) {
        // the same connection repeated its JOIN (our answer crossed its retry)
        send_to(*same, wire_join_accept{same->node_id,
                                        static_cast<uint32_t>(opts_.heartbeat_interval_ms)});
        return;
    }
    // A node that joins again (restarted, or re-connected) replaces its old self.
    for (size_t i = members_.size(); i-- > 0;) {
        if (members_[i].key_z85 == key_z85 || members_[i].routing_id == rm.routing_id) {
            lose_member(i, "worker " + members_[i].join.node_name + " joined again");
        }
    }
    if (admission_) {
        try {
            admission_->admit_member(rm.user_id, key_z85);
        } catch (const Error &e) {
            reject(e.code(), e.what());
            return;
        }
    }
    Member m;
    m.routing_id = rm.routing_id;
    m.node_id = next_node_id_++;
    m.token_id = rm.user_id;
    m.key_z85 = key_z85;
    m.fingerprint = key_fingerprint(key_z85);
    m.peer_address = rm.peer_address;
    m.data_endpoint = data_endpoint;
    m.join = join;
    for (const wire_cached_shard &s : join.cached_shards) {
        if (s.model_hash == model_.hash && s.layer_last <= model_.hp.n_layer)
            m.cached.push_back({s.layer_first, s.layer_last});
    }
    m.last_seen = clock::now();
    m.joined_unix_ms = unix_ms();
    members_.push_back(m);
    // A node that comes back is no longer listed as lost.
    lost_.erase(std::remove_if(lost_.begin(), lost_.end(),
                               [&](const NodeView &n) { return n.id == m.fingerprint; }),
                lost_.end());
    COLONY_LOG_INFO("control: worker '%s' joined as node %u from %s (key %s, %u threads, data %s)",
                    join.node_name.c_str(), m.node_id, rm.peer_address.c_str(),
                    m.fingerprint.c_str(), join.n_threads, data_endpoint.c_str());
    send_to(members_.back(),
            wire_join_accept{m.node_id, static_cast<uint32_t>(opts_.heartbeat_interval_ms)});
    view_dirty_ = true;
    if (plan_.empty() && members_.size() >= opts_.workers_expected) {
        make_plan("worker '" + join.node_name + "' joined");
    } else {
        if (plan_.empty())
            state_.invalidate("degraded", waiting_reason());
        publish_detail();
    }
}

void CoordinatorControl::on_ready(Member &m, const wire_ready &ready) {
    if (m.stage < 0 || ready.plan_epoch != plan_epoch_ ||
        ready.layer_first != plan_[m.stage].range.first ||
        ready.layer_last != plan_[m.stage].range.last) {
        COLONY_LOG_DEBUG("control: stale READY from node %u (epoch %llu)", m.node_id,
                         static_cast<unsigned long long>(ready.plan_epoch));
        return;
    }
    m.ready_epoch = ready.plan_epoch;
    if (!m.holds(plan_[m.stage].range))
        m.cached.push_back(plan_[m.stage].range);
    COLONY_LOG_INFO("control: node %u ready with layers %s", m.node_id,
                    plan_[m.stage].range.str().c_str());
    view_dirty_ = true;
    check_ready();
}

void CoordinatorControl::on_shard_request(Member &m, const wire_shard_request &req) {
    const LayerRange probe = file_ ? probe_range(*file_, model_.hp) : LayerRange{};
    const bool assigned = m.stage >= 0 && req.layer_first == plan_[m.stage].range.first &&
                          req.layer_last == plan_[m.stage].range.last;
    const bool probing =
        m.probing && req.layer_first == probe.first && req.layer_last == probe.last;
    if (!assigned && !probing && m.stage >= 0 && req.layer_first == probe.first &&
        req.layer_last == probe.last) {
        // A probe download crossed the ASSIGN that made it a stage: the worker dropped it.
        COLONY_LOG_DEBUG("control: node %u: dropped a late probe shard request", m.node_id);
        return;
    }
    if (!assigned && !probing) {
        COLONY_LOG_WARN("control: node %u asked for layers [%u,%u), which are not assigned to it",
                        m.node_id, req.layer_first, req.layer_last);
        send_to(m, wire_error{ErrorCode::kNotFound, "that shard is not assigned to you"});
        return;
    }
    try {
        // prepared when the plan was made, unless the worker held the range
        // (a no-op then); a cache the worker found stale is served from here
        shards_.prepare({req.layer_first, req.layer_last}, [this] { keepalive(); });
        for (wire_body &body : shards_.serve(req)) {
            if (const auto *c = std::get_if<wire_shard_chunk>(&body)) {
                m.shard_sent = std::max<uint64_t>(m.shard_sent, c->offset + c->bytes.size());
                m.shard_total = c->total;
                view_dirty_ = true;
            }
            if (!send_to(m, std::move(body)))
                return;
        }
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: shard request of node %u: %s", m.node_id, e.what());
        send_to(m, wire_error{e.code(), e.what()});
    }
}

void CoordinatorControl::keepalive() {
    // Writing and hashing shards of a big model takes a while: keep heartbeats going.
    if (ms_since(last_heartbeat_) < opts_.heartbeat_interval_ms)
        return;
    last_heartbeat_ = clock::now();
    for (const Member &m : members_)
        send_to(m, wire_heartbeat{0, send_counter_});
}

void CoordinatorControl::tick() {
    bool heartbeat_round = false;
    if (ms_since(last_heartbeat_) >= opts_.heartbeat_interval_ms) {
        last_heartbeat_ = clock::now();
        heartbeat_round = true;
        const uint64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(last_heartbeat_.time_since_epoch())
                .count();
        for (const Member &m : members_)
            send_to(m, wire_heartbeat{ns, send_counter_});
    }
    for (size_t i = members_.size(); i-- > 0;) {
        const int64_t silent = ms_since(members_[i].last_seen);
        if (silent > opts_.heartbeat_timeout_ms) {
            lose_member(i, "worker '" + members_[i].join.node_name + "' (node " +
                               std::to_string(members_[i].node_id) + ") sent no heartbeat for " +
                               std::to_string(silent) + " ms");
        }
    }
    if (admission_ && ms_since(last_token_reload_) >= kTokenReloadMs) {
        last_token_reload_ = clock::now();
        try {
            for (const std::string &key : admission_->reload()) {
                for (size_t i = members_.size(); i-- > 0;) {
                    if (members_[i].key_z85 != key)
                        continue;
                    Member &m = members_[i];
                    wire_message msg;
                    msg.body = wire_join_reject{ErrorCode::kUnauthorized, "token revoked"};
                    try {
                        (void)send_message(router_, msg, {}, m.routing_id,
                                           zmq::send_flags::dontwait);
                    } catch (const Error &) {
                    }
                    lose_member(i, "the token of worker '" + m.join.node_name + "' was revoked");
                }
            }
        } catch (const Error &e) {
            COLONY_LOG_WARN("control: cannot reload the tokens file: %s", e.what());
        }
    }
    if (auto why = state_.take_replan_request()) {
        COLONY_LOG_WARN("control: re-planning: %s", why->c_str());
        invalidate_plan(*why);
    }
    // After the first plan, the measured planner re-plans a lost stage with
    // the nodes that remain when they are all measured and the model fits them.
    const bool enough = members_.size() >= opts_.workers_expected;
    const bool remaining =
        !enough && planner_ && planned_once_ && planner_->has_coordinator() && all_profiled();
    if (plan_.empty() && (enough || remaining) &&
        (!plan_failed_ || ms_since(plan_failed_at_) >= kPlanRetryMs)) {
        make_plan(enough ? "enough workers" : "re-planning with the remaining nodes", enough);
    }
    check_ready();
    if (planner_) {
        if (heartbeat_round)
            collect_rtts();
        collect_local_samples();
        send_probes();
        continue_apply();
        if (ms_since(last_replan_check_) >= kReplanCheckMs) {
            last_replan_check_ = clock::now();
            consider_replan();
        }
    }
    if (heartbeat_round || view_dirty_)
        publish_detail();
}

void CoordinatorControl::lose_member(size_t index, const std::string &reason) {
    Member m = members_[index];
    COLONY_LOG_WARN("control: %s", reason.c_str());
    state_.node_reports().on_lost(m.node_id);
    NodeView lost;
    lost.id = m.fingerprint;
    lost.name = m.join.node_name;
    lost.role = "worker";
    lost.state = "lost";
    lost.address = m.peer_address;
    lost.detail = reason;
    lost.since_unix_ms = unix_ms();
    if (planner_) {
        lost.profile = planner_->profile(m.fingerprint);
        lost.rtt_ms = planner_->rtt_ms(m.fingerprint);
        planner_->on_leave(m.fingerprint);
    }
    lost_.erase(std::remove_if(lost_.begin(), lost_.end(),
                               [&](const NodeView &n) { return n.id == lost.id; }),
                lost_.end());
    lost_.push_back(std::move(lost));
    while (lost_.size() > kMaxLostNodes)
        lost_.pop_front();
    view_dirty_ = true;
    members_.erase(members_.begin() + static_cast<std::ptrdiff_t>(index));
    if (admission_)
        admission_->remove_member(m.key_z85);
    for (PlannedStage &s : plan_) {
        if (s.member > static_cast<int>(index))
            --s.member;
    }
    if (m.stage >= 0) {
        invalidate_plan(reason);
    } else {
        publish_detail();
    }
}

void CoordinatorControl::invalidate_plan(const std::string &reason) {
    if (pending_) {
        record_replan(pending_->trigger, "given up: the running plan broke (" + reason + ")", false,
                      pending_->current_ms, pending_->plan.predicted_ms_per_token, 0);
        pending_.reset();
    }
    plan_.clear();
    plan_ready_ = false;
    for (Member &m : members_)
        m.stage = -1;
    const bool enough = members_.size() >= opts_.workers_expected;
    state_.invalidate(members_.empty() && opts_.workers_expected > 0 ? "no workers" : "degraded",
                      reason + (enough ? "; re-planning" : "; " + waiting_reason()));
    view_dirty_ = true;
    publish_detail();
}

std::string CoordinatorControl::waiting_reason() const {
    return "waiting for " + std::to_string(opts_.workers_expected) + " worker(s), " +
           std::to_string(members_.size()) + " joined";
}

void CoordinatorControl::make_plan(const std::string &why, bool allow_static) {
    if (planner_ && planner_->has_coordinator() && all_profiled()) {
        if (!links_measured())
            return;  // at most a few seconds: tick() asks again
        // Every node has measured itself: the optimal plan right away.
        try {
            const Plan p = optimal_plan(member_ids(true));
            const std::optional<std::vector<PlannedStage>> layout = layout_of(p);
            if (!layout)
                throw Error(ErrorCode::kInternal, "the plan names a node that is not a member");
            apply_layout(*layout, why, false, p);
            planner_->policy().adopt(plan_info_);
            planner_->policy().settle_joins(member_ids(true));
            record_replan(why,
                          "measured plan over " + std::to_string(members_.size() + 1) + " node(s)",
                          true, std::nullopt, p.predicted_ms_per_token, plan_epoch_);
            plan_failed_ = false;
            planned_once_ = true;
            return;
        } catch (const Error &e) {
            if (!allow_static) {
                COLONY_LOG_WARN("control: no plan fits the remaining nodes: %s", e.what());
                state_.invalidate("degraded", std::string("no plan fits the remaining nodes (") +
                                                  e.what() + "); " + waiting_reason());
                plan_failed_ = true;
                plan_failed_at_ = clock::now();
                return;
            }
            COLONY_LOG_WARN("control: no measured plan (%s); using the static split", e.what());
        }
    }
    if (!allow_static)
        return;
    // Static: the coordinator, then workers in join order (those that hold a
    // range in their shard cache get it where the split allows).
    std::vector<PlannedStage> layout;
    try {
        std::vector<LayerRange> ranges;
        std::vector<double> weights;  // by stage; empty for a manual split
        if (manual_split_) {
            ranges = *manual_split_;
        } else {
            const size_t n_nodes =
                std::min<size_t>(members_.size() + 1, std::max<uint32_t>(model_.hp.n_layer, 1));
            const bool by_memory =
                opts_.mem_limit_gib > 0 &&
                std::all_of(members_.begin(), members_.end(),
                            [](const Member &m) { return m.join.mem_limit_bytes > 0; });
            for (size_t i = 0; i < n_nodes; ++i) {
                if (i == 0) {
                    weights.push_back(by_memory ? opts_.mem_limit_gib * (1ull << 30)
                                                : std::max(opts_.n_threads, 1));
                } else {
                    const wire_join &j = members_[i - 1].join;
                    weights.push_back(by_memory ? double(j.mem_limit_bytes)
                                                : std::max<double>(j.n_threads, 1));
                }
            }
            ranges = proportional_layer_split(model_.hp.n_layer, weights);
        }
        for (size_t i = 0; i < ranges.size(); ++i)
            layout.push_back({static_cast<int>(i) - 1, ranges[i]});
        prefer_cached(layout, weights);
        Plan bare;
        bare.method = manual_split_ ? PlanMethod::kManual : PlanMethod::kProportional;
        bare.coordinator_id = coordinator_id_;
        bare.n_layer = static_cast<int>(model_.hp.n_layer);
        for (const PlannedStage &s : layout) {
            PlanStage st;
            st.node_id = s.member < 0 ? coordinator_id_ : members_[s.member].fingerprint;
            st.name = s.member < 0 ? coordinator_name_ : members_[s.member].join.node_name;
            st.layers = {static_cast<int>(s.range.first), static_cast<int>(s.range.last)};
            bare.stages.push_back(st);
        }
        apply_layout(layout, why, false, bare);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("control: cannot plan: %s", e.what());
        state_.invalidate("degraded", std::string("cannot plan: ") + e.what());
        plan_failed_ = true;
        plan_failed_at_ = clock::now();
        return;
    }
    plan_failed_ = false;
    planned_once_ = true;
    if (planner_)
        planner_->reset_policy();  // measured planning starts once every node has a profile
}

void CoordinatorControl::apply_layout(const std::vector<PlannedStage> &layout,
                                      const std::string &why, bool graceful, const Plan &plan) {
    if (layout.empty() || layout.front().member != -1)
        throw Error(ErrorCode::kInternal, "a plan must start on the coordinator");
    prepare_shards(layout);
    plan_.clear();
    for (Member &m : members_) {
        m.stage = -1;
        m.ready_epoch = 0;
        m.last_seen = clock::now();  // writing shards may have kept us busy
    }
    for (size_t i = 0; i < layout.size(); ++i) {
        plan_.push_back(layout[i]);
        if (i > 0) {
            Member &m = members_[layout[i].member];
            m.stage = static_cast<int>(i);
            m.probing = false;
            m.shard_sent = 0;
            m.shard_total = 0;
        }
    }
    std::vector<LayerRange> ranges;
    for (const PlannedStage &s : plan_)
        ranges.push_back(s.range);
    LocalPlan local;
    local.range = ranges[0];
    local.is_last = ranges.size() == 1;
    if (!local.is_last) {
        const Member &next = members_[plan_[1].member];
        local.next_endpoint = next.data_endpoint;
        local.next_key_z85 = admission_ ? next.key_z85 : "";
        if (admission_)
            local.last_user_id = key_fingerprint(members_[plan_.back().member].key_z85);
    }
    plan_ready_ = false;
    plan_info_ = plan;
    Plan shown = running_plan();
    for (const PlanStage &s : shown.stages)
        local.ms_per_token_hint += s.compute_ms;
    (void)state_.take_local_decode_samples();  // of the previous plan's stage 0
    plan_epoch_ = state_.set_plan(local, "loading stages (" + why + ")", graceful);
    plan_info_.epoch = plan_epoch_;
    shown.epoch = plan_epoch_;
    COLONY_LOG_INFO("control: plan %llu: %s over %zu stage(s) (%s)",
                    static_cast<unsigned long long>(plan_epoch_),
                    format_layer_split(ranges).c_str(), ranges.size(), why.c_str());
    if (shown.latency_ms_per_token > 0)
        COLONY_LOG_INFO("control: plan table\n%s", render_plan_table(shown).c_str());

    for (size_t i = 1; i < plan_.size(); ++i) {
        const Member &m = members_[plan_[i].member];
        const bool last = i + 1 == plan_.size();
        wire_assign a = assign_for(plan_epoch_, plan_[i].range);
        if (last) {
            a.next_endpoint = data_endpoint_;
            a.next_key = admission_ ? raw_key(node_keys_.public_z85) : wire_key{};
        } else {
            const Member &next = members_[plan_[i + 1].member];
            a.next_endpoint = next.data_endpoint;
            a.next_key = admission_ ? raw_key(next.key_z85) : wire_key{};
        }
        if (i > 1 && admission_)
            a.prev_key = raw_key(members_[plan_[i - 1].member].key_z85);
        send_to(m, a);
    }
    view_dirty_ = true;
    publish_detail();
    check_ready();
}

wire_assign CoordinatorControl::assign_for(uint64_t epoch, LayerRange range) const {
    wire_assign a;
    a.plan_epoch = epoch;
    a.layer_first = range.first;
    a.layer_last = range.last;
    a.model_hash = model_.hash;
    a.n_layer = model_.hp.n_layer;
    a.n_embd = model_.hp.n_embd;
    a.n_vocab = model_.hp.n_vocab;
    a.dtype = opts_.wire_type;
    a.n_ctx = opts_.n_ctx_seq();
    a.n_ubatch = opts_.n_ubatch;
    a.n_seq_max = opts_.n_parallel;
    a.is_last = range.last == model_.hp.n_layer;  // a plan's ranges cover the model
    a.sampling = true;
    return a;
}

void CoordinatorControl::check_ready() {
    if (plan_.empty() || plan_ready_)
        return;
    if (state_.local_ready_epoch() != plan_epoch_)
        return;
    for (size_t i = 1; i < plan_.size(); ++i) {
        if (members_[plan_[i].member].ready_epoch != plan_epoch_)
            return;
    }
    plan_ready_ = true;
    double ms_per_token = 0;  // the workers' stages; the scheduler measures stage 0 itself
    for (size_t i = 1; i < plan_.size(); ++i) {
        const Member &m = members_[plan_[i].member];
        if (m.stage_report_epoch == plan_epoch_)
            ms_per_token += m.stage_ms_per_token;
    }
    state_.set_ready(plan_epoch_, ms_per_token);
    COLONY_LOG_INFO("control: cluster ready: plan %llu with %zu stage(s)",
                    static_cast<unsigned long long>(plan_epoch_), plan_.size());
    view_dirty_ = true;
    publish_detail();
}

// ---- Measured planner ----

void CoordinatorControl::measure_self() {
    try {
        std::optional<uint64_t> limit;
        if (opts_.mem_limit_gib > 0)
            limit = static_cast<uint64_t>(opts_.mem_limit_gib * (1ull << 30));
        const CoordinatorMeasurement m =
            measure_coordinator(file_, model_.hp, opts_.n_threads, limit, coordinator_id_,
                                coordinator_name_, opts_.debug_slowdown);
        planner_->set_coordinator(m.profile, m.head_ratio);
        view_dirty_ = true;
    } catch (const Error &e) {
        COLONY_LOG_ERROR("control: cannot measure the coordinator (%s); plans stay static",
                         e.what());
        record_replan("start", std::string("measured planner off: ") + e.what(), false,
                      std::nullopt, std::nullopt, 0);
        planner_.reset();
    }
}

void CoordinatorControl::on_status(Member &m, const wire_status &status) {
    std::optional<WorkerStatus> ws;
    try {
        ws = worker_status_parse(status.json);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: dropped a STATUS of node %u: %s", m.node_id, e.what());
        return;
    }
    if (!ws)
        return;  // another kind of status
    if (ws->stage && ws->stage->epoch != 0 && ws->stage->epoch == plan_epoch_) {
        // the larger of a prompt token and a decode step through the stage
        m.stage_ms_per_token =
            std::max(ws->stage->probe_prefill_ms_per_token, ws->stage->probe_decode_ms);
        m.stage_report_epoch = ws->stage->epoch;
    }
    if (!planner_)
        return;
    ws->profile.node_id = m.fingerprint;  // the key it authenticated with, not what it says
    ws->profile.name = m.join.node_name;
    bool first = false;
    try {
        first = planner_->on_status(m.fingerprint, *ws, plan_ready_ ? plan_epoch_ : 0);
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: dropped a STATUS of node %u: %s", m.node_id, e.what());
        return;
    }
    if (ws->stage && ws->stage->epoch == 0 && m.probing) {
        m.probing = false;
        m.probed_at = clock::now();
    }
    if (first) {
        m.profiled_at = clock::now();
        const DeviceProfile p = *planner_->profile(m.fingerprint);
        COLONY_LOG_INFO(
            "control: profile of '%s': %.3f ms per block at decode, head %.3f ms, "
            "%.1f MiB available, %d threads, slow-down %.2f",
            m.join.node_name.c_str(), p.decode_ms_per_layer, p.decode_ms_output,
            p.mem_available_bytes / 1048576.0, p.n_threads, ws->slowdown);
    }
    view_dirty_ = true;
}

void CoordinatorControl::collect_rtts() {
    for (const NodeReport &r : state_.node_reports().all()) {
        if (!r.rtt_ms)  // lost members have no report (NodeReports::on_lost)
            continue;
        for (Member &m : members_) {
            if (m.node_id == r.node_id && m.rtt_received_us != r.received_us) {
                m.rtt_received_us = r.received_us;
                planner_->on_rtt(m.fingerprint, *r.rtt_ms);
            }
        }
    }
}

void CoordinatorControl::collect_local_samples() {
    if (ms_since(last_local_sample_) < kLocalSampleMs)
        return;
    last_local_sample_ = clock::now();
    std::vector<double> ms = state_.take_local_decode_samples();
    if (ms.empty() || plan_.empty() || !plan_ready_)
        return;  // samples of a plan being replaced say nothing about the next one
    std::sort(ms.begin(), ms.end());
    const double median =
        ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
    planner_->on_coordinator_sample(median, plan_[0].range.size(), plan_.size() == 1);
}

void CoordinatorControl::send_probes() {
    if (!planner_->has_coordinator())
        return;
    // The blocks the coordinator measured itself on (coordinator_probe.h):
    // beyond the CPU caches, ending before the head.
    const LayerRange range = probe_range(*file_, model_.hp);
    // Spares are measured again now and then (a throttled device may have
    // cooled down), while a plan runs undisturbed.
    const bool quiet = !plan_.empty() && plan_ready_ && !pending_;
    for (Member &m : members_) {
        if (m.stage >= 0 || m.probing)
            continue;
        const bool again = quiet && planner_->has_profile(m.fingerprint) &&
                           ms_since(std::max(m.probed_at, m.profiled_at)) >= kSpareReprobeMs;
        if (planner_->has_profile(m.fingerprint) && !again)
            continue;
        try {
            shards_.prepare(range, [this] { keepalive(); });
        } catch (const Error &e) {
            COLONY_LOG_ERROR("control: cannot write the probe shard: %s", e.what());
            return;
        }
        wire_assign a =
            assign_for(0, range);          // epoch 0, a probe: load, measure, report; never READY
        a.next_endpoint = data_endpoint_;  // never used: nothing runs on a probe
        a.next_key = admission_ ? raw_key(node_keys_.public_z85) : wire_key{};
        m.probing = true;
        m.shard_sent = 0;
        m.shard_total = 0;
        COLONY_LOG_INFO("control: '%s' measures itself on the probe shard of layers %s",
                        m.join.node_name.c_str(), range.str().c_str());
        send_to(m, a);
        view_dirty_ = true;
    }
}

std::vector<std::string> CoordinatorControl::member_ids(bool with_profile_only) const {
    std::vector<std::string> ids;
    for (const Member &m : members_) {
        if (!with_profile_only || (planner_ && planner_->has_profile(m.fingerprint)))
            ids.push_back(m.fingerprint);
    }
    return ids;
}

bool CoordinatorControl::links_measured() const {
    constexpr int kLinkWaitMs = 10000;
    return std::all_of(members_.begin(), members_.end(), [&](const Member &m) {
        return planner_->rtt_ms(m.fingerprint).has_value() ||
               ms_since(m.profiled_at) >= kLinkWaitMs;
    });
}

bool CoordinatorControl::all_profiled() const {
    return planner_ && std::all_of(members_.begin(), members_.end(), [&](const Member &m) {
               return planner_->has_profile(m.fingerprint);
           });
}

std::optional<std::vector<CoordinatorControl::PlannedStage>> CoordinatorControl::layout_of(
    const Plan &plan) const {
    std::vector<PlannedStage> layout;
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        const PlanStage &s = plan.stages[i];
        PlannedStage ps;
        ps.range = {static_cast<uint32_t>(s.layers.first), static_cast<uint32_t>(s.layers.last)};
        if (s.node_id == coordinator_id_) {
            if (i != 0)
                return std::nullopt;
            ps.member = -1;
        } else {
            auto it = std::find_if(members_.begin(), members_.end(),
                                   [&](const Member &m) { return m.fingerprint == s.node_id; });
            if (it == members_.end())
                return std::nullopt;
            ps.member = static_cast<int>(it - members_.begin());
        }
        layout.push_back(ps);
    }
    if (layout.empty() || layout.front().member != -1)
        return std::nullopt;
    return layout;
}

void CoordinatorControl::prepare_shards(const std::vector<PlannedStage> &layout) {
    // A worker that holds its range loads it from its cache: its shard is
    // written and hashed here only if it asks after all (on_shard_request).
    for (size_t i = 1; i < layout.size(); ++i) {
        if (!members_[layout[i].member].holds(layout[i].range))
            shards_.prepare(layout[i].range, [this] { keepalive(); });
    }
}

bool CoordinatorControl::Member::holds(LayerRange r) const {
    return std::find(cached.begin(), cached.end(), r) != cached.end();
}

bool CoordinatorControl::trade_onto_cached(
    std::vector<PlannedStage> &layout,
    const std::function<bool(const std::vector<int> &)> &acceptable) const {
    std::vector<int> members;
    std::vector<LayerRange> ranges;
    for (const PlannedStage &s : layout) {
        members.push_back(s.member);
        ranges.push_back(s.range);
    }
    prefer_cached_ranges(
        members, ranges, [&](int m, LayerRange r) { return members_[m].holds(r); }, acceptable);
    bool moved = false;
    for (size_t i = 0; i < layout.size(); ++i) {
        if (members[i] == layout[i].member)
            continue;
        COLONY_LOG_INFO("control: worker '%s' takes layers %s, which it holds in its cache",
                        members_[members[i]].join.node_name.c_str(), ranges[i].str().c_str());
        layout[i].member = members[i];
        moved = true;
    }
    return moved;
}

void CoordinatorControl::prefer_cached(std::vector<PlannedStage> &layout,
                                       const std::vector<double> &weights) const {
    std::vector<double> weight_by_stage;  // of the member first planned there
    for (const PlannedStage &s : layout)
        weight_by_stage.push_back(weights.empty() ? 0.0
                                                  : weights.at(static_cast<size_t>(s.member + 1)));
    trade_onto_cached(layout, [&](const std::vector<int> &now) {
        if (weights.empty())
            return true;  // manual split: the ranges do not depend on who serves them
        for (size_t i = 0; i < now.size(); ++i) {
            if (now[i] >= 0 && weights.at(static_cast<size_t>(now[i]) + 1) != weight_by_stage[i])
                return false;
        }
        return true;
    });
}

Plan CoordinatorControl::optimal_plan(const std::vector<std::string> &ids) const {
    const Plan p = planner_->optimal(ids, true, 0);
    std::optional<std::vector<PlannedStage>> layout = layout_of(p);
    if (!layout)
        return p;
    const double limit = p.predicted_ms_per_token * (1 + kCachedRangeSlack);
    std::optional<Plan> chosen;
    auto with_members = [&](const std::vector<int> &now) {
        Plan q = p;
        for (size_t i = 0; i < now.size(); ++i) {
            if (now[i] < 0)
                continue;
            q.stages[i].node_id = members_[now[i]].fingerprint;
            q.stages[i].name = members_[now[i]].join.node_name;
        }
        return q;
    };
    const bool moved = trade_onto_cached(*layout, [&](const std::vector<int> &now) {
        std::optional<Plan> q = planner_->predict(with_members(now), ids, true);
        if (!q || q->predicted_ms_per_token > limit)
            return false;
        chosen = std::move(q);
        return true;
    });
    if (!moved || !chosen)
        return p;
    COLONY_LOG_INFO(
        "control: workers traded ranges to use their shard caches (%.2f ms per token "
        "predicted, the optimum %.2f)",
        chosen->predicted_ms_per_token, p.predicted_ms_per_token);
    chosen->method = p.method;
    chosen->epoch = p.epoch;
    return *chosen;
}

Plan CoordinatorControl::running_plan() const {
    Plan p = plan_info_;
    p.epoch = plan_epoch_;
    p.stages.clear();
    for (const PlannedStage &s : plan_) {
        PlanStage st;
        st.node_id = s.member < 0 ? coordinator_id_ : members_[s.member].fingerprint;
        st.name = s.member < 0 ? coordinator_name_ : members_[s.member].join.node_name;
        st.layers = {static_cast<int>(s.range.first), static_cast<int>(s.range.last)};
        p.stages.push_back(st);
    }
    if (planner_ && planner_->has_coordinator() && !p.stages.empty()) {
        if (std::optional<Plan> predicted = planner_->predict(p, member_ids(true), true)) {
            predicted->method = p.method;
            return *predicted;
        }
    }
    return p;
}

void CoordinatorControl::consider_replan() {
    if (!planner_->has_coordinator() || pending_ || plan_.empty() || !plan_ready_ ||
        !all_profiled()) {
        return;
    }
    ReplanPolicy &policy = planner_->policy();
    const std::vector<std::string> ids = member_ids(true);
    const Plan current = running_plan();
    const std::optional<double> current_ms =
        current.latency_ms_per_token > 0 ? std::optional<double>(current.predicted_ms_per_token)
                                         : std::nullopt;
    if (!policy.has_plan()) {
        // The static first plan runs and every node has measured itself.
        if (!links_measured())
            return;
        const std::string trigger =
            "measured profiles of all " + std::to_string(ids.size() + 1) + " node(s)";
        Plan candidate;
        try {
            candidate = optimal_plan(ids);
        } catch (const Error &e) {
            policy.adopt(current);
            policy.settle_joins(ids);
            record_replan(trigger, std::string("keeping the static plan: ") + e.what(), false,
                          current_ms, std::nullopt, 0);
            return;
        }
        const double margin = opts_.replan_margin;
        if (!same_layout(candidate, current) &&
            (!current_ms || candidate.predicted_ms_per_token < *current_ms * (1 - margin))) {
            begin_apply(candidate, trigger, current_ms);
            return;
        }
        policy.adopt(current);
        policy.settle_joins(ids);
        plan_info_ = current;
        record_replan(trigger,
                      same_layout(candidate, current)
                          ? "the static plan is already the optimal one"
                          : "keeping the static plan: the optimal one is not " +
                                std::to_string(static_cast<int>(margin * 100)) + "% faster",
                      false, current_ms, candidate.predicted_ms_per_token, 0);
        return;
    }
    const ReplanTrigger trigger = policy.check();
    if (!trigger.replan)
        return;
    Plan candidate;
    try {
        candidate = optimal_plan(ids);
    } catch (const Error &e) {
        record_replan(trigger.reason, std::string("no feasible plan: ") + e.what(), false,
                      current_ms, std::nullopt, 0);
        return;
    }
    const AdoptDecision d =
        policy.decide(trigger, current_ms.value_or(HUGE_VAL), candidate.predicted_ms_per_token);
    if (!d.adopt) {
        record_replan(trigger.reason, d.reason, false, current_ms, candidate.predicted_ms_per_token,
                      0);
        return;
    }
    if (same_layout(candidate, current)) {
        policy.adopt(candidate);
        policy.settle_joins(ids);
        plan_info_ = candidate;
        record_replan(trigger.reason, "the running plan is still the optimal one", false,
                      current_ms, candidate.predicted_ms_per_token, 0);
        return;
    }
    begin_apply(candidate, trigger.reason, current_ms);
}

void CoordinatorControl::begin_apply(const Plan &plan, const std::string &trigger,
                                     std::optional<double> current_ms) {
    const std::optional<std::vector<PlannedStage>> layout = layout_of(plan);
    if (!layout) {
        record_replan(trigger, "given up: a node of the new plan is gone", false, current_ms,
                      plan.predicted_ms_per_token, 0);
        return;
    }
    try {
        prepare_shards(*layout);
    } catch (const Error &e) {
        record_replan(trigger, std::string("given up: cannot write a shard: ") + e.what(), false,
                      current_ms, plan.predicted_ms_per_token, 0);
        return;
    }
    pending_ = PendingApply{plan, trigger, clock::now(), current_ms};
    state_.pause_admission(trigger);
    record_replan(trigger,
                  "re-planning: new requests wait while running ones finish, then the new plan "
                  "is assigned",
                  false, current_ms, plan.predicted_ms_per_token, 0);
}

void CoordinatorControl::continue_apply() {
    if (!pending_)
        return;
    const std::optional<std::vector<PlannedStage>> layout = layout_of(pending_->plan);
    if (!layout) {
        abort_apply("a node of the new plan left");
        return;
    }
    if (!state_.drained()) {
        if (ms_since(pending_->since) > opts_.replan_drain_timeout_ms) {
            abort_apply("requests still running after " +
                        std::to_string(opts_.replan_drain_timeout_ms / 1000) + " s");
        }
        return;
    }
    const PendingApply p = *pending_;
    pending_.reset();
    try {
        apply_layout(*layout, "re-plan: " + p.trigger, true, p.plan);
    } catch (const Error &e) {
        state_.resume_admission();
        record_replan(p.trigger, std::string("given up: ") + e.what(), false, p.current_ms,
                      p.plan.predicted_ms_per_token, 0);
        return;
    }
    planner_->policy().adopt(plan_info_);
    planner_->policy().settle_joins(member_ids(true));
    char decision[160];
    std::snprintf(decision, sizeof decision,
                  "adopted after %.1f s of waiting for running requests: %zu stage(s), %zu left "
                  "out",
                  std::chrono::duration<double>(clock::now() - p.since).count(),
                  p.plan.stages.size(), p.plan.left_out.size());
    record_replan(p.trigger, decision, true, p.current_ms, p.plan.predicted_ms_per_token,
                  plan_epoch_);
}

void CoordinatorControl::abort_apply(const std::string &why) {
    if (!pending_)
        return;
    state_.resume_admission();
    record_replan(pending_->trigger, "given up: " + why, false, pending_->current_ms,
                  pending_->plan.predicted_ms_per_token, 0);
    pending_.reset();
    view_dirty_ = true;
}

void CoordinatorControl::record_replan(const std::string &trigger, const std::string &decision,
                                       bool adopted, std::optional<double> current_ms,
                                       std::optional<double> candidate_ms, uint64_t epoch) {
    ReplanRecord r;
    r.time_unix_ms = unix_ms();
    r.epoch = epoch;
    r.trigger = trigger;
    // The policy names nodes by key fingerprint; people know them by name.
    for (const Member &m : members_) {
        const std::string quoted = "'" + m.fingerprint + "'";
        for (size_t at = r.trigger.find(quoted); at != std::string::npos;
             at = r.trigger.find(quoted, at + 1)) {
            r.trigger.replace(at, quoted.size(),
                              "'" + m.join.node_name + "' (" + m.fingerprint + ")");
        }
    }
    r.decision = decision;
    r.adopted = adopted;
    r.current_ms = current_ms;
    r.candidate_ms = candidate_ms;
    COLONY_LOG_INFO("control: re-plan decision (%s): %s [current %s, candidate %s]",
                    r.trigger.c_str(), decision.c_str(), ms_text(current_ms).c_str(),
                    ms_text(candidate_ms).c_str());
    replans_.push_back(std::move(r));
    while (replans_.size() > kMaxReplanRecords)
        replans_.pop_front();
    view_dirty_ = true;
}

void CoordinatorControl::publish_view() {
    ClusterView v;
    v.planner = planner_ ? "measured" : "static";
    v.objective = opts_.throughput_objective ? "throughput" : "latency";
    const Plan running = running_plan();
    auto left_out_reason = [&](const std::string &id) -> std::string {
        for (const PlanExclusion &e : running.left_out) {
            if (e.node_id == id)
                return e.reason;
        }
        return "";
    };
    NodeView c;
    c.id = coordinator_id_;
    c.name = coordinator_name_;
    c.role = "coordinator";
    c.since_unix_ms = started_unix_ms_;
    if (!plan_.empty()) {
        c.stage = 0;
        c.layers = PlanRange{static_cast<int>(plan_[0].range.first),
                             static_cast<int>(plan_[0].range.last)};
        c.state = state_.local_ready_epoch() == plan_epoch_ ? "ready" : "loading";
        c.load_progress = c.state == "ready" ? 1 : 0;
    } else {
        c.state = "spare";
        c.detail = "waiting for a plan";
    }
    if (planner_) {
        c.profile = planner_->profile(coordinator_id_);
        c.measured_decode_ms_per_layer = planner_->measured_ms_per_layer(coordinator_id_);
        c.slowdown = opts_.debug_slowdown;
    }
    v.nodes.push_back(std::move(c));
    for (const Member &m : members_) {
        NodeView n;
        n.id = m.fingerprint;
        n.name = m.join.node_name;
        n.role = "worker";
        n.address = m.peer_address;
        n.since_unix_ms = m.joined_unix_ms;
        if (m.stage >= 0) {
            n.stage = m.stage;
            const LayerRange r = plan_[m.stage].range;
            n.layers = PlanRange{static_cast<int>(r.first), static_cast<int>(r.last)};
            const bool ready = m.ready_epoch == plan_epoch_;
            n.state = ready ? "ready" : "loading";
            n.load_progress = ready           ? 1.0
                              : m.shard_total ? static_cast<double>(m.shard_sent) / m.shard_total
                                              : 0.0;
        } else if (m.probing) {
            n.state = "probing";
            n.load_progress =
                m.shard_total ? static_cast<double>(m.shard_sent) / m.shard_total : 0.0;
        } else {
            n.state = "spare";
            n.detail = left_out_reason(m.fingerprint);
        }
        if (planner_) {
            n.profile = planner_->profile(m.fingerprint);
            n.rtt_ms = planner_->rtt_ms(m.fingerprint);
            n.throughput_bytes_per_s = planner_->throughput(m.fingerprint);
            n.measured_decode_ms_per_layer = planner_->measured_ms_per_layer(m.fingerprint);
            n.slowdown = planner_->slowdown(m.fingerprint);
        }
        v.nodes.push_back(std::move(n));
    }
    for (const NodeView &n : lost_)
        v.nodes.push_back(n);
    if (!plan_.empty())
        v.plan = running;
    v.replans.assign(replans_.begin(), replans_.end());
    state_.set_view(std::move(v));
}

void CoordinatorControl::publish_detail() {
    view_dirty_ = false;
    publish_view();
    nlohmann::json stages = nlohmann::json::array();
    for (size_t i = 0; i < plan_.size(); ++i) {
        nlohmann::json s;
        s["layers"] = {plan_[i].range.first, plan_[i].range.last};
        if (plan_[i].member < 0) {
            s["node"] = "coordinator";
            s["ready"] = state_.local_ready_epoch() == plan_epoch_;
        } else {
            const Member &m = members_[plan_[i].member];
            s["node"] = m.join.node_name;
            s["node_id"] = m.node_id;
            s["endpoint"] = m.data_endpoint;
            s["ready"] = m.ready_epoch == plan_epoch_;
        }
        stages.push_back(s);
    }
    nlohmann::json workers = nlohmann::json::array();
    for (const Member &m : members_) {
        workers.push_back({{"name", m.join.node_name},
                           {"node_id", m.node_id},
                           {"key", m.fingerprint},
                           {"address", m.peer_address},
                           {"data_endpoint", m.data_endpoint},
                           {"threads", m.join.n_threads},
                           {"stage", m.stage}});
    }
    nlohmann::json detail = {{"plan_epoch", plan_epoch_},
                             {"workers_expected", opts_.workers_expected},
                             {"workers", workers},
                             {"stages", stages},
                             {"shard_bytes_served", shards_.bytes_served()},
                             {"cluster", cluster_view_to_json(state_.cluster_view())}};
    state_.set_detail(detail.dump());
}

}  // namespace colony
