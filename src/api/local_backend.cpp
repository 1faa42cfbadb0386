#include "api/local_backend.h"

#include <utility>

#include "api/seq_request.h"
#include "model/gguf_file.h"
#include "pipeline/batch_scheduler.h"
#include "pipeline/cluster_state.h"
#include "runtime/tokenizer.h"
#include "util/log.h"

namespace colony {

namespace {

/// The scheduler's options for a node that serves alone.
CoordinatorOptions scheduler_options(const LocalBackendOptions &o) {
    CoordinatorOptions c;
    c.model_path = o.model_path;
    c.workers_expected = 0;
    c.n_ctx = o.n_ctx;
    c.n_parallel = o.n_parallel;
    c.n_ubatch = o.n_ubatch;
    c.n_threads = o.n_threads;
    c.cpu = o.cpu;
    c.gpu = o.gpu;
    c.type_k = o.type_k;
    c.type_v = o.type_v;
    c.use_mmap = o.use_mmap;
    c.use_repack = o.use_repack;
    c.debug_logits_file = o.debug_logits_file;
    c.measured_planner = false;
    c.kv_window = o.kv_window;
    c.spec = o.spec;
    c.skip_layers = o.skip_layers;
    c.dyn_skip = o.dyn_skip;
    if (o.batch_invariant)
        c.invariance = StageConfig::Invariance::kFull;
    return c;
}

}  // namespace

LocalBackend::LocalBackend(LocalBackendOptions opts) : opts_(scheduler_options(opts)) {
    validate_batch_options(opts_);
    file_ = GgufFile::open(opts_.model_path);
    hp_ = ModelHparams::from_gguf(*file_);
    check_layer_skip(opts_.skip_layers, hp_.n_layer);
    tok_ = std::make_unique<Tokenizer>(opts_.model_path);
    info_ = model_info_of(opts_.model_path, hp_, opts_.n_ctx_seq(), opts.model_id);
    info_.skip_layers = opts_.skip_layers.blocks;
    device_ = cpu_device_name();
    hostname_ = this_host_name();

    // The plan of a cluster of one: every layer here, and this node samples.
    state_ = std::make_unique<ClusterState>();
    LocalPlan plan;
    plan.range = {0, hp_.n_layer};
    plan.is_last = true;
    const uint64_t epoch = state_->set_plan(std::move(plan), "serving alone");
    state_->set_ready(epoch);
    scheduler_ =
        std::make_unique<BatchScheduler>(ctx_, opts_, file_, hp_, no_keys_, nullptr, *state_);
    scheduler_->set_max_queue(opts.max_queue);
    scheduler_->start();  // loads the weights on its thread
}

LocalBackend::~LocalBackend() {
    scheduler_->stop();
}

void LocalBackend::wait_ready() {
    scheduler_->wait_loaded();
    COLONY_LOG_INFO("local backend: %s ready (%u layers, %u sequences x %u positions)",
                    info_.id.c_str(), hp_.n_layer, opts_.n_parallel, info_.n_ctx_seq);
}

uint64_t LocalBackend::submit(GenerationRequest request, GenerationCallbacks callbacks) {
    if (const BackendHealth h = health(); !h.ready) {
        throw Error(ErrorCode::kUnavailable,
                    h.status == "loading" ? "the model is still loading" : h.reason);
    }
    return scheduler_->submit(make_seq_request(std::move(request), std::move(callbacks), *tok_));
}

void LocalBackend::cancel(uint64_t id) {
    scheduler_->cancel(id);
}

BackendHealth LocalBackend::health() const {
    BackendHealth h;
    if (const std::optional<Error> failed = scheduler_->load_error()) {
        h.status = "failed";
        h.reason = std::string("the model failed to load: ") + failed->what();
        return h;
    }
    const StageRuntime st = scheduler_->stage_runtime();
    if (!st.loaded) {
        h.status = "loading";
        h.reason = "loading the model's weights (" +
                   std::to_string(static_cast<int>(100.0 * st.load_progress)) + "%)";
        return h;
    }
    h.ready = true;
    h.status = "ok";
    return h;
}

BackendStats LocalBackend::stats() const {
    BackendStats s;
    s.n_queued = scheduler_->n_queued();
    const size_t active = scheduler_->n_active();
    s.n_running = active;
    s.n_parallel = opts_.n_parallel;
    s.max_queue = scheduler_->max_queue();
    s.prompt_tokens_shared = scheduler_->prompt_tokens_shared();
    const StageRuntime rt = scheduler_->stage_runtime();
    StageStats st;
    st.node_id = "local";
    st.index = 0;
    st.layers = {0, hp_.n_layer};
    st.n_ubatches = rt.ubatches;
    st.compute_seconds = rt.compute_seconds;
    st.kv_used_cells = rt.kv_used_cells;
    st.kv_size_cells = rt.kv_size_cells;
    s.stages.push_back(st);
    return s;
}

uint64_t LocalBackend::mixed_ubatches() const {
    return scheduler_->mixed_ubatches();
}

}  // namespace colony
