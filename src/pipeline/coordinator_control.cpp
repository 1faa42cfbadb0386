// The control loop: the socket, the thread, and dispatch of what arrives.
// What each message does lives with its concern (coordinator_control.h).
#include "pipeline/coordinator_control.h"

#include <tuple>

#include "cluster/layer_split.h"
#include "cluster/model_shape.h"
#include "model/gguf_file.h"
#include "net/admission.h"
#include "net/hash.h"
#include "net/transport.h"
#include "net/wire_dtype.h"
#include "pipeline/cluster_state.h"
#include "pipeline/endpoint.h"
#include "pipeline/measured_planner.h"
#include "pipeline/node_status.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/host.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kPollMs = 50;
constexpr int kPlanRetryMs = 5000;
constexpr int kReplanCheckMs = 250;

/// The fixed part of every layout of this run (coordinator_layout.h).
LayoutConfig make_layout_config(const CoordinatorOptions &opts, const PlannedModel &model,
                                const CurveKeypair &node_keys, bool secure,
                                const std::string &coordinator_id,
                                const std::string &coordinator_name,
                                const std::string &data_endpoint) {
    LayoutConfig c;
    c.n_layer = model.hp.n_layer;
    c.n_embd = model.hp.n_embd;
    c.n_vocab = model.hp.n_vocab;
    c.model_hash = model.hash;
    c.wire_type = opts.wire_type;
    c.n_ctx = opts.n_ctx_seq();
    c.n_ubatch = opts.n_ubatch;
    c.n_seq_max = opts.n_parallel;
    c.coordinator_id = coordinator_id;
    c.coordinator_name = coordinator_name;
    c.coordinator_key_z85 = node_keys.public_z85;
    c.coordinator_data_endpoint = data_endpoint;
    c.coordinator_threads = opts.n_threads;
    c.coordinator_mem_limit_gib = opts.mem_limit_gib;
    c.secure = secure;
    check_layer_skip(opts.skip_layers, model.hp.n_layer);
    c.skip = opts.skip_layers;
    c.dyn_skip = resolve_dynamic_skip(opts.dyn_skip, model.hp.n_layer);
    if (!opts.split.empty()) {
        c.manual_split = parse_layer_split(opts.split, model.hp.n_layer);
        if (c.manual_split->size() != opts.workers_expected + 1) {
            throw Error(ErrorCode::kInvalidArgument,
                        "--split has " + std::to_string(c.manual_split->size()) +
                            " ranges; with --workers-expected " +
                            std::to_string(opts.workers_expected) + " it needs " +
                            std::to_string(opts.workers_expected + 1) +
                            " (the coordinator runs the first)");
        }
    }
    return c;
}

/// The measured planner of the run (CoordinatorOptions::measured_planner).
std::unique_ptr<MeasuredPlanner> make_planner(const CoordinatorOptions &opts,
                                              const PlannedModel &model, const GgufFile &file,
                                              const std::string &coordinator_id) {
    MeasuredPlannerConfig pc;
    pc.objective = opts.throughput_objective ? PlanObjective::kThroughput : PlanObjective::kLatency;
    pc.replan.drift_threshold = opts.replan_drift_threshold;
    pc.replan.drift_window_s = opts.replan_window_s;
    pc.replan.cooldown_s = opts.replan_cooldown_s;
    pc.replan.improvement_margin = opts.replan_margin;
    // A sample is already the median of a STATUS interval's decode steps
    // (2 s by default): two of them within the window are enough.
    pc.replan.min_samples = 2;
    pc.min_battery_percent = opts.min_battery_percent;
    ModelShape shape =
        model_shape_from_gguf(file, model.hp, opts.n_ctx_seq(), opts.n_parallel, GGML_TYPE_F16,
                              GGML_TYPE_F16, wire_dtype_ggml_type(opts.wire_type));
    mark_skipped_layers(shape, opts.skip_layers);
    return std::make_unique<MeasuredPlanner>(std::move(shape), coordinator_id, pc);
}

}  // namespace

