#include "pipeline/worker_data.h"

#include <algorithm>
#include <chrono>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "net/keys.h"
#include "net/transport.h"
#include "net/zap.h"
#include "pipeline/logits_dump.h"
#include "pipeline/probe_cache.h"
#include "pipeline/worker_status.h"
#include "runtime/stage.h"
#include "runtime/stage_probe.h"
#include "util/error.h"
#include "util/log.h"
#include "util/trace.h"
#include "util/version.h"

namespace colony {

namespace {

constexpr int kPollMs = 20;
constexpr size_t kMaxDecodeSamples = 1024;
constexpr int kProbeDecodeSteps = 8;
constexpr int kProbePrefillTokens = 64;
constexpr std::chrono::seconds kProbeCacheMaxAge{24 * 3600};  // a day: devices change

}  // namespace

WorkerData::WorkerData(zmq::context_t &ctx, ZapHandler *zap, const CurveKeypair &node_keys,
                       std::string coordinator_key_z85, WorkerStageOptions stage_opts,
                       const std::string &bind_endpoint)
    : ctx_(ctx),
      zap_(zap),
      node_keys_(node_keys),
      coordinator_key_z85_(std::move(coordinator_key_z85)),
      opts_(stage_opts),
      pull_(ctx, zmq::socket_type::pull) {
    configure_socket(pull_);
    if (zap_) {
        zap_->clear(kZapDomainData);
        zap_->allow(kZapDomainData, coordinator_key_z85_);
        configure_curve_server(pull_, *zap_, kZapDomainData, node_keys_);
        set_senders("");
    } else {
        configure_insecure(pull_, "data server");
    }
    try {
        pull_.bind(bind_endpoint);
    } catch (const zmq::error_t &e) {
        throw Error(ErrorCode::kUnavailable,
                    "cannot bind the data socket " + bind_endpoint + ": " + e.what());
    }
    endpoint_ = socket_last_endpoint(pull_);
}

WorkerData::~WorkerData() {
    stop();
}

void WorkerData::set_senders(const std::string &prev_key_z85) {
    if (!zap_)
        return;
    senders_ = {key_fingerprint(coordinator_key_z85_)};
    if (!prev_key_z85.empty())
        senders_.push_back(key_fingerprint(prev_key_z85));
}

void WorkerData::start() {
    thread_ = std::thread([this] { run(); });
}

void WorkerData::stop() {
    stop_.store(true);
    if (thread_.joinable())
        thread_.join();
}

void WorkerData::assign(WorkerAssignment a) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::move(a);
    unassign_ = false;
    status_.error.clear();
}

void WorkerData::unassign() {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.reset();
    unassign_ = true;
}

WorkerData::Status WorkerData::status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    Status s = status_;
    s.bytes_out = host_.bytes_sent();
    return s;
}

std::vector<double> WorkerData::take_decode_samples() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<double> out;
    out.swap(decode_ms_);
    return out;
}

void WorkerData::set_slowdown(double factor) {
    if (!(factor >= 1.0) || factor > 1000)
        throw Error(ErrorCode::kInvalidArgument, "slow-down factor must be in [1, 1000]");
    slowdown_.store(factor);
}

