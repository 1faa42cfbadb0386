#include "pipeline/worker_data.h"

#include <chrono>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "net/transport.h"
#include "net/zap.h"
#include "pipeline/logits_dump.h"
#include "pipeline/probe_cache.h"
#include "pipeline/stage_step.h"
#include "pipeline/worker_status.h"
#include "runtime/stage.h"
#include "runtime/stage_probe.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"

namespace colony {

namespace {

constexpr int kPollMs = 20;
constexpr int kSendTimeoutMs = 2000;
constexpr size_t kMaxDecodeSamples = 1024;
constexpr int kProbeDecodeSteps = 8;
constexpr int kProbePrefillTokens = 64;
constexpr std::chrono::seconds kProbeCacheMaxAge{24 * 3600};  // a day: devices change

}  // namespace

WorkerData::WorkerData(zmq::context_t &ctx, zap_handler *zap, const curve_keypair &node_keys,
                       std::string coordinator_key_z85, int n_threads,
                       const std::string &bind_endpoint)
    : ctx_(ctx),
      zap_(zap),
      node_keys_(node_keys),
      coordinator_key_z85_(std::move(coordinator_key_z85)),
      n_threads_(n_threads),
      pull_(ctx, zmq::socket_type::pull) {
    configure_socket(pull_);
    if (zap_) {
        zap_->clear(kZapDomainData);
        zap_->allow(kZapDomainData, coordinator_key_z85_);
        configure_curve_server(pull_, *zap_, kZapDomainData, node_keys_);
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
    return status_;
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
            meter_.unloaded();
            stage_.reset();
            shard_.reset();
            shard_path_.clear();
            push_.reset();
            current_.reset();
            std::lock_guard<std::mutex> lock(mutex_);
            status_.loaded_epoch = 0;
            status_.probe.reset();
        }
        if (next) {
            try {
                apply(*next);
            } catch (const Error &e) {
                COLONY_LOG_ERROR("worker: cannot load layers [%u,%u): %s", next->assign.layer_first,
                                 next->assign.layer_last, e.what());
                meter_.unloaded();
                stage_.reset();
                current_.reset();
                std::lock_guard<std::mutex> lock(mutex_);
                status_.loaded_epoch = 0;
                status_.probe.reset();
                status_.error = e.what();
            }
        }
        if (stage_ && stage_->slowdown() != slowdown_.load())
            stage_->set_slowdown(slowdown_.load());
        try {
            zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs)) <= 0)
                continue;
            received_message rm = recv_message(pull_, {}, zmq::recv_flags::dontwait);
            if (rm.status != RECV_STATUS_OK)
                continue;
            switch (wire_message_type(rm.message)) {
                case WIRE_TYPE_ACTIVATIONS:
                    on_activations(std::get<wire_activations>(rm.message.body));
                    break;
                case WIRE_TYPE_SEQ_RELEASE:
                    on_release(std::get<wire_seq_release>(rm.message.body));
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
    const wire_assign &as = a.assign;
    const LayerRange range{as.layer_first, as.layer_last};
    const bool same_stage =
        stage_ && current_ && shard_path_ == a.shard_path && current_->assign.n_ctx == as.n_ctx &&
        current_->assign.n_seq_max == as.n_seq_max && current_->assign.n_ubatch == as.n_ubatch;
    push_.reset();
    current_.reset();
    if (same_stage) {
        for (uint32_t s = 0; s < as.n_seq_max; ++s)
            stage_->seq_rm(static_cast<int32_t>(s));
    } else {
        stage_.reset();
        meter_.loading(range, 0);
        shard_ = GgufFile::open(a.shard_path.string());
        const ModelHparams hp = ModelHparams::from_gguf(*shard_);
        if (hp.n_layer != as.n_layer || hp.n_embd != as.n_embd || hp.n_vocab != as.n_vocab) {
            throw Error(ErrorCode::kCorrupt,
                        "the shard's hyper-parameters (n_layer " + std::to_string(hp.n_layer) +
                            ", n_embd " + std::to_string(hp.n_embd) + ", n_vocab " +
                            std::to_string(hp.n_vocab) + ") do not match the assignment");
        }
        StageConfig cfg;
        cfg.range = range;
        cfg.n_ctx = as.n_ctx * as.n_seq_max;
        cfg.n_seq_max = as.n_seq_max;
        cfg.n_ctx_seq = as.n_ctx;
        cfg.n_ubatch = as.n_ubatch;
        cfg.n_threads = n_threads_;
        cfg.slowdown = slowdown_.load();
        cfg.load.progress = [this, range](uint64_t done, uint64_t total) {
            meter_.loading(range, total ? static_cast<double>(done) / total : 0.0);
        };
        stage_ = std::make_unique<Stage>(shard_, hp, cfg);
        shard_path_ = a.shard_path;
        if (stage_->is_last() != as.is_last) {
            throw Error(ErrorCode::kInvalidArgument,
                        "the assignment's is_last flag contradicts "
                        "its layer range");
        }
    }
    samplers_ = std::make_unique<SequenceSamplers>(static_cast<int32_t>(as.n_vocab));
    if (as.is_last)
        install_logits_dump(*samplers_, logits_dump_, as.n_vocab);
    if (zap_) {
        zap_->clear(kZapDomainData);
        zap_->allow(kZapDomainData, coordinator_key_z85_);
        if (!a.prev_key_z85.empty())
            zap_->allow(kZapDomainData, a.prev_key_z85);
    }
    push_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::push);
    configure_socket(*push_);
    push_->set(zmq::sockopt::sndtimeo, kSendTimeoutMs);
    if (a.next_key_z85.empty()) {
        configure_insecure(*push_, "data client (to the next stage)");
    } else {
        configure_curve_client(*push_, a.next_key_z85, node_keys_);
    }
    // Connected on the first send: by then every stage of the plan is READY,
    // so the next stage's ZAP handler already admits our key.
    push_connected_ = false;
    current_ = a;
    measure(same_stage);
    meter_.loaded(*stage_);
    COLONY_LOG_INFO("worker: stage %s loaded (plan %llu), %s -> %s", range.str().c_str(),
                    static_cast<unsigned long long>(as.plan_epoch),
                    stage_->is_last() ? "samples" : "hidden states", a.next_endpoint.c_str());
    std::lock_guard<std::mutex> lock(mutex_);
    status_.loaded_epoch = as.plan_epoch;
}

