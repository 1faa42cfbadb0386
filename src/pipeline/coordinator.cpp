#include "pipeline/coordinator.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "model/gguf_file.h"
#include "model/shard.h"
#include "net/admission.h"
#include "net/node_store.h"
#include "net/tokens.h"
#include "net/transport.h"
#include "net/zap.h"
#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "pipeline/endpoint.h"
#include "pipeline/shard_service.h"
#include "runtime/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

void check_options(const CoordinatorOptions &o, const ModelHparams &hp) {
    if (o.n_parallel == 0 || o.n_parallel > WireLimits{}.max_n_seq) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--parallel must be in 1.." + std::to_string(WireLimits{}.max_n_seq));
    }
    if (o.n_ctx_seq() < 2) {
        throw Error(ErrorCode::kInvalidArgument, "--ctx-size " + std::to_string(o.n_ctx) +
                                                     " leaves " + std::to_string(o.n_ctx_seq()) +
                                                     " positions per sequence with --parallel " +
                                                     std::to_string(o.n_parallel));
    }
    if (o.n_ubatch == 0 || o.n_ubatch > WireLimits{}.max_tokens) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--ubatch-size must be in 1.." + std::to_string(WireLimits{}.max_tokens));
    }
    if (o.workers_expected + 1 > hp.n_layer) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the model has " + std::to_string(hp.n_layer) + " layers: at most " +
                        std::to_string(hp.n_layer - 1) + " workers can take part");
    }
    (void)wire_dtype_row_bytes(o.wire_type, hp.n_embd);  // q8_0 needs n_embd % 32 == 0
}

int64_t us_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions opts) : opts_(std::move(opts)), ctx_(1) {
    file_ = GgufFile::open(opts_.model_path);
    model_.hp = ModelHparams::from_gguf(*file_);
    check_options(opts_, model_.hp);
    tokenizer_ = std::make_unique<Tokenizer>(opts_.model_path);
    const auto t0 = std::chrono::steady_clock::now();
    model_.hash_hex = sha256_file_hex(opts_.model_path);
    model_.hash = hash_from_hex(model_.hash_hex);
    COLONY_LOG_INFO("serve: model %s, %u layers, sha256 %.16s... (%.0f ms)",
                    opts_.model_path.c_str(), model_.hp.n_layer, model_.hash_hex.c_str(),
                    us_since(t0) / 1000.0);

    node_keys_ = load_or_create_node_keys(opts_.config_dir);
    if (!opts_.insecure) {
        zap_ = std::make_unique<ZapHandler>(ctx_);
        tokens_ = std::make_unique<TokenStore>(opts_.config_dir);
        nodes_ = std::make_unique<NodeStore>(opts_.config_dir);
        admission_ = std::make_unique<AdmissionControl>(*tokens_, *zap_, node_keys_.public_z85,
                                                        nodes_.get(), opts_.confirm_pairing);
        std::optional<TokenRecord> active;
        for (const TokenRecord &r : admission_->tokens()) {
            if (!r.revoked) {
                active = r;
                break;
            }
        }
        if (!active)
            active = admission_->create_token();
        join_token_ = join_token_format({node_keys_.public_z85, active->join_keys});
    }

    zmq::socket_t pull(ctx_, zmq::socket_type::pull);
    configure_socket(pull);
    if (zap_) {
        configure_curve_server(pull, *zap_, kZapDomainData, node_keys_);
    } else {
        configure_insecure(pull, "data server");
    }
    const std::string ep = tcp_endpoint(opts_.host, 0);
    try {
        pull.bind(ep);
    } catch (const zmq::error_t &e) {
        throw Error(ErrorCode::kUnavailable, "cannot bind the data socket " + ep + ": " + e.what());
    }
    data_endpoint_ = socket_last_endpoint(pull);

    shards_ = std::make_unique<ShardService>(*file_, model_.hp, model_.hash_hex, opts_.cache_dir);
    state_ = std::make_unique<ClusterState>();
    scheduler_ =
        std::make_unique<BatchScheduler>(ctx_, opts_, file_, model_.hp, node_keys_,
                                         std::make_unique<zmq::socket_t>(std::move(pull)), *state_);
    control_ =
        std::make_unique<CoordinatorControl>(ctx_, opts_, model_, node_keys_, admission_.get(),
                                             *shards_, *state_, announced_endpoint(data_endpoint_));
    scheduler_->start();
    control_->start();
}

void Coordinator::stop() {
    if (control_)
        control_->stop();
    if (scheduler_)
        scheduler_->stop();
}

Coordinator::~Coordinator() {
    stop();
    control_.reset();
    scheduler_.reset();
    admission_.reset();
    zap_.reset();
    ctx_.shutdown();
}

uint16_t Coordinator::control_port() const {
    return control_->port();
}
uint64_t Coordinator::shard_bytes_served() const {
    return shards_->bytes_served();
}

FenceCounts Coordinator::dropped_messages() const {
    FenceCounts c = control_->dropped_messages();
    c += scheduler_->dropped_messages();
    return c;
}

std::string Coordinator::model_name() const {
    const size_t slash = opts_.model_path.find_last_of('/');
    return slash == std::string::npos ? opts_.model_path : opts_.model_path.substr(slash + 1);
}

std::string Coordinator::health_json() const {
    const ClusterState::Snapshot snap = state_->snapshot();
    nlohmann::json j = nlohmann::json::parse(snap.detail_json, nullptr, false);
    if (!j.is_object())
        j = nlohmann::json::object();
    j["status"] = snap.ready ? "ok" : snap.status;
    j["reason"] = snap.ready ? "" : snap.reason;
    j["model"] = model_name();
    j["model_sha256"] = model_.hash_hex;
    j["requests_active"] = scheduler_->n_active();
    j["requests_queued"] = scheduler_->n_queued();
    j["data_bytes_sent"] = scheduler_->bytes_sent();
    return j.dump();
}

}  // namespace colony