void WorkerData::run() {
    while (!stop_.load()) {
        std::optional<WorkerAssignment> next;
        bool drop = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            next.swap(pending_);
            drop = unassign_;
            unassign_ = false;
        }
        if (drop) {
            host_.unload();
            shard_path_.clear();
            current_.reset();
            set_senders("");
            std::lock_guard<std::mutex> lock(mutex_);
            status_.loaded_epoch = 0;
            status_.loaded_shard.clear();
            status_.probe.reset();
        }
        if (next) {
            try {
                apply(*next);
            } catch (const Error &e) {
                COLONY_LOG_ERROR("worker: cannot load layers [%u,%u): %s", next->assign.layer_first,
                                 next->assign.layer_last, e.what());
                host_.unload();
                current_.reset();
                set_senders("");
                std::lock_guard<std::mutex> lock(mutex_);
                status_.loaded_epoch = 0;
                status_.loaded_shard.clear();
                status_.probe.reset();
                status_.error = e.what();
            }
        }
        if (host_.loaded()) {
            host_.set_slowdown(slowdown_.load());
            host_.set_thread_limit(thread_limit_.load());
        }
        // the next stage's link, reported with every heartbeat (STATUS): the
        // coordinator takes a link down for a lost next stage
        (void)host_.link_down_ms();
        try {
            zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs)) <= 0)
                continue;
            const int64_t t_recv = trace_enabled() ? trace_now_us() : 0;
            ReceivedMessage rm = recv_message(pull_, {}, zmq::recv_flags::dontwait);
            if (rm.status != RECV_STATUS_OK)
                continue;
            if (!senders_.empty() &&
                std::find(senders_.begin(), senders_.end(), rm.user_id) == senders_.end()) {
                COLONY_LOG_WARN("worker: dropped %s from key %s: not a sender of this stage",
                                wire_type_name(wire_message_type(rm.message)), rm.user_id.c_str());
                continue;
            }
            trace_event("receive", "hop", t_recv, trace_now_us() - t_recv,
                        trace_enabled()
                            ? "{\"request\":" + std::to_string(rm.message.request_id) + "}"
                            : std::string());
            if (!admit(rm))
                continue;
            switch (wire_message_type(rm.message)) {
                case WIRE_TYPE_ACTIVATIONS:
                    on_activations(std::get<WireActivations>(rm.message.body),
                                   rm.message.request_id);
                    break;
                case WIRE_TYPE_SEQ_RELEASE:
                    on_release(std::get<WireSeqRelease>(rm.message.body), rm.message.request_id);
                    break;
                case WIRE_TYPE_SEQ_SHIFT:
                    on_shift(std::get<WireSeqShift>(rm.message.body), rm.message.request_id);
                    break;
                default:
                    COLONY_LOG_WARN("worker: dropped %s on the data socket",
                                    wire_type_name(wire_message_type(rm.message)));
            }
        } catch (const Error &e) {
            COLONY_LOG_ERROR("worker: data plane: %s", e.what());
        } catch (const zmq::error_t &e) {
            if (e.num() == ETERM)
                return;
            COLONY_LOG_ERROR("worker: data plane: %s", e.what());
        }
    }
}

