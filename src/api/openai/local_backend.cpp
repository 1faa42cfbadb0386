#include "api/openai/local_backend.h"

#include <algorithm>

#include "api/openai/ubatch_builder.h"
#include "model/gguf_file.h"
#include "runtime/sampler.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr int64_t kRateWindowUs = 5'000'000;  // tokens/s is averaged over this window

void validate_options(const LocalBackendOptions &o) {
    auto bad = [](const std::string &msg) { throw Error(ErrorCode::kInvalidArgument, msg); };
    if (o.model_path.empty())
        bad("no model path");
    if (o.n_parallel == 0)
        bad("--parallel must be at least 1");
    if (o.n_ubatch == 0)
        bad("ubatch size must be at least 1");
    if (o.n_parallel > o.n_ubatch) {
        bad("--parallel (" + std::to_string(o.n_parallel) + ") must not exceed the ubatch size (" +
            std::to_string(o.n_ubatch) + ")");
    }
    if (o.n_ctx / o.n_parallel < 2) {
        bad("context of " + std::to_string(o.n_ctx) + " cells is too small for " +
            std::to_string(o.n_parallel) + " parallel sequences");
    }
}

}  // namespace

struct LocalBackend::Pending {
    uint64_t id = 0;
    GenerationRequest req;
    GenerationCallbacks cb;
    std::unique_ptr<Sampler> sampler;
    int64_t t_submit = 0;
};

struct LocalBackend::Slot {
    std::unique_ptr<Pending> p;
    int32_t seq = 0;
    uint32_t n_prompt_done = 0;
    int32_t next_pos = 0;
    int32_t pending_token = -1;
    int32_t n_generated = 0;
    int64_t t_admit = 0;
    int64_t t_first = 0;
};

LocalBackend::LocalBackend(LocalBackendOptions opts) : opts_(std::move(opts)) {
    validate_options(opts_);
    file_ = GgufFile::open(opts_.model_path);
    hp_ = ModelHparams::from_gguf(*file_);
    tok_ = std::make_unique<Tokenizer>(opts_.model_path);
    info_.id = opts_.model_id.empty() ? model_id_from_path(opts_.model_path) : opts_.model_id;
    info_.path = opts_.model_path;
    info_.arch = hp_.arch_name;
    info_.n_layer = hp_.n_layer;
    info_.n_vocab = hp_.n_vocab;
    info_.n_ctx_seq = opts_.n_ctx / opts_.n_parallel;
    info_.created_unix = file_mtime_unix(opts_.model_path);
    device_ = cpu_device_name();
    hostname_ = this_host_name();
    slots_.resize(opts_.n_parallel);
    thread_ = std::thread([this] { run(); });
}

LocalBackend::~LocalBackend() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void LocalBackend::wait_ready() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_cv_.wait(lock, [&] { return state_ != "loading"; });
    if (state_ == "failed")
        throw Error(load_error_code_, load_error_);
}

uint64_t LocalBackend::submit(GenerationRequest request, GenerationCallbacks callbacks) {
    if (request.prompt.empty())
        throw Error(ErrorCode::kInvalidArgument, "empty prompt");
    if (request.max_tokens < 1)
        throw Error(ErrorCode::kInvalidArgument, "max_tokens must be at least 1");
    if (request.prompt.size() >= info_.n_ctx_seq) {
        throw Error(ErrorCode::kOutOfRange,
                    "the prompt has " + std::to_string(request.prompt.size()) +
                        " tokens; a sequence holds at most " + std::to_string(info_.n_ctx_seq - 1) +
                        " prompt tokens");
    }
    for (int32_t t : request.prompt) {
        if (t < 0 || static_cast<uint32_t>(t) >= hp_.n_vocab) {
            throw Error(ErrorCode::kInvalidArgument,
                        "token id " + std::to_string(t) + " outside the vocabulary");
        }
    }
    auto p = std::make_unique<Pending>();
    p->sampler = std::make_unique<Sampler>(request.sampling, static_cast<int32_t>(hp_.n_vocab));
    for (int32_t t : request.prompt)
        p->sampler->accept(t);
    p->req = std::move(request);
    p->cb = std::move(callbacks);
    p->t_submit = now_us();
    uint64_t id = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_)
            throw Error(ErrorCode::kUnavailable, "the server is shutting down");
        if (state_ == "loading")
            throw Error(ErrorCode::kUnavailable, "the model is still loading");
        if (state_ == "failed")
            throw Error(ErrorCode::kUnavailable, "the model failed to load: " + load_error_);
        if (queue_.size() + n_running_.load() >= opts_.n_parallel + opts_.max_queue) {
            throw Error(ErrorCode::kResource, "queue full: " + std::to_string(queue_.size()) +
                                                  " requests are waiting; try again later");
        }
        id = next_id_.fetch_add(1);
        p->id = id;
        queue_.push_back(std::move(p));
    }
    cv_.notify_all();
    return id;
}