CoordinatorControl::CoordinatorControl(zmq::context_t &ctx, const CoordinatorOptions &opts,
                                       const PlannedModel &model, const CurveKeypair &node_keys,
                                       AdmissionControl *admission, ShardService &shards,
                                       ClusterState &state, std::string data_endpoint)
    : ctx_(ctx),
      opts_(opts),
      model_(model),
      node_keys_(node_keys),
      admission_(admission),
      shards_(shards),
      state_(state),
      data_endpoint_(std::move(data_endpoint)),
      coordinator_id_(key_fingerprint(node_keys.public_z85)),
      coordinator_name_(opts.node_name.empty() ? host_name().value_or("coordinator")
                                               : opts.node_name),
      layout_config_(make_layout_config(opts, model, node_keys, admission != nullptr,
                                        coordinator_id_, coordinator_name_, data_endpoint_)),
      router_(ctx, zmq::socket_type::router) {
    if (opts_.measured_planner && !layout_config_.manual_split) {
        // --split fixes the layout: no measured planning then.
        file_ = GgufFile::open(opts_.model_path);
        planner_ = make_planner(opts_, model_, *file_, coordinator_id_);
    }
    configure_router();
}

CoordinatorControl::~CoordinatorControl() {
    stop();
}

void CoordinatorControl::configure_router() {
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
                ReceivedMessage rm = recv_message(router_, {}, zmq::recv_flags::dontwait);
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

bool CoordinatorControl::send_to(const Member &m, WireBody body) {
    WireMessage msg;
    std::tie(msg.session, msg.sequence) = sender_.next();
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

bool CoordinatorControl::send_or_lose(Member &m, WireBody body, const std::string &what) {
    if (send_to(m, std::move(body)))
        return true;
    if (m.unreachable.empty())
        m.unreachable = what + " could not be sent";
    return false;
}

void CoordinatorControl::send_unsolicited(const std::string &routing_id, WireBody body) {
    WireMessage msg;
    std::tie(msg.session, msg.sequence) = sender_.next();
    msg.body = std::move(body);
    const char *type = wire_type_name(wire_message_type(msg));
    try {
        if (!send_message(router_, msg, {}, routing_id, zmq::send_flags::dontwait))
            COLONY_LOG_WARN("control: %s to a non-member would block; dropped", type);
    } catch (const Error &e) {
        // the peer is gone; one that is still there asks again
        COLONY_LOG_WARN("control: %s to a non-member: %s", type, e.what());
    }
}

void CoordinatorControl::handle(const ReceivedMessage &rm) {
    const WireType type = wire_message_type(rm.message);
    // Fencing (message_fence.h): per connection (the admission id and the
    // routing id the ROUTER gave it) and the worker's session, the sequence
    // must grow; a READY must be of the running plan.
    const std::string sender = rm.user_id + "|" + rm.routing_id;
    const WireMessage &msg = rm.message;
    const FenceReason verdict =
        type == WIRE_TYPE_READY
            ? fence_.admit(sender, msg.session, msg.sequence,
                           std::get<WireReady>(msg.body).plan_epoch, plan_epoch_, EpochRule::kEqual)
            : fence_.admit(sender, msg.session, msg.sequence);
    if (verdict != FenceReason::kAccepted) {
        COLONY_LOG_WARN("control: dropped %s (%s, session %08x, sequence %u) from %s",
                        wire_type_name(type), fence_reason_name(verdict), msg.session, msg.sequence,
                        rm.peer_address.c_str());
        return;
    }
    if (type == WIRE_TYPE_JOIN) {
        on_join(rm, std::get<WireJoin>(rm.message.body));
        return;
    }
    Member *m = find_member(rm.routing_id);
    if (m && (!admission_ || rm.user_id == m->token_id)) {
        handle_member(*m, rm);
    } else if (type == WIRE_TYPE_HEARTBEAT || type == WIRE_TYPE_READY) {
        // e.g. a worker of a previous coordinator run: ask it to join again
        send_unsolicited(rm.routing_id,
                         WireError{ErrorCode::kUnavailable, "not a member: send JOIN"});
    } else {
        COLONY_LOG_WARN("control: dropped %s from a peer that has not joined (%s)",
                        wire_type_name(type), rm.peer_address.c_str());
    }
}

void CoordinatorControl::handle_member(Member &m, const ReceivedMessage &rm) {
    const WireType type = wire_message_type(rm.message);
    m.last_seen = clock::now();
    switch (type) {
        case WIRE_TYPE_HEARTBEAT:
            break;
        case WIRE_TYPE_READY:
            on_ready(m, std::get<WireReady>(rm.message.body));
            break;
        case WIRE_TYPE_SHARD_REQUEST:
            on_shard_request(m, std::get<WireShardRequest>(rm.message.body));
            break;
        case WIRE_TYPE_STATUS: {
            const WireStatus &status = std::get<WireStatus>(rm.message.body);
            COLONY_LOG_DEBUG("control: status of node %u: %s", m.node_id, status.json.c_str());
            // run-time report for the cluster view (node_status.h)
            const std::optional<NodeRuntime> rt = state_.node_reports().on_status(
                m.node_id, m.join.node_name, key_fingerprint(m.key_z85), status.json);
            if (rt && rt->stage.next_link_down_ms > 0)
                on_link_down(m.stage, rt->plan_epoch, rt->stage.next_link_down_ms);
            // device profile for the planner (worker_status.h)
            on_status(m, status);
            break;
        }
        case WIRE_TYPE_ERROR: {
            const auto &err = std::get<WireError>(rm.message.body);
            COLONY_LOG_ERROR("control: worker %s (node %u) reports: %s", m.join.node_name.c_str(),
                             m.node_id, err.message.c_str());
            if (m.stage >= 0 || m.probing) {
                lose_member(static_cast<size_t>(&m - members_.data()),
                            "worker " + m.join.node_name + " failed: " + err.message);
            }
            break;
        }
        default:
            COLONY_LOG_WARN("control: dropped unexpected %s from node %u", wire_type_name(type),
                            m.node_id);
    }
}

void CoordinatorControl::on_link_down(int stage, uint64_t epoch, int64_t down_ms) {
    if (stage < 0 || epoch != plan_epoch_ || static_cast<size_t>(stage) >= plan_.size())
        return;  // not a stage of the running plan (a late report of an old one)
    const bool last = static_cast<size_t>(stage) + 1 == plan_.size();
    // The stage after it is taken for lost: a killed process resets the
    // connection at once, a silent one misses the link's heartbeats. From the
    // last stage the link goes to the coordinator, which is alive: the last
    // stage itself cannot deliver (a one-way cut), so it is the one to go.
    const int member = last ? plan_[stage].member : plan_[stage + 1].member;
    if (member < 0)
        return;
    Member &m = members_[member];
    if (!m.unreachable.empty())
        return;
    m.unreachable_after_ms = down_ms;
    const std::string from = stage == 0 ? std::string("the coordinator")
                                        : "'" + members_[plan_[stage].member].join.node_name + "'";
    m.unreachable =
        last ? "its data link to the coordinator is down (" + std::to_string(down_ms) + " ms)"
             : "the data link from stage " + std::to_string(stage) + " (" + from +
                   ") to it is down (" + std::to_string(down_ms) + " ms)";
    // dropped by the next tick (drop_unreachable): `m` may be the member whose
    // message is being handled
}

void CoordinatorControl::tick() {
    const bool heartbeat_round = send_heartbeats();
    drop_silent();
    drop_unreachable();
    if (admission_)
        reload_admission();
    if (auto down = state_.take_link_down())
        on_link_down(0, down->epoch, down->down_ms);
    if (auto why = state_.take_replan_request()) {
        COLONY_LOG_WARN("control: re-planning: %s", why->c_str());
        recovering_from_ = plan_worker_ids();  // the scheduler opened the recovery record
        recovering_lost_.clear();
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
    send_standby();
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

}  // namespace colony
