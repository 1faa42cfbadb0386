#include "pipeline/coordinator_control.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "net/admission.h"
#include "net/hash.h"
#include "net/transport.h"
#include "pipeline/cluster_state.h"
#include "pipeline/endpoint.h"
#include "pipeline/layer_split.h"
#include "pipeline/shard_service.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kPollMs = 50;
constexpr int kTokenReloadMs = 1000;
constexpr int kPlanRetryMs = 5000;

int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
}

wire_key raw_key(const std::string &z85) {
    return z85.empty() ? wire_key{} : curve_key_from_z85(z85);
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
            break;
        case WIRE_TYPE_ERROR: {
            const auto &err = std::get<wire_error>(rm.message.body);
            COLONY_LOG_ERROR("control: worker %s (node %u) reports: %s", m->join.node_name.c_str(),
                             m->node_id, err.message.c_str());
            if (m->stage >= 0) {
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
    m.peer_address = rm.peer_address;
    m.data_endpoint = data_endpoint;
    m.join = join;
    m.last_seen = clock::now();
    members_.push_back(m);
    COLONY_LOG_INFO("control: worker '%s' joined as node %u from %s (key %s, %u threads, data %s)",
                    join.node_name.c_str(), m.node_id, rm.peer_address.c_str(),
                    key_fingerprint(key_z85).c_str(), join.n_threads, data_endpoint.c_str());
    send_to(members_.back(),
            wire_join_accept{m.node_id, static_cast<uint32_t>(opts_.heartbeat_interval_ms)});
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
    COLONY_LOG_INFO("control: node %u ready with layers %s", m.node_id,
                    plan_[m.stage].range.str().c_str());
    check_ready();
}

void CoordinatorControl::on_shard_request(Member &m, const wire_shard_request &req) {
    if (m.stage < 0 || req.layer_first != plan_[m.stage].range.first ||
        req.layer_last != plan_[m.stage].range.last) {
        COLONY_LOG_WARN("control: node %u asked for layers [%u,%u), which are not assigned to it",
                        m.node_id, req.layer_first, req.layer_last);
        send_to(m, wire_error{ErrorCode::kNotFound, "that shard is not assigned to you"});
        return;
    }
    try {
        for (wire_body &body : shards_.serve(req)) {
            if (!send_to(m, std::move(body)))
                return;
        }
    } catch (const Error &e) {
        COLONY_LOG_WARN("control: shard request of node %u: %s", m.node_id, e.what());
        send_to(m, wire_error{e.code(), e.what()});
    }
}

void CoordinatorControl::tick() {
    if (ms_since(last_heartbeat_) >= opts_.heartbeat_interval_ms) {
        last_heartbeat_ = clock::now();
        const uint64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(last_heartbeat_.time_since_epoch())
                .count();
        for (const Member &m : members_)
            send_to(m, wire_heartbeat{ns, send_counter_});
        publish_detail();
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
    if (plan_.empty() && members_.size() >= opts_.workers_expected &&
        (!plan_failed_ || ms_since(plan_failed_at_) >= kPlanRetryMs)) {
        make_plan("enough workers");
    }
    check_ready();
}

void CoordinatorControl::lose_member(size_t index, const std::string &reason) {
    Member m = members_[index];
    COLONY_LOG_WARN("control: %s", reason.c_str());
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
    plan_.clear();
    plan_ready_ = false;
    for (Member &m : members_)
        m.stage = -1;
    const bool enough = members_.size() >= opts_.workers_expected;
    state_.invalidate(members_.empty() && opts_.workers_expected > 0 ? "no workers" : "degraded",
                      reason + (enough ? "; re-planning" : "; " + waiting_reason()));
    publish_detail();
}

std::string CoordinatorControl::waiting_reason() const {
    return "waiting for " + std::to_string(opts_.workers_expected) + " worker(s), " +
           std::to_string(members_.size()) + " joined";
}

void CoordinatorControl::make_plan(const std::string &why) {
    // Stages: the coordinator, then workers in join order.
    std::vector<LayerRange> ranges;
    try {
        if (manual_split_) {
            ranges = *manual_split_;
        } else {
            std::vector<double> weights;
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
        // Writing and hashing shards of a big model takes a while: keep heartbeats going.
        const auto keepalive = [this] {
            if (ms_since(last_heartbeat_) < opts_.heartbeat_interval_ms)
                return;
            last_heartbeat_ = clock::now();
            for (const Member &m : members_)
                send_to(m, wire_heartbeat{0, send_counter_});
        };
        for (size_t i = 1; i < ranges.size(); ++i)
            shards_.prepare(ranges[i], keepalive);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("control: cannot plan: %s", e.what());
        state_.invalidate("degraded", std::string("cannot plan: ") + e.what());
        plan_failed_ = true;
        plan_failed_at_ = clock::now();
        return;
    }
    plan_failed_ = false;
    plan_.clear();
    for (Member &m : members_) {
        m.stage = -1;
        m.ready_epoch = 0;
        m.last_seen = clock::now();  // writing shards may have kept us busy
    }
    for (size_t i = 0; i < ranges.size(); ++i) {
        plan_.push_back({static_cast<int>(i) - 1, ranges[i]});
        if (i > 0)
            members_[i - 1].stage = static_cast<int>(i);
    }
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
    plan_epoch_ = state_.set_plan(local, "loading stages (" + why + ")");
    COLONY_LOG_INFO("control: plan %llu: %s over %zu stage(s) (%s)",
                    static_cast<unsigned long long>(plan_epoch_),
                    format_layer_split(ranges).c_str(), ranges.size(), why.c_str());

    for (size_t i = 1; i < plan_.size(); ++i) {
        const Member &m = members_[plan_[i].member];
        const bool last = i + 1 == plan_.size();
        wire_assign a;
        a.plan_epoch = plan_epoch_;
        a.layer_first = plan_[i].range.first;
        a.layer_last = plan_[i].range.last;
        a.model_hash = model_.hash;
        a.n_layer = model_.hp.n_layer;
        a.n_embd = model_.hp.n_embd;
        a.n_vocab = model_.hp.n_vocab;
        a.dtype = opts_.wire_type;
        a.n_ctx = opts_.n_ctx_seq();
        a.n_ubatch = opts_.n_ubatch;
        a.n_seq_max = opts_.n_parallel;
        a.is_last = last;
        a.sampling = true;
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
    publish_detail();
    check_ready();
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
    state_.set_ready(plan_epoch_);
    COLONY_LOG_INFO("control: cluster ready: plan %llu with %zu stage(s)",
                    static_cast<unsigned long long>(plan_epoch_), plan_.size());
    publish_detail();
}

void CoordinatorControl::publish_detail() {
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
                           {"key", key_fingerprint(m.key_z85)},
                           {"address", m.peer_address},
                           {"data_endpoint", m.data_endpoint},
                           {"threads", m.join.n_threads},
                           {"stage", m.stage}});
    }
    nlohmann::json detail = {{"plan_epoch", plan_epoch_},
                             {"workers_expected", opts_.workers_expected},
                             {"workers", workers},
                             {"stages", stages},
                             {"shard_bytes_served", shards_.bytes_served()}};
    state_.set_detail(detail.dump());
}

}  // namespace colony
