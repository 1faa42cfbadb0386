#include "api/coordinator_backend.h"

#include <memory>
#include <utility>

#include "api/seq_request.h"
#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "pipeline/coordinator.h"
#include "util/error.h"

namespace colony {

CoordinatorBackend::CoordinatorBackend(Coordinator &coordinator, CoordinatorBackendOptions opts)
    : c_(coordinator), opts_(std::move(opts)) {
    const CoordinatorOptions &o = c_.options();
    info_ = model_info_of(o.model_path, c_.hparams(), o.n_ctx_seq(), opts_.model_id);
    info_.skip_layers = o.skip_layers.blocks;
    host_ = this_host_name();
    device_ = cpu_device_name();
    c_.scheduler().set_max_queue(opts_.max_queue);
}

uint64_t CoordinatorBackend::submit(GenerationRequest request, GenerationCallbacks callbacks) {
    return c_.scheduler().submit(
        make_seq_request(std::move(request), std::move(callbacks), c_.tokenizer()));
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
