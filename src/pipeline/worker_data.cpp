#include "pipeline/worker_data.h"

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "net/transport.h"
#include "net/zap.h"
#include "pipeline/stage_step.h"
#include "runtime/stage.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int kPollMs = 20;
constexpr int kSendTimeoutMs = 2000;

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
            stage_.reset();
            shard_.reset();
            shard_path_.clear();
            push_.reset();
            current_.reset();
            std::lock_guard<std::mutex> lock(mutex_);
            status_.loaded_epoch = 0;
        }
        if (next) {
            try {
                apply(*next);
            } catch (const Error &e) {
                COLONY_LOG_ERROR("worker: cannot load layers [%u,%u): %s", next->assign.layer_first,
                                 next->assign.layer_last, e.what());
                stage_.reset();
                current_.reset();
                std::lock_guard<std::mutex> lock(mutex_);
                status_.loaded_epoch = 0;
                status_.error = e.what();
            }
        }
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
        stage_ = std::make_unique<Stage>(shard_, hp, cfg);
        shard_path_ = a.shard_path;
        if (stage_->is_last() != as.is_last) {
            throw Error(ErrorCode::kInvalidArgument,
                        "the assignment's is_last flag contradicts "
                        "its layer range");
        }
    }
    samplers_ = std::make_unique<SequenceSamplers>(static_cast<int32_t>(as.n_vocab));
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
    COLONY_LOG_INFO("worker: stage %s loaded (plan %llu), %s -> %s", range.str().c_str(),
                    static_cast<unsigned long long>(as.plan_epoch),
                    stage_->is_last() ? "samples" : "hidden states", a.next_endpoint.c_str());
    std::lock_guard<std::mutex> lock(mutex_);
    status_.loaded_epoch = as.plan_epoch;
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
    try {
        out = run_stage_step(*stage_, act, as.dtype, *samplers_);
    } catch (const Error &e) {
        COLONY_LOG_ERROR("worker: stage %s failed on a ubatch of %u tokens: %s",
                         stage_->range().str().c_str(), act.n_tokens, e.what());
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++status_.ubatches;
    }
    if (auto *a = std::get_if<wire_activations>(&out)) {
        send(std::move(*a));
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
