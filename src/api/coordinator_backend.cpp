#include "api/coordinator_backend.h"

#include <memory>
#include <utility>

#include "pipeline/cluster_state.h"
#include "pipeline/coordinator.h"
#include "pipeline/coordinator_scheduler.h"
#include "pipeline/seq_samplers.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony {

namespace {

FinishReason finish_of(SeqOutcome::End end) {
    switch (end) {
        case SeqOutcome::End::kStop:
            return FinishReason::kStop;
        case SeqOutcome::End::kLength:
            return FinishReason::kLength;
        case SeqOutcome::End::kCancelled:
            return FinishReason::kCancelled;
        case SeqOutcome::End::kError:
            return FinishReason::kError;
    }
    return FinishReason::kError;
}

GenerationResult result_of(const SeqOutcome &o) {
    GenerationResult r;
    r.finish = finish_of(o.end);
    r.n_prompt = o.n_prompt;
    r.n_generated = o.n_generated;
    r.queue_us = o.queue_us;
    r.ttft_us = o.ttft_us;
    r.total_us = o.total_us;
    r.error_code = o.error_code;
    r.error_message = o.error_message;
    return r;
}

}  // namespace

CoordinatorBackend::CoordinatorBackend(Coordinator &coordinator, CoordinatorBackendOptions opts)
    : c_(coordinator), opts_(std::move(opts)) {
    const CoordinatorOptions &o = c_.options();
    const ModelHparams &hp = c_.hparams();
    info_.id = opts_.model_id.empty() ? model_id_from_path(o.model_path) : opts_.model_id;
    info_.path = o.model_path;
    info_.arch = hp.arch_name;
    info_.n_layer = hp.n_layer;
    info_.n_vocab = hp.n_vocab;
    info_.n_ctx_seq = o.n_ctx_seq();
    info_.created_unix = file_mtime_unix(o.model_path);
    host_ = this_host_name();
    device_ = cpu_device_name();
    c_.scheduler().set_max_queue(opts_.max_queue);
}

uint64_t CoordinatorBackend::submit(GenerationRequest request, GenerationCallbacks callbacks) {
    auto req = std::make_unique<SeqRequest>();
    req->prompt = std::move(request.prompt);
    req->max_tokens = request.max_tokens;
    req->sampling = sampling_to_wire(request.sampling);
    req->ignore_eos = request.ignore_eos;
    const Tokenizer *tok = &c_.tokenizer();
    req->is_eog = [tok](int32_t t) { return tok->is_eog(t); };
    req->on_token = std::move(callbacks.on_token);
    req->on_done = [done = std::move(callbacks.on_done)](const SeqOutcome &o) {
        if (done)
            done(result_of(o));
    };
    return c_.scheduler().submit(std::move(req));
}

void CoordinatorBackend::cancel(uint64_t id) {
    c_.scheduler().cancel(id);
}

BackendHealth CoordinatorBackend::health() const {
    const ClusterState::Snapshot snap = c_.state().snapshot();
    BackendHealth h;
    // During a graceful re-plan requests are queued, not refused.
    h.ready = snap.ready || snap.replanning;
    h.status = snap.ready ? "ok" : snap.replanning ? "replanning" : snap.status;
    h.reason = snap.reason;
    return h;
}

std::string CoordinatorBackend::health_detail_json() const {
    return c_.health_json();
}

}  // namespace colony