void WorkerData::apply(const WorkerAssignment &a) {
    const WireAssign &as = a.assign;
    const LayerRange range{as.layer_first, as.layer_last};
    StageConfig cfg;
    cfg.range = range;
    cfg.n_ctx = as.n_ctx * as.n_seq_max;
    cfg.n_seq_max = as.n_seq_max;
    cfg.n_ctx_seq = as.n_ctx;
    cfg.n_ubatch = as.n_ubatch;
    cfg.n_threads = opts_.n_threads;
    cfg.cpu = opts_.cpu;
    cfg.gpu = opts_.gpu;
    cfg.type_k = opts_.type_k;
    cfg.type_v = opts_.type_v;
    cfg.load.use_mmap = opts_.use_mmap;
    cfg.load.skip.blocks = as.skip_layers;  // checked: ascending, inside the range (wire_check)
    cfg.dyn_skip.threshold = as.dyn_skip;     // checked: a cosine, with a probe (wire_check)
    cfg.dyn_skip.probe = as.dyn_skip_probe > 0 ? as.dyn_skip_probe : 1;
    cfg.dyn_skip.hot.blocks = as.hot_layers;  // checked: ascending, inside the model
    cfg.slowdown = slowdown_.load();
    cfg.invariance = opts_.invariance;  // recovery re-computes the same floats (stage.h)
    const bool same_stage = current_ && host_.holds(a.shard_path.string(), cfg);
    host_.close_link();
    current_.reset();
    if (same_stage) {
        host_.reset();
    } else {
        std::shared_ptr<const GgufFile> shard = GgufFile::open(a.shard_path.string());
        const ModelHparams hp = ModelHparams::from_gguf(*shard);
        if (hp.n_layer != as.n_layer || hp.n_embd != as.n_embd || hp.n_vocab != as.n_vocab) {
            throw Error(ErrorCode::kCorrupt,
                        "the shard's hyper-parameters (n_layer " + std::to_string(hp.n_layer) +
                            ", n_embd " + std::to_string(hp.n_embd) + ", n_vocab " +
                            std::to_string(hp.n_vocab) + ") do not match the assignment");
        }
        host_.load(a.shard_path.string(), std::move(shard), hp, cfg);
        shard_path_ = a.shard_path;
        if (host_.stage().is_last() != as.is_last) {
            throw Error(ErrorCode::kInvalidArgument,
                        "the assignment's is_last flag contradicts "
                        "its layer range");
        }
    }
    if (zap_) {
        zap_->clear(kZapDomainData);
        zap_->allow(kZapDomainData, coordinator_key_z85_);
        if (!a.prev_key_z85.empty())
            zap_->allow(kZapDomainData, a.prev_key_z85);
        set_senders(a.prev_key_z85);
    }
    // Connected on the first send: by then every stage of the plan is READY,
    // so the next stage's ZAP handler already admits our key.
    host_.open_link(ctx_, a.next_endpoint, a.next_key_z85, node_keys_, false);
    current_ = a;
    if (as.plan_epoch != 0)  // not a probe: the plan data messages must belong to
        fence_epoch_ = as.plan_epoch;
    measure(same_stage);
    COLONY_LOG_INFO("worker: stage %s loaded (plan %llu), %s -> %s", range.str().c_str(),
                    static_cast<unsigned long long>(as.plan_epoch),
                    as.is_last ? "samples" : "hidden states", a.next_endpoint.c_str());
    std::lock_guard<std::mutex> lock(mutex_);
    status_.loaded_epoch = as.plan_epoch;
    status_.loaded_shard = a.shard_path;
}

ProbeKey WorkerData::probe_key() const {
    const WireAssign &as = current_->assign;
    ProbeKey k;
    k.range = {as.layer_first, as.layer_last};
    k.is_last = host_.stage().is_last();
    k.n_threads = opts_.n_threads;
    k.slowdown = host_.stage().slowdown();
    k.prefill_tokens = static_cast<int>(std::min<uint32_t>(kProbePrefillTokens, as.n_ubatch));
    k.software_version = kSoftwareVersion;
    k.skip_layers = as.skip_layers;
    return k;
}

WorkerData::StageProbe WorkerData::stage_probe(double decode_ms,
                                               double prefill_ms_per_token) const {
    const WireAssign &as = current_->assign;
    StageProbe p;
    p.first = as.layer_first;
    p.last = as.layer_last;
    p.is_last = host_.stage().is_last();
    p.decode_ms = decode_ms;
    p.prefill_ms_per_token = prefill_ms_per_token;
    const Stage &stage = host_.stage();
    p.stage_bytes = stage.weight_bytes() + stage.kv_bytes();
    p.computed = stage.range().size() - stage.weights().skip().count_in(stage.range());
    if (p.computed > 0 && stage.kv_size() > 0)
        p.kv_bytes_per_token_per_layer =
            stage.kv_bytes() / (uint64_t{p.computed} * stage.kv_size());
    return p;
}

