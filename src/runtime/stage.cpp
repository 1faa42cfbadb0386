#include "runtime/stage.h"

#include <chrono>
#include <string>
#include <thread>

#include "ggml-cpu.h"
#include "model/gguf_file.h"
#include "model/graph.h"
#include "model/kv_cache.h"
#include "runtime/gpu_device.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/thread_affinity.h"

namespace colony {

int default_thread_count() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 4 : static_cast<int>(n);
}

void Stage::ThreadpoolDeleter::operator()(ggml_threadpool *tp) const {
    ggml_threadpool_free(tp);
}

namespace {
StageConfig with_dynamic_skip_resolved(StageConfig cfg, uint32_t n_layer) {
    cfg.dyn_skip = resolve_dynamic_skip(cfg.dyn_skip, n_layer);
    return cfg;
}
}  // namespace

Stage::Stage(std::shared_ptr<const GgufFile> file, const ModelHparams &hp, const StageConfig &cfg)
    : file_(std::move(file)),
      hp_(hp),
      cfg_(with_dynamic_skip_resolved(cfg, hp.n_layer)),
      gate_(cfg_.dyn_skip, cfg_.range, cfg_.load.skip) {
    if (cfg_.n_ubatch == 0)
        throw Error(ErrorCode::kInvalidArgument, "ubatch size must be positive");
    if (cfg_.n_ctx_seq == 0)
        cfg_.n_ctx_seq = cfg_.n_ctx;
    if (!(cfg_.slowdown >= 1.0))
        throw Error(ErrorCode::kInvalidArgument, "slow-down factor must be >= 1");
    if (cfg_.n_threads <= 0)
        cfg_.n_threads = default_thread_count();

    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev)
        throw Error(ErrorCode::kUnsupported, "ggml has no CPU backend");
    backend_.reset(ggml_backend_dev_init(dev, nullptr));
    if (!backend_)
        throw Error(ErrorCode::kResource, "cannot initialise the ggml CPU backend");
    ggml_threadpool_params tpp = ggml_threadpool_params_default(cfg_.n_threads);
    for (int c : cfg_.cpu.cores) {
        if (c < 0 || c >= GGML_MAX_N_THREADS)
            throw Error(ErrorCode::kInvalidArgument, "core " + std::to_string(c) +
                                                         " is outside ggml's 0.." +
                                                         std::to_string(GGML_MAX_N_THREADS - 1));
        tpp.cpumask[c] = true;
    }
    if (cfg_.cpu.prio < GGML_SCHED_PRIO_LOW || cfg_.cpu.prio > GGML_SCHED_PRIO_REALTIME)
        throw Error(ErrorCode::kInvalidArgument,
                    "thread priority " + std::to_string(cfg_.cpu.prio) + " is outside -1..3");
    tpp.strict_cpu = cfg_.cpu.strict;
    tpp.prio = static_cast<ggml_sched_priority>(cfg_.cpu.prio);
    threadpool_.reset(ggml_threadpool_new(&tpp));
    if (!threadpool_)
        throw Error(ErrorCode::kResource, "cannot create a ggml threadpool");
    n_threads_ = cfg_.n_threads;
    ggml_backend_cpu_set_n_threads(backend_.get(), cfg_.n_threads);
    ggml_backend_cpu_set_threadpool(backend_.get(), threadpool_.get());
    ggml_backend_cpu_set_use_ref(backend_.get(), cfg_.invariance != StageConfig::Invariance::kNone);

    if (cfg_.gpu.n_gpu_layers != 0) {
        ggml_backend_dev_t gdev = find_gpu_device(cfg_.gpu.device);
        gpu_backend_.reset(ggml_backend_dev_init(gdev, nullptr));
        if (!gpu_backend_)
            throw Error(ErrorCode::kResource, std::string("cannot initialise the ggml device ") +
                                                  ggml_backend_dev_name(gdev));
        const uint32_t blocks = cfg_.range.size();
        const bool all =
            cfg_.gpu.n_gpu_layers < 0 || static_cast<uint32_t>(cfg_.gpu.n_gpu_layers) > blocks;
        gpu_.gpu = gdev;
        gpu_.gpu_first =
            cfg_.range.last - (all ? blocks : static_cast<uint32_t>(cfg_.gpu.n_gpu_layers));
        gpu_.gpu_output = all;
    }
    WeightLoadOptions load = cfg_.load;
    load.gpu = gpu_;
    load.n_ctx_seq = cfg_.n_ctx_seq;
    weights_ = std::make_unique<StageWeights>(*file_, hp_, cfg_.range, dev, load);
    // batch-invariant padding: a scratch sequence (id n_seq_max) of at most
    // kInvariantRows - 1 cells, freed after every forward()
    const bool pad = cfg_.invariance == StageConfig::Invariance::kFull;
    const uint32_t scratch = pad ? kScratchCells : 0;
    kv_ = std::make_unique<KvCache>(hp_, cfg_.range, cfg_.n_ctx + scratch,
                                    cfg_.n_seq_max + (scratch ? 1 : 0), cfg_.n_ctx_seq, cfg_.type_k,
                                    cfg_.type_v, ggml_backend_dev_buffer_type(dev),
                                    gpu_.gpu ? ggml_backend_dev_buffer_type(gpu_.gpu) : nullptr,
                                    gpu_.gpu_first, weights_->skip());
    // ... at the front; every sequence's cells in position order (kv_cache.h)
    if (pad)
        kv_->place_by_sequence(cfg_.n_seq_max, kScratchCells);

    // The GPU first: ggml's scheduler gives an op to the first backend that
    // holds its weights or supports it; the CPU (last) takes the rest.
    std::vector<ggml_backend_t> backends;
    if (gpu_backend_)
        backends.push_back(gpu_backend_.get());
    backends.push_back(backend_.get());
    const size_t graph_size = 1024 + 48 * static_cast<size_t>(cfg_.range.size());
    sched_.reset(ggml_backend_sched_new(backends.data(), nullptr, static_cast<int>(backends.size()),
                                        graph_size, false, true));
    // Reserve the compute buffer for the worst case so no request reallocates.
    uint32_t n_tok = std::min(cfg_.n_ubatch, cfg_.n_ctx);
    if (pad)
        n_tok = (n_tok + kInvariantRows - 1) / kInvariantRows * kInvariantRows + kInvariantRows;
    auto worst = build_stage_graph(hp_, *weights_, *kv_, GraphShape{n_tok, kv_->size(), n_tok},
                                   &graph_meta_);
    if (!ggml_backend_sched_reserve(sched_.get(), worst->gf)) {
        throw Error(ErrorCode::kResource, "cannot reserve the compute buffer");
    }
    COLONY_LOG_DEBUG("stage %s: weights %s; KV cache %u cells, %.1f MiB (%s/%s)",
                     cfg_.range.str().c_str(), weights_->describe_buffers().c_str(), kv_->size(),
                     kv_->bytes() / 1048576.0, ggml_type_name(cfg_.type_k),
                     ggml_type_name(cfg_.type_v));
}