void LocalBackend::cancel(uint64_t id) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        cancel_ids_.insert(id);
    }
    cv_.notify_all();
}

BackendHealth LocalBackend::health() const {
    std::lock_guard<std::mutex> lock(mutex_);
    BackendHealth h;
    if (stop_) {
        h.status = "no workers";
        h.reason = "shutting down";
    } else if (state_ == "loading") {
        h.status = "loading";
        const uint64_t total = load_total_.load();
        const int pct = total ? static_cast<int>(100.0 * load_done_.load() / total) : 0;
        h.reason = "loading the model's weights (" + std::to_string(pct) + "%)";
    } else if (state_ == "failed") {
        h.status = "failed";
        h.reason = "the model failed to load: " + load_error_;
    } else {
        h.ready = true;
        h.status = "ok";
    }
    return h;
}

BackendStats LocalBackend::stats() const {
    BackendStats s;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        s.n_queued = queue_.size();
    }
    s.n_running = n_running_.load();
    s.n_parallel = opts_.n_parallel;
    s.max_queue = opts_.max_queue;
    StageStats st;
    st.node_id = "local";
    st.index = 0;
    st.layers = {0, hp_.n_layer};
    {
        std::lock_guard<std::mutex> lock(counters_mutex_);
        st.n_ubatches = counters_.n_ubatches;
        st.compute_seconds = counters_.compute_seconds;
        st.kv_size_cells = counters_.kv_size;
    }
    st.kv_used_cells = kv_used_.load();
    s.stages.push_back(st);
    return s;
}

uint64_t LocalBackend::mixed_ubatches() const {
    std::lock_guard<std::mutex> lock(counters_mutex_);
    return counters_.n_mixed_ubatches;
}

// ---- scheduler thread ----------------------------------------------------

void LocalBackend::run() {
    try {
        load();
    } catch (const std::exception &e) {
        const Error *ce = dynamic_cast<const Error *>(&e);
        COLONY_LOG_ERROR("local backend: loading %s failed: %s", opts_.model_path.c_str(),
                         e.what());
        std::unique_lock<std::mutex> lock(mutex_);
        state_ = "failed";
        load_error_ = e.what();
        load_error_code_ = ce ? ce->code() : ErrorCode::kInternal;
        ready_cv_.notify_all();
        cv_.wait(lock, [&] { return stop_; });
        return;
    }
    while (wait_for_work()) {
        std::vector<std::unique_ptr<Pending>> dropped;
        take_cancellations(dropped);
        for (auto &p : dropped)
            finish_pending(*p, FinishReason::kCancelled, nullptr);
        admit();
        step();
    }
    shutdown_all();
}

void LocalBackend::load() {
    StageConfig cfg;
    cfg.range = {0, hp_.n_layer};
    cfg.n_ctx = opts_.n_ctx;
    cfg.n_seq_max = opts_.n_parallel;
    cfg.n_ctx_seq = info_.n_ctx_seq;
    cfg.n_ubatch = opts_.n_ubatch;
    cfg.type_k = opts_.type_k;
    cfg.type_v = opts_.type_v;
    cfg.n_threads = opts_.n_threads;
    cfg.load.use_mmap = opts_.use_mmap;
    cfg.load.use_repack = opts_.use_repack;
    cfg.load.progress = [this](uint64_t done, uint64_t total) {
        load_done_ = done;
        load_total_ = total;
    };
    stage_ = std::make_unique<Stage>(file_, hp_, cfg);
    {
        std::lock_guard<std::mutex> lock(counters_mutex_);
        counters_.weight_bytes = stage_->weight_bytes();
        counters_.kv_bytes = stage_->kv_bytes();
        counters_.kv_size = stage_->kv_size();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = "ready";
    ready_cv_.notify_all();
    COLONY_LOG_INFO("local backend: %s ready (%u layers, %u sequences x %u positions)",
                    info_.id.c_str(), hp_.n_layer, opts_.n_parallel, info_.n_ctx_seq);
}

bool LocalBackend::wait_for_work() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] {
        return stop_ || !queue_.empty() || !cancel_ids_.empty() || n_running_.load() > 0;
    });
    return !stop_;
}