void WorkerData::measure(bool same_stage) {
    const WireAssign &as = current_->assign;
    std::optional<StageProbe> previous;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        previous = status_.probe;
        decode_ms_.clear();  // samples of the previous stage
    }
    StageProbe p;
    if (same_stage && previous && previous->first == as.layer_first &&
        previous->last == as.layer_last && as.plan_epoch != 0) {
        p = *previous;  // the same stage: its measurement still holds (a probe measures again)
    } else if (std::optional<CachedProbe> cached =
                   as.plan_epoch == 0  // the planner's probe of a spare: always measure
                       ? std::nullopt
                       : load_cached_probe(shard_path_, probe_key(), kProbeCacheMaxAge)) {
        p = stage_probe(cached->decode_ms, cached->prefill_ms_per_token);
        COLONY_LOG_INFO(
            "worker: stage %s measured before: decode %.3f ms per token, prefill %.3f ms per "
            "token (%s)",
            host_.stage().range().str().c_str(), p.decode_ms, p.prefill_ms_per_token,
            probe_cache_path(shard_path_).c_str());
    } else {
        // Scratch sequence 0: nothing runs on this stage before READY. The
        // faster of two rounds: other work on the device only slows one down.
        const int prefill = static_cast<int>(std::min<uint32_t>(kProbePrefillTokens, as.n_ubatch));
        StageSpeed speed = measure_stage_speed(host_.stage(), kProbeDecodeSteps, prefill);
        const StageSpeed again = measure_stage_speed(host_.stage(), kProbeDecodeSteps, prefill);
        speed.decode_ms_per_layer = std::min(speed.decode_ms_per_layer, again.decode_ms_per_layer);
        speed.prefill_ms_per_layer_per_token =
            std::min(speed.prefill_ms_per_layer_per_token, again.prefill_ms_per_layer_per_token);
        const double layers = static_cast<double>(as.layer_last - as.layer_first);
        p = stage_probe(speed.decode_ms_per_layer * layers,
                        speed.prefill_ms_per_layer_per_token * layers);
        save_cached_probe(shard_path_, probe_key(), {p.decode_ms, p.prefill_ms_per_token});
        COLONY_LOG_INFO(
            "worker: stage %s measured: decode %.3f ms per token, prefill %.3f ms per "
            "token (slow-down %.2f)",
            host_.stage().range().str().c_str(), p.decode_ms, p.prefill_ms_per_token,
            host_.stage().slowdown());
    }
    p.epoch = as.plan_epoch;
    std::lock_guard<std::mutex> lock(mutex_);
    status_.probe = p;
}

bool WorkerData::admit(const ReceivedMessage &rm) {
    const WireMessage &msg = rm.message;
    std::optional<uint64_t> epoch;
    if (const auto *act = std::get_if<WireActivations>(&msg.body))
        epoch = act->plan_epoch;
    else if (const auto *rel = std::get_if<WireSeqRelease>(&msg.body))
        epoch = rel->plan_epoch;
    else if (const auto *sh = std::get_if<WireSeqShift>(&msg.body))
        epoch = sh->plan_epoch;
    else
        return true;  // logged and dropped by the caller
    const uint64_t current = fence_epoch_;
    const FenceReason verdict =
        fence_.admit(rm.user_id, msg.session, msg.sequence, *epoch, current, EpochRule::kEqual);
    if (verdict == FenceReason::kAccepted)
        return true;
    // A stale epoch is normal right after a re-plan (what was in flight): debug.
    if (verdict == FenceReason::kStaleEpoch) {
        COLONY_LOG_DEBUG(
            "worker: dropped %s of plan %llu (stale_epoch; the stage serves plan %llu)",
            wire_type_name(wire_message_type(msg)), static_cast<unsigned long long>(*epoch),
            static_cast<unsigned long long>(current));
    } else {
        COLONY_LOG_WARN(
            "worker: dropped %s of plan %llu (%s, session %08x, sequence %u, request %llu) from "
            "key %s",
            wire_type_name(wire_message_type(msg)), static_cast<unsigned long long>(*epoch),
            fence_reason_name(verdict), msg.session, msg.sequence,
            static_cast<unsigned long long>(msg.request_id), rm.user_id.c_str());
    }
    return false;
}