std::string Stage::gpu_device() const {
    return gpu_.gpu ? ggml_backend_dev_name(gpu_.gpu) : "";
}

Stage::~Stage() {
    graph_.reset();
    sched_.reset();
}

void Stage::set_n_threads(int n) {
    if (n < 1 || n > cfg_.n_threads)
        throw Error(ErrorCode::kInvalidArgument, "thread count " + std::to_string(n) +
                                                     " is outside 1.." +
                                                     std::to_string(cfg_.n_threads));
    n_threads_ = n;
    ggml_backend_cpu_set_n_threads(backend_.get(), n);
}

void Stage::set_slowdown(double factor) {
    if (!(factor >= 1.0))
        throw Error(ErrorCode::kInvalidArgument, "slow-down factor must be >= 1");
    cfg_.slowdown = factor;
}

bool Stage::is_first() const {
    return weights_->is_first();
}
bool Stage::is_last() const {
    return weights_->is_last();
}
void Stage::seq_cp(int32_t src, int32_t dst, int32_t p1) {
    kv_->seq_cp(src, dst, p1);
}

void Stage::seq_add(int32_t seq, int32_t p0, int32_t p1, int32_t delta) {
    kv_->seq_add(seq, p0, p1, delta);
    if (!kv_->has_shift())
        return;
    if (weights_->skip().covers(cfg_.range)) {  // no block holds keys
        kv_->clear_shifts();
        return;
    }
    // The scheduler's buffers hold one graph at a time: the forward graph
    // kept for reuse is rebuilt on the next forward().
    graph_.reset();
    ggml_backend_sched_reset(sched_.get());
    const auto g = build_k_shift_graph(hp_, *weights_, *kv_);
    if (!ggml_backend_sched_alloc_graph(sched_.get(), g->gf))
        throw Error(ErrorCode::kResource, "cannot allocate the K-shift graph");
    ggml_backend_tensor_set(g->inp_shift, kv_->shifts().data(), 0,
                            kv_->shifts().size() * sizeof(int32_t));
    set_rotation(g->inp_k_rot);
    if (ggml_backend_sched_graph_compute(sched_.get(), g->gf) != GGML_STATUS_SUCCESS)
        throw Error(ErrorCode::kInternal, "the K-shift graph failed");
    ggml_backend_sched_reset(sched_.get());
    kv_->clear_shifts();
}