ProbeKey WorkerData::probe_key() const {
    const wire_assign &as = current_->assign;
    ProbeKey k;
    k.range = {as.layer_first, as.layer_last};
    k.is_last = stage_->is_last();
    k.n_threads = n_threads_;
    k.slowdown = stage_->slowdown();
    k.prefill_tokens = static_cast<int>(std::min<uint32_t>(kProbePrefillTokens, as.n_ubatch));
    k.software_version = kSoftwareVersion;
    return k;
}

WorkerData::StageProbe WorkerData::stage_probe(double decode_ms,
                                               double prefill_ms_per_token) const {
    const wire_assign &as = current_->assign;
    StageProbe p;
    p.first = as.layer_first;
    p.last = as.layer_last;
    p.is_last = stage_->is_last();
    p.decode_ms = decode_ms;
    p.prefill_ms_per_token = prefill_ms_per_token;
    p.stage_bytes = stage_->weight_bytes() + stage_->kv_bytes();
    return p;
}

void WorkerData::measure(bool same_stage) {
    const wire_assign &as = current_->assign;
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
            stage_->range().str().c_str(), p.decode_ms, p.prefill_ms_per_token,
            probe_cache_path(shard_path_).c_str());
    } else {
        // Scratch sequence 0: nothing runs on this stage before READY. The
        // faster of two rounds: other work on the device only slows one down.
        const int prefill = static_cast<int>(std::min<uint32_t>(kProbePrefillTokens, as.n_ubatch));
        StageSpeed speed = measure_stage_speed(*stage_, kProbeDecodeSteps, prefill);
        const StageSpeed again = measure_stage_speed(*stage_, kProbeDecodeSteps, prefill);
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
            stage_->range().str().c_str(), p.decode_ms, p.prefill_ms_per_token, stage_->slowdown());
    }
    p.epoch = as.plan_epoch;
    std::lock_guard<std::mutex> lock(mutex_);
    status_.probe = p;
}

void WorkerData::on_activations(const wire_activations &act) {
    if (!stage_ || !current_) {
        COLONY_LOG_DEBUG("worker: dropped ACTIVATIONS: no stage loaded");
        return;
    }
    const wire_assign &as = current_->assign;
    wire_plan_shape shape;
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
            COLONY_LOG_WARN("worker: dropped invalid ACTIVATIONS: %s", e.what());
        }
        return;
    }
    StageOutput out;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        out = run_stage_step(*stage_, act, as.dtype, *samplers_);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("worker: stage %s failed on a ubatch of %u tokens: %s",
                         stage_->range().str().c_str(), act.n_tokens, e.what());
        return;
    }
    const auto t1 = std::chrono::steady_clock::now();
    meter_.record_step(*stage_, std::chrono::duration<double>(t1 - t0).count(),
                       static_cast<uint32_t>(act.outputs.size()));
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++status_.ubatches;
        if (act.n_tokens <= kDecodeUbatchMaxTokens) {
            if (decode_ms_.size() >= kMaxDecodeSamples)
                decode_ms_.erase(decode_ms_.begin());
            decode_ms_.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
    }
    if (auto *a = std::get_if<wire_activations>(&out)) {
        send(std::move(*a));
        meter_.record_hop(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    } else {
        send(std::move(std::get<wire_tokens>(out)));
    }
}

void WorkerData::on_release(const wire_seq_release &rel) {
    if (!stage_ || !current_)
        return;
    const uint32_t n_seq = current_->assign.n_seq_max;
    for (uint32_t s = 0; s < n_seq; ++s) {
        if (rel.seq_id >= 0 && static_cast<uint32_t>(rel.seq_id) != s)
            continue;
        stage_->seq_rm(static_cast<int32_t>(s), rel.p0);
        if (rel.p0 == 0)
            samplers_->release(static_cast<int32_t>(s));
    }
    meter_.record_kv(*stage_);
    if (!current_->assign.is_last)
        send(rel);
}

bool WorkerData::send(wire_body body) {
    if (!push_ || !current_)
        return false;
    wire_message msg;
    msg.sequence = link_counter_++;
    msg.body = std::move(body);
    try {
        if (!push_connected_) {
            push_->connect(current_->next_endpoint);
            push_connected_ = true;
        }
        const std::vector<uint8_t> frame = wire_encode(msg);
        if (push_->send(zmq::buffer(frame), zmq::send_flags::none)) {
            std::lock_guard<std::mutex> lock(mutex_);
            status_.bytes_out += frame.size();
            return true;
        }
        COLONY_LOG_WARN("worker: sending %s to the next stage timed out; dropped",
                        wire_type_name(wire_message_type(msg)));
    } catch (const Error &e) {
        COLONY_LOG_WARN("worker: %s", e.what());
    } catch (const zmq::error_t &e) {
        COLONY_LOG_WARN("worker: send: %s", e.what());
    }
    return false;
}

}  // namespace colony