void WorkerData::on_activations(const WireActivations &act, uint64_t request_id) {
    if (!host_.loaded() || !current_) {
        COLONY_LOG_DEBUG("worker: dropped ACTIVATIONS: no stage loaded");
        return;
    }
    const WireAssign &as = current_->assign;
    WirePlanShape shape;
    shape.plan_epoch = as.plan_epoch;
    shape.n_embd = as.n_embd;
    shape.n_ctx = as.n_ctx;
    shape.n_vocab = as.n_vocab;
    shape.n_ubatch = as.n_ubatch;
    shape.n_seq_max = as.n_seq_max;
    try {
        wire_check_activations(act, shape);
    } catch (const Error &e) {
        if (act.plan_epoch != as.plan_epoch) {
            COLONY_LOG_DEBUG("worker: dropped ACTIVATIONS of plan %llu",
                             static_cast<unsigned long long>(act.plan_epoch));
        } else {
            COLONY_LOG_WARN("worker: dropped invalid ACTIVATIONS (request %llu): %s",
                            static_cast<unsigned long long>(request_id), e.what());
        }
        return;
    }
    HostStep step;
    try {
        step = host_.step(act, as.dtype);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("worker: stage %s failed on a ubatch of %u tokens (request %llu): %s",
                         host_.stage().range().str().c_str(), act.n_tokens,
                         static_cast<unsigned long long>(request_id), e.what());
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++status_.ubatches;
        if (act.n_tokens <= kDecodeUbatchMaxTokens) {
            if (decode_ms_.size() >= kMaxDecodeSamples)
                decode_ms_.erase(decode_ms_.begin());
            decode_ms_.push_back(step.compute_ms);
        }
    }
    const char *to = as.is_last ? "the coordinator" : "the next stage";
    WireBody body = std::visit([](auto &&m) -> WireBody { return std::move(m); }, step.out);
    if (!host_.send(std::move(body), to, request_id)) {
        // The next stage (or the coordinator) does not take messages: the
        // coordinator's stall watch notices and re-plans.
        COLONY_LOG_WARN(
            "worker: the output of a ubatch of %u tokens (request %llu) did not reach %s",
            act.n_tokens, static_cast<unsigned long long>(request_id), to);
    }
}

void WorkerData::on_release(const WireSeqRelease &rel, uint64_t request_id) {
    if (!host_.loaded() || !current_)
        return;
    host_.release(rel.seq_id, rel.p0, current_->assign.n_seq_max);
    COLONY_LOG_DEBUG("worker: request %llu: sequence %d released from position %d",
                     static_cast<unsigned long long>(request_id), rel.seq_id, rel.p0);
    if (!current_->assign.is_last && !host_.send(rel, "the next stage", request_id))
        COLONY_LOG_WARN(
            "worker: SEQ_RELEASE of sequence %d (request %llu) did not reach the next stage",
            rel.seq_id, static_cast<unsigned long long>(request_id));
}

void WorkerData::on_shift(const WireSeqShift &shift, uint64_t request_id) {
    if (!host_.loaded() || !current_)
        return;
    if (shift.n_past > static_cast<int32_t>(current_->assign.n_ctx))
        throw Error(ErrorCode::kProtocol, "SEQ_SHIFT n_past " + std::to_string(shift.n_past) +
                                              " beyond the stage's context");
    host_.shift(shift, current_->assign.n_seq_max);
    COLONY_LOG_DEBUG("worker: request %llu: sequence %d shifted by -%d from position %d",
                     static_cast<unsigned long long>(request_id), shift.seq_id, shift.n_discard,
                     shift.p0 + shift.n_discard);
    if (!current_->assign.is_last && !host_.send(shift, "the next stage", request_id))
        COLONY_LOG_WARN(
            "worker: SEQ_SHIFT of sequence %d (request %llu) did not reach the next stage",
            shift.seq_id, static_cast<unsigned long long>(request_id));
}

}  // namespace colony