void Stage::set_rotation(ggml_tensor *rot) {
    if (!rot || !rot->buffer)  // absent, or no block of the graph reads it
        return;
    const auto n = static_cast<uint32_t>(rot->ne[0]);
    std::vector<float> &h = hadamard_[n];
    if (h.empty())
        h = hadamard_matrix(n);
    ggml_backend_tensor_set(rot, h.data(), 0, h.size() * sizeof(float));
}

void Stage::apply_shift(int32_t seq, const KvShift &s) {
    seq_rm(seq, s.p0, s.p0 + s.n_discard);
    seq_add(seq, s.p0 + s.n_discard, s.n_past, -s.n_discard);
}

void Stage::seq_rm(int32_t seq, int32_t p0, int32_t p1) {
    kv_->seq_rm(seq, p0, p1);
    if (p0 <= 0 && p1 < 0)
        gate_.forget(seq);
}

void Stage::observe_cosines(const Ubatch &ub) {
    const StageGraph &g = *graph_;
    std::vector<float> cos(ub.n_tokens);
    for (uint32_t b = 0; b < g.out_cos.size(); ++b) {
        if (!g.out_cos[b])
            continue;
        ggml_backend_tensor_get(g.out_cos[b], cos.data(), 0, cos.size() * sizeof(float));
        gate_.observe(cfg_.range.first + b, cos.data(), ub.seq_id, ub.n_tokens, keep_[b]);
    }
}
int32_t Stage::seq_pos_max(int32_t seq) const {
    return kv_->seq_pos_max(seq);
}
uint32_t Stage::kv_used() const {
    return kv_->used();
}
uint32_t Stage::kv_size() const {  // without the padding's scratch cells
    return kv_->size() - (cfg_.invariance == StageConfig::Invariance::kFull ? kScratchCells : 0);
}
uint64_t Stage::kv_bytes() const {
    return kv_->bytes();
}
uint64_t Stage::weight_bytes() const {
    return weights_->bytes();
}

void Stage::validate(const Ubatch &ub) const {
    if (ub.n_tokens == 0 || ub.n_tokens > cfg_.n_ubatch) {
        throw Error(ErrorCode::kInvalidArgument, "ubatch of " + std::to_string(ub.n_tokens) +
                                                     " tokens; must be 1.." +
                                                     std::to_string(cfg_.n_ubatch));
    }
    if (!ub.pos || !ub.seq_id)
        throw Error(ErrorCode::kInvalidArgument, "ubatch without positions or sequence ids");
    for (uint32_t i = 0; i < ub.n_tokens; ++i) {
        if (ub.seq_id[i] < 0 || static_cast<uint32_t>(ub.seq_id[i]) >= cfg_.n_seq_max) {
            throw Error(ErrorCode::kInvalidArgument, "sequence id " + std::to_string(ub.seq_id[i]) +
                                                         " outside 0.." +
                                                         std::to_string(cfg_.n_seq_max - 1));
        }
    }
    if (is_first()) {
        if (!ub.tokens)
            throw Error(ErrorCode::kInvalidArgument, "first stage needs token ids");
        for (uint32_t i = 0; i < ub.n_tokens; ++i) {
            if (ub.tokens[i] < 0 || static_cast<uint32_t>(ub.tokens[i]) >= hp_.n_vocab) {
                throw Error(ErrorCode::kInvalidArgument,
                            "token id " + std::to_string(ub.tokens[i]) +
                                " outside the vocabulary of " + std::to_string(hp_.n_vocab));
            }
        }
    } else if (!ub.embd) {
        throw Error(ErrorCode::kInvalidArgument,
                    "stage " + cfg_.range.str() + " needs hidden states");
    }
    if (is_last()) {
        if (ub.n_outputs == 0 || ub.n_outputs > ub.n_tokens || !ub.out_ids) {
            throw Error(ErrorCode::kInvalidArgument, "last stage needs 1..n_tokens output rows");
        }
        for (uint32_t i = 0; i < ub.n_outputs; ++i) {
            if (ub.out_ids[i] < 0 || static_cast<uint32_t>(ub.out_ids[i]) >= ub.n_tokens ||
                (i > 0 && ub.out_ids[i] <= ub.out_ids[i - 1])) {
                throw Error(ErrorCode::kInvalidArgument,
                            "output rows must be increasing rows of the ubatch");
            }
        }
    }
}