void LocalBackend::take_cancellations(std::vector<std::unique_ptr<Pending>> &dropped) {
    std::unordered_set<uint64_t> ids;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (cancel_ids_.empty())
            return;
        ids.swap(cancel_ids_);
        for (auto it = queue_.begin(); it != queue_.end();) {
            if (ids.count((*it)->id)) {
                dropped.push_back(std::move(*it));
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto &slot : slots_) {
        if (slot && ids.count(slot->p->id))
            finish(*slot, FinishReason::kCancelled);
    }
}

void LocalBackend::admit() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
        if (slots_[i])
            continue;
        auto slot = std::make_unique<Slot>();
        slot->p = std::move(queue_.front());
        queue_.pop_front();
        slot->seq = static_cast<int32_t>(i);
        slot->t_admit = now_us();
        slots_[i] = std::move(slot);
        admission_order_.push_back(i);
        n_running_.fetch_add(1);
        COLONY_LOG_DEBUG("local backend: request %llu -> sequence %zu (%zu prompt tokens)",
                         static_cast<unsigned long long>(slots_[i]->p->id), i,
                         slots_[i]->p->req.prompt.size());
    }
}

void LocalBackend::step() {
    if (admission_order_.empty())
        return;
    std::vector<BatchSeqView> views;
    views.reserve(admission_order_.size());
    for (size_t idx : admission_order_) {
        const Slot &s = *slots_[idx];
        views.push_back({s.seq, &s.p->req.prompt, s.n_prompt_done, s.next_pos, s.pending_token});
    }
    const std::vector<size_t> order = admission_order_;  // finish() edits admission_order_
    const UbatchPlan plan = build_ubatch(views, opts_.n_ubatch);
    if (plan.empty())
        return;

    Ubatch ub;
    ub.n_tokens = static_cast<uint32_t>(plan.tokens.size());
    ub.tokens = plan.tokens.data();
    ub.pos = plan.pos.data();
    ub.seq_id = plan.seq_id.data();
    ub.out_ids = plan.out_ids.data();
    ub.n_outputs = static_cast<uint32_t>(plan.out_ids.size());
    // A ubatch of prefill chunks that end no prompt wants no logits, but the
    // last stage computes at least one row: ask for the last and ignore it.
    const int32_t last_row = static_cast<int32_t>(ub.n_tokens - 1);
    if (ub.n_outputs == 0) {
        ub.out_ids = &last_row;
        ub.n_outputs = 1;
    }
    const float *logits = nullptr;
    const int64_t t0 = now_us();
    try {
        logits = stage_->forward(ub);
    } catch (const Error &e) {
        COLONY_LOG_WARN("local backend: forward of %u tokens failed: %s", ub.n_tokens, e.what());
        std::vector<bool> in_batch(order.size(), false);
        for (size_t i = 0; i < order.size(); ++i) {
            in_batch[i] = views[i].pending_token >= 0 || plan.n_prompt_taken[i] > 0;
        }
        for (size_t i = 0; i < order.size(); ++i) {
            if (in_batch[i] && slots_[order[i]])
                finish(*slots_[order[i]], FinishReason::kError, &e);
        }
        kv_used_ = stage_->kv_used();
        return;
    }
    const int64_t compute_us = now_us() - t0;
    bool has_decode = false, has_prompt = false;
    for (size_t i = 0; i < order.size(); ++i) {
        has_decode = has_decode || views[i].pending_token >= 0;
        has_prompt = has_prompt || plan.n_prompt_taken[i] > 0;
    }

    for (size_t i = 0; i < order.size(); ++i) {
        Slot &s = *slots_[order[i]];
        if (views[i].pending_token >= 0) {
            s.pending_token = -1;
            s.next_pos += 1;
        }
        s.n_prompt_done += plan.n_prompt_taken[i];
        s.next_pos += static_cast<int32_t>(plan.n_prompt_taken[i]);
    }
    const size_t row_size = hp_.n_vocab;
    for (size_t r = 0; r < plan.out_ids.size(); ++r) {
        Slot *s = slots_[order[plan.out_seq_index[r]]].get();
        if (!s)
            continue;
        int32_t token = -1;
        try {
            token = s->p->sampler->sample(logits + r * row_size);
        } catch (const Error &e) {
            finish(*s, FinishReason::kError, &e);
            continue;
        }
        deliver(*s, token);
    }
    kv_used_ = stage_->kv_used();
    record_step(compute_us, static_cast<uint32_t>(plan.out_ids.size()), has_decode && has_prompt);
}