void Stage::prepare_graph(const Ubatch &ub, uint32_t n_kv, std::vector<uint8_t> block_mode) {
    const uint32_t n_outputs = is_last() ? ub.n_outputs : ub.n_tokens;
    const GraphShape shape{ub.n_tokens, n_kv, n_outputs, std::move(block_mode)};
    const int64_t t0 = now_us();
    if (graph_ && graph_->shape == shape) {
        timings_.reused = true;
        timings_.build_us = 0;
        return;
    }
    graph_.reset();
    ggml_backend_sched_reset(sched_.get());
    graph_ = build_stage_graph(hp_, *weights_, *kv_, shape, &graph_meta_);
    if (!ggml_backend_sched_alloc_graph(sched_.get(), graph_->gf)) {
        graph_.reset();
        throw Error(ErrorCode::kResource, "cannot allocate the compute graph");
    }
    timings_.reused = false;
    timings_.build_us = now_us() - t0;
}

Ubatch Stage::padded(const Ubatch &in) {
    if (cfg_.invariance != StageConfig::Invariance::kFull)
        return in;
    auto round_up = [](uint32_t n) {
        return (n + kInvariantRows - 1) / kInvariantRows * kInvariantRows;
    };
    uint32_t n = round_up(in.n_tokens);
    // The head's matmuls run on the output rows only: make them a multiple of
    // 4 too, with scratch rows (4 more when the padding has too few).
    const uint32_t out_pad = is_last() ? round_up(in.n_outputs) - in.n_outputs : 0;
    if (n - in.n_tokens < out_pad)
        n += kInvariantRows;
    if (n == in.n_tokens)
        return in;
    const uint32_t pad = n - in.n_tokens;
    Ubatch ub = in;
    ub.n_tokens = n;
    if (out_pad > 0) {
        pad_out_.assign(in.out_ids, in.out_ids + in.n_outputs);
        for (uint32_t r = 0; r < out_pad; ++r)
            pad_out_.push_back(static_cast<int32_t>(in.n_tokens + r));
        ub.out_ids = pad_out_.data();
        ub.n_outputs = static_cast<uint32_t>(pad_out_.size());
    }
    const int32_t scratch_seq = static_cast<int32_t>(cfg_.n_seq_max);
    pad_pos_.assign(in.pos, in.pos + in.n_tokens);
    pad_seq_.assign(in.seq_id, in.seq_id + in.n_tokens);
    for (uint32_t i = 0; i < pad; ++i) {
        pad_pos_.push_back(static_cast<int32_t>(i));
        pad_seq_.push_back(scratch_seq);
    }
    ub.pos = pad_pos_.data();
    ub.seq_id = pad_seq_.data();
    if (in.tokens) {  // scratch rows repeat the last token
        pad_tokens_.assign(in.tokens, in.tokens + in.n_tokens);
        pad_tokens_.resize(n, in.tokens[in.n_tokens - 1]);
        ub.tokens = pad_tokens_.data();
    }
    // hidden states: forward() uploads the padding's rows (a copy of the
    // last one) itself, without copying the real ones here
    return ub;
}

const float *Stage::forward(const Ubatch &in) {
    validate(in);
    if (!cfg_.cpu.cores.empty() && pinned_thread_ != std::this_thread::get_id()) {
        // ggml pins its compute threads: with OpenMP on every graph of more
        // than one thread, thread 0 (this caller) included; without OpenMP
        // thread 0 is the threadpool's maker. A lone thread or another caller
        // is pinned here as ggml would: to the set, or (strict) its first core.
        pin_current_thread(cfg_.cpu.strict ? std::vector<int>{cfg_.cpu.cores.front()}
                                           : cfg_.cpu.cores);
        pinned_thread_ = std::this_thread::get_id();
    }
    const Ubatch ub = padded(in);
    const bool scratch = ub.n_tokens != in.n_tokens;
    // Store first (validates ids, positions and capacity; throws with nothing stored).
    kv_->store(ub.seq_id, ub.pos, ub.n_tokens, cells_);
    try {
        const uint32_t n_kv = kv_->n_kv();
        std::vector<uint8_t> modes;
        if (gate_.on())
            modes = gate_.decide(ub.seq_id, ub.pos, ub.n_tokens,
                                 static_cast<int32_t>(cfg_.n_seq_max), keep_);
        prepare_graph(ub, n_kv, std::move(modes));
        const int64_t t0 = now_us();
        StageGraph &g = *graph_;
        for (size_t b = 0; b < g.inp_keep.size(); ++b)
            if (g.inp_keep[b])
                ggml_backend_tensor_set(g.inp_keep[b], keep_[b].data(), 0,
                                        ub.n_tokens * sizeof(float));
        if (g.inp_tokens)
            ggml_backend_tensor_set(g.inp_tokens, ub.tokens, 0, ub.n_tokens * sizeof(int32_t));
        if (g.inp_embd) {
            const size_t row = sizeof(float) * hp_.n_embd;
            ggml_backend_tensor_set(g.inp_embd, in.embd, 0, row * in.n_tokens);
            const float *last = in.embd + size_t(hp_.n_embd) * (in.n_tokens - 1);
            for (uint32_t r = in.n_tokens; r < ub.n_tokens; ++r)  // the padding: the last row again
                ggml_backend_tensor_set(g.inp_embd, last, row * r, row);
        }
        // a stage whose blocks are all skipped (model/layer_skip.h) reads
        // neither positions nor cells: its graph holds no such input
        if (g.inp_pos->buffer)
            ggml_backend_tensor_set(g.inp_pos, ub.pos, 0, ub.n_tokens * sizeof(int32_t));
        if (g.inp_k_idxs->buffer)
            ggml_backend_tensor_set(g.inp_k_idxs, cells_.data(), 0, ub.n_tokens * sizeof(int64_t));
        mask_.resize(static_cast<size_t>(n_kv) * ub.n_tokens);
        if (g.inp_mask) {
            kv_->fill_mask(mask_.data(), n_kv, ub.seq_id, ub.pos, ub.n_tokens);
            ggml_backend_tensor_set(g.inp_mask, mask_.data(), 0,
                                    mask_.size() * sizeof(ggml_fp16_t));
        }
        if (g.inp_mask_swa) {  // gemma3's windowed blocks
            kv_->fill_mask(mask_.data(), n_kv, ub.seq_id, ub.pos, ub.n_tokens, hp_.n_swa);
            ggml_backend_tensor_set(g.inp_mask_swa, mask_.data(), 0,
                                    mask_.size() * sizeof(ggml_fp16_t));
        }
        if (g.inp_out_ids)
            ggml_backend_tensor_set(g.inp_out_ids, ub.out_ids, 0, ub.n_outputs * sizeof(int32_t));
        set_rotation(g.inp_k_rot);
        set_rotation(g.inp_v_rot);

        if (ggml_backend_sched_graph_compute(sched_.get(), g.gf) != GGML_STATUS_SUCCESS) {
            throw Error(ErrorCode::kInternal, "ggml graph compute failed");
        }
        out_.resize(ggml_nelements(g.out));
        ggml_backend_tensor_get(g.out, out_.data(), 0, ggml_nbytes(g.out));
        hidden_.clear();
        if (in.want_hidden && g.out_hidden) {
            hidden_.resize(ggml_nelements(g.out_hidden));
            ggml_backend_tensor_get(g.out_hidden, hidden_.data(), 0, ggml_nbytes(g.out_hidden));
        }
        if (gate_.on())
            observe_cosines(ub);
        timings_.compute_us = now_us() - t0;
        if (cfg_.slowdown > 1.0) {
            std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(
                (cfg_.slowdown - 1.0) * static_cast<double>(timings_.compute_us))));
        }
    } catch (...) {
        // undo this ubatch's cells so the cache is as before the call
        for (uint32_t i = 0; i < ub.n_tokens; ++i)
            kv_->seq_rm(ub.seq_id[i], ub.pos[i], ub.pos[i] + 1);
        throw;
    }
    if (scratch)
        kv_->seq_rm(static_cast<int32_t>(cfg_.n_seq_max));  // the padding's cells
    return out_.data();
}

}  // namespace colony