void LocalBackend::deliver(Slot &slot, int32_t token) {
    if (slot.t_first == 0)
        slot.t_first = now_us();
    if (!slot.p->req.ignore_eos && tok_->is_eog(token)) {
        finish(slot, FinishReason::kStop);
        return;
    }
    try {
        if (slot.p->cb.on_token)
            slot.p->cb.on_token(token);
    } catch (const std::exception &e) {
        COLONY_LOG_ERROR("local backend: on_token threw: %s", e.what());
    }
    ++slot.n_generated;
    if (slot.n_generated >= slot.p->req.max_tokens ||
        static_cast<uint32_t>(slot.next_pos) >= info_.n_ctx_seq) {
        finish(slot, FinishReason::kLength);
        return;
    }
    slot.pending_token = token;
}

void LocalBackend::finish(Slot &slot, FinishReason reason, const Error *error) {
    const int32_t seq = slot.seq;
    stage_->seq_rm(seq);
    std::unique_ptr<Slot> owned = std::move(slots_[static_cast<size_t>(seq)]);
    admission_order_.erase(
        std::remove(admission_order_.begin(), admission_order_.end(), static_cast<size_t>(seq)),
        admission_order_.end());
    n_running_.fetch_sub(1);
    kv_used_ = stage_->kv_used();

    COLONY_LOG_DEBUG("local backend: request %llu (sequence %d) %s after %d tokens",
                     static_cast<unsigned long long>(owned->p->id), seq, finish_reason_name(reason),
                     owned->n_generated);
    GenerationResult r;
    r.finish = reason;
    r.n_prompt = static_cast<int32_t>(owned->p->req.prompt.size());
    r.n_generated = owned->n_generated;
    const int64_t t0 = owned->p->t_submit;
    r.queue_us = owned->t_admit - t0;
    r.ttft_us = owned->t_first ? owned->t_first - t0 : 0;
    r.total_us = now_us() - t0;
    if (error) {
        r.error_code = error->code();
        r.error_message = error->what();
    }
    try {
        if (owned->p->cb.on_done)
            owned->p->cb.on_done(r);
    } catch (const std::exception &e) {
        COLONY_LOG_ERROR("local backend: on_done threw: %s", e.what());
    }
}

void LocalBackend::finish_pending(Pending &p, FinishReason reason, const Error *error) {
    GenerationResult r;
    r.finish = reason;
    r.n_prompt = static_cast<int32_t>(p.req.prompt.size());
    r.total_us = now_us() - p.t_submit;
    r.queue_us = r.total_us;
    if (error) {
        r.error_code = error->code();
        r.error_message = error->what();
    }
    try {
        if (p.cb.on_done)
            p.cb.on_done(r);
    } catch (const std::exception &e) {
        COLONY_LOG_ERROR("local backend: on_done threw: %s", e.what());
    }
}

void LocalBackend::record_step(int64_t compute_us, uint32_t n_sampled, bool mixed) {
    const int64_t now = now_us();
    std::lock_guard<std::mutex> lock(counters_mutex_);
    counters_.n_ubatches += 1;
    counters_.n_mixed_ubatches += mixed ? 1 : 0;
    counters_.compute_seconds += compute_us / 1e6;
    counters_.recent.emplace_back(now, n_sampled);
    while (!counters_.recent.empty() && counters_.recent.front().first < now - kRateWindowUs) {
        counters_.recent.pop_front();
    }
}

void LocalBackend::shutdown_all() {
    const Error err(ErrorCode::kUnavailable, "the server is shutting down");
    for (auto &slot : slots_) {
        if (slot)
            finish(*slot, FinishReason::kError, &err);
    }
    std::deque<std::unique_ptr<Pending>> queued;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queued.swap(queue_);
    }
    for (auto &p : queued)
        finish_pending(*p, FinishReason::kError, &err);
}

}  // namespace colony
