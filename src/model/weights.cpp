#include "model/weights.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "ggml-alloc.h"
#include "ggml-cpu.h"
#include "model/gguf_file.h"
#include "model/mapped_file.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

/// One tensor to load: where it comes from, what shape it must have, the op
/// that consumes it (decides the buffer type) and where it goes.
struct Want {
    std::string name;            // name given to our tensor
    const GgufTensor *src;       // tensor in the file
    std::vector<int64_t> shape;  // expected ne[], innermost first
    ggml_op op;                  // GGML_OP_MUL_MAT(_ID), GGML_OP_GET_ROWS or GGML_OP_NONE
    ggml_tensor **slot;          // where the created tensor is stored
    bool gpu = false;            // offloaded (WeightLoadOptions::gpu)
};

std::string shape_str(const int64_t *ne, int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i)
        s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

/// Whether `buft` can hold `w` for `op` on `dev`; mirrors llama.cpp's
/// weight_buft_supported: build the op on a dummy buffer and ask supports_op.
bool buft_supports(ggml_tensor *w, ggml_op op, ggml_backend_buffer_type_t buft,
                   ggml_backend_dev_t dev) {
    if (op == GGML_OP_NONE)
        return true;
    ggml_init_params params{ggml_tensor_overhead() * 8, nullptr, true};
    ggml_context_ptr ctx{ggml_init(params)};
    ggml_tensor *op_tensor = nullptr;
    if (op == GGML_OP_MUL_MAT) {
        ggml_tensor *b =
            ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F32, w->ne[0], 512, w->ne[2], w->ne[3]);
        op_tensor = ggml_mul_mat(ctx.get(), w, b);
    } else if (op == GGML_OP_MUL_MAT_ID) {
        // llama.cpp's weight_buft_supported: n_expert_used = min(2, n_expert)
        const int64_t n_used = std::min<int64_t>(2, w->ne[2]);
        ggml_tensor *b = ggml_new_tensor_3d(ctx.get(), GGML_TYPE_F32, w->ne[0], n_used, 512);
        ggml_tensor *ids = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_I32, n_used, 512);
        op_tensor = ggml_mul_mat_id(ctx.get(), w, b, ids);
    } else {
        ggml_tensor *b = ggml_new_tensor_1d(ctx.get(), GGML_TYPE_I32, 512);
        op_tensor = ggml_get_rows(ctx.get(), w, b);
    }
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
    w->buffer = dummy;
    const bool ok = ggml_backend_dev_supports_op(dev, op_tensor);
    w->buffer = nullptr;
    ggml_backend_buffer_free(dummy);
    return ok;
}

std::vector<ggml_backend_buffer_type_t> extra_bufts(ggml_backend_dev_t dev) {
    std::vector<ggml_backend_buffer_type_t> out;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    auto fn = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"));
    if (!fn)
        return out;
    for (ggml_backend_buffer_type_t *p = fn(dev); p && *p; ++p)
        out.push_back(*p);
    return out;
}

void pread_all(int fd, void *dst, uint64_t size, uint64_t offset, const std::string &path) {
    auto *p = static_cast<uint8_t *>(dst);
    while (size > 0) {
        const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
        if (n <= 0) {
            throw Error(ErrorCode::kCorrupt,
                        "read of " + path + " failed at offset " + std::to_string(offset) +
                            (n == 0 ? ": unexpected end of file"
                                    : ": " + std::string(std::strerror(errno))));
        }
        p += n;
        size -= static_cast<uint64_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

struct FileDescriptor {
    int fd;
    explicit FileDescriptor(const std::string &path)
        : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (fd < 0)
            throw Error(ErrorCode::kNotFound, "cannot open " + path + ": " + std::strerror(errno));
    }
    ~FileDescriptor() { ::close(fd); }
};

}  // namespace

struct StageWeights::Pending {
    std::vector<Want> wants;
    std::vector<std::pair<ggml_tensor **, ggml_tensor **>> low_rank;  // (lr_b, lr_a) slots
};

StageWeights::StageWeights(const GgufFile &file, const ModelHparams &hp, LayerRange range,
                           ggml_backend_dev_t dev, const WeightLoadOptions &opts)
    : range_(range), skip_(opts.skip.within(range)) {
    if (range.empty() || range.last > hp.n_layer) {
        throw Error(ErrorCode::kOutOfRange, "layer range " + range.str() +
                                                " is outside the model's " +
                                                std::to_string(hp.n_layer) + " layers");
    }
    const bool first = range.first == 0;
    const bool last = (range.last == hp.n_layer && !opts.no_head) || opts.early_exit_head;
    layers_.resize(range.size());

    Pending pending;
    bool to_gpu = false;  // where the tensors want() adds go
    auto want = [&](const std::string &name, std::vector<int64_t> shape, ggml_op op,
                    ggml_tensor **slot, bool required, const std::string &source = "") {
        const GgufTensor *src = file.find(source.empty() ? name : source);
        const GgufTensor *lr_a = src ? nullptr : file.find(name + ".lr_a");
        const GgufTensor *lr_b = src ? nullptr : file.find(name + ".lr_b");
        if (lr_a && lr_b && op == GGML_OP_MUL_MAT && shape.size() == 2) {
            // low-rank factors (model/compress.h): lr_a {n_in, r}, lr_b {r, n_out}
            const int64_t r = lr_a->meta->ne[1];
            low_rank_slots_.push_back(nullptr);
            pending.wants.push_back(
                {name + ".lr_a", lr_a, {shape[0], r}, op, &low_rank_slots_.back(), to_gpu});
            pending.wants.push_back({name + ".lr_b", lr_b, {r, shape[1]}, op, slot, to_gpu});
            pending.low_rank.emplace_back(slot, &low_rank_slots_.back());
            return;
        }
        if (!src) {
            if (required)
                throw Error(ErrorCode::kCorrupt, file.path() + ": missing tensor '" + name + "'");
            return;
        }
        pending.wants.push_back({name, src, std::move(shape), op, slot, to_gpu});
    };
    const int64_t E = hp.n_embd, V = hp.n_vocab, F = hp.n_ff;
    const int64_t Q = hp.n_embd_q(), K = hp.n_embd_k_gqa(), Vg = hp.n_embd_v_gqa();
    if (first)
        want("token_embd.weight", {E, V}, GGML_OP_GET_ROWS, &tok_embd, true);
    if (last) {
        to_gpu = opts.gpu.gpu != nullptr && opts.gpu.gpu_output;
        want("output_norm.weight", {E}, GGML_OP_NONE, &output_norm, true);
        const bool tied = file.find("output.weight") == nullptr;
        want("output.weight", {E, V}, GGML_OP_MUL_MAT, &output, true,
             tied ? "token_embd.weight" : "");
        to_gpu = false;
    }
    if (hp.arch == Arch::kPhi3) {
        const bool long_ctx = opts.n_ctx_seq > hp.n_ctx_orig;
        want("rope_freqs.weight", {hp.n_rot / 2}, GGML_OP_NONE, &rope_freqs, false,
             long_ctx ? "rope_factors_long.weight" : "rope_factors_short.weight");
    } else {
        want("rope_freqs.weight", {hp.n_rot / 2}, GGML_OP_NONE, &rope_freqs, false);
    }
    for (uint32_t il = range.first; il < range.last; ++il) {
        if (skip_.contains(il))
            continue;
        LayerWeights &l = layers_[il - range.first];
        const std::string p = "blk." + std::to_string(il) + ".";
        to_gpu = opts.gpu.on_gpu(il);
        want(p + "attn_norm.weight", {E}, GGML_OP_NONE, &l.attn_norm, true);
        if (file.find(p + "attn_qkv.weight")) {
            want(p + "attn_qkv.weight", {E, Q + K + Vg}, GGML_OP_MUL_MAT, &l.wqkv, true);
            want(p + "attn_qkv.bias", {Q + K + Vg}, GGML_OP_NONE, &l.bqkv, false);
        } else {
            want(p + "attn_q.weight", {E, Q}, GGML_OP_MUL_MAT, &l.wq, true);
            want(p + "attn_k.weight", {E, K}, GGML_OP_MUL_MAT, &l.wk, true);
            want(p + "attn_v.weight", {E, Vg}, GGML_OP_MUL_MAT, &l.wv, true);
        }
        want(p + "attn_output.weight", {Q, E}, GGML_OP_MUL_MAT, &l.wo, true);
        want(p + "attn_q.bias", {Q}, GGML_OP_NONE, &l.bq, false);
        want(p + "attn_k.bias", {K}, GGML_OP_NONE, &l.bk, false);
        want(p + "attn_v.bias", {Vg}, GGML_OP_NONE, &l.bv, false);
        want(p + "attn_output.bias", {E}, GGML_OP_NONE, &l.bo, false);
        want(p + "attn_q_norm.weight", {hp.head_dim_k}, GGML_OP_NONE, &l.q_norm, hp.has_qk_norm);
        want(p + "attn_k_norm.weight", {hp.head_dim_k}, GGML_OP_NONE, &l.k_norm, hp.has_qk_norm);
        const bool gpt_oss = hp.arch == Arch::kGptOss;
        want(p + "ffn_norm.weight", {E}, GGML_OP_NONE, &l.ffn_norm, true,
             gpt_oss ? p + "post_attention_norm.weight" : "");
        if (gpt_oss)
            want(p + "attn_sinks.weight", {hp.n_head}, GGML_OP_NONE, &l.attn_sinks, true);
        if (hp.arch == Arch::kGemma3) {
            want(p + "post_attention_norm.weight", {E}, GGML_OP_NONE, &l.attn_post_norm, true);
            want(p + "post_ffw_norm.weight", {E}, GGML_OP_NONE, &l.ffn_post_norm, true);
        }
        if (hp.is_moe()) {
            const int64_t X = hp.n_expert, Fx = hp.n_ff_exp;
            want(p + "ffn_gate_inp.weight", {E, X}, GGML_OP_MUL_MAT, &l.ffn_gate_inp, true);
            want(p + "ffn_gate_exps.weight", {E, Fx, X}, GGML_OP_MUL_MAT_ID, &l.ffn_gate_exps,
                 true);
            want(p + "ffn_up_exps.weight", {E, Fx, X}, GGML_OP_MUL_MAT_ID, &l.ffn_up_exps, true);
            want(p + "ffn_down_exps.weight", {Fx, E, X}, GGML_OP_MUL_MAT_ID, &l.ffn_down_exps,
                 true);
            if (gpt_oss) {
                want(p + "ffn_gate_inp.bias", {X}, GGML_OP_NONE, &l.ffn_gate_inp_b, true);
                want(p + "ffn_gate_exps.bias", {Fx, X}, GGML_OP_NONE, &l.ffn_gate_exps_b, true);
                want(p + "ffn_up_exps.bias", {Fx, X}, GGML_OP_NONE, &l.ffn_up_exps_b, true);
                want(p + "ffn_down_exps.bias", {E, X}, GGML_OP_NONE, &l.ffn_down_exps_b, true);
            }
            if (hp.n_ff_shexp > 0) {
                const int64_t Fs = hp.n_ff_shexp;
                want(p + "ffn_gate_inp_shexp.weight", {E}, GGML_OP_MUL_MAT, &l.ffn_gate_inp_shexp,
                     true);
                want(p + "ffn_gate_shexp.weight", {E, Fs}, GGML_OP_MUL_MAT, &l.ffn_gate_shexp,
                     true);
                want(p + "ffn_up_shexp.weight", {E, Fs}, GGML_OP_MUL_MAT, &l.ffn_up_shexp, true);
                want(p + "ffn_down_shexp.weight", {Fs, E}, GGML_OP_MUL_MAT, &l.ffn_down_shexp,
                     true);
            }
            continue;
        }
        const bool fused_up = hp.arch == Arch::kPhi3;  // [gate; up] in ffn_up
        if (!fused_up)
            want(p + "ffn_gate.weight", {E, F}, GGML_OP_MUL_MAT, &l.ffn_gate, true);
        want(p + "ffn_up.weight", {E, fused_up ? 2 * F : F}, GGML_OP_MUL_MAT, &l.ffn_up, true);
        want(p + "ffn_down.weight", {F, E}, GGML_OP_MUL_MAT, &l.ffn_down, true);
    }

    // Create our tensors (metadata only) and check shapes.
    ggml_init_params params{ggml_tensor_overhead() * (pending.wants.size() + 1), nullptr, true};
    ctx_.reset(ggml_init(params));
    for (Want &w : pending.wants) {
        const ggml_tensor *m = w.src->meta;
        bool ok = ggml_n_dims(m) <= static_cast<int>(w.shape.size());
        for (int d = 0; d < GGML_MAX_DIMS && ok; ++d) {
            const int64_t expect = d < static_cast<int>(w.shape.size()) ? w.shape[d] : 1;
            ok = m->ne[d] == expect;
        }
        if (!ok) {
            throw Error(ErrorCode::kCorrupt,
                        file.path() + ": tensor '" + w.src->name + "' has wrong shape; expected " +
                            shape_str(w.shape.data(), static_cast<int>(w.shape.size())) + ", got " +
                            shape_str(m->ne, ggml_n_dims(m)));
        }
        ggml_tensor *t = ggml_new_tensor(ctx_.get(), m->type, GGML_MAX_DIMS, m->ne);
        ggml_set_name(t, w.name.c_str());
        *w.slot = t;
    }
    for (const auto &[b, a] : pending.low_rank)
        low_rank_[*b] = *a;

    // Choose a buffer type per tensor: an extra (repacking) type when it
    // supports the op, else plain CPU memory (mapped or copied).
    const std::vector<ggml_backend_buffer_type_t> extras =
        opts.use_repack ? extra_bufts(dev) : std::vector<ggml_backend_buffer_type_t>{};
    std::map<ggml_backend_buffer_type_t, std::vector<const Want *>> by_buft;
    std::vector<const Want *> plain;
    ggml_backend_buffer_type_t gpu_buft =
        opts.gpu.gpu ? ggml_backend_dev_buffer_type(opts.gpu.gpu) : nullptr;
    for (const Want &w : pending.wants) {
        if (w.gpu && buft_supports(*w.slot, w.op, gpu_buft, opts.gpu.gpu)) {
            by_buft[gpu_buft].push_back(&w);
            continue;
        }
        ggml_backend_buffer_type_t chosen = nullptr;
        for (auto *buft :
             w.op == GGML_OP_NONE ? std::vector<ggml_backend_buffer_type_t>{} : extras) {
            if (buft_supports(*w.slot, w.op, buft, dev)) {
                chosen = buft;
                break;
            }
        }
        if (chosen) {
            by_buft[chosen].push_back(&w);
        } else {
            plain.push_back(&w);
        }
    }
    if (!opts.use_mmap) {
        auto &cpu = by_buft[ggml_backend_dev_buffer_type(dev)];
        cpu.insert(cpu.end(), plain.begin(), plain.end());
    }

    uint64_t total = 0, done = 0;
    for (const Want &w : pending.wants)
        total += w.src->nbytes;
    auto report = [&](uint64_t n) {
        done += n;
        if (opts.progress)
            opts.progress(done, total);
    };

    // Allocated buffers: copy (and repack) from the file with pread.
    FileDescriptor fd(file.path());
    std::vector<uint8_t> scratch;
    for (auto &[buft, list] : by_buft) {
        const size_t align = ggml_backend_buft_get_alignment(buft);
        size_t size = 0;
        for (const Want *w : list)
            size += GGML_PAD(ggml_backend_buft_get_alloc_size(buft, *w->slot), align);
        ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, std::max<size_t>(size, 1));
        if (!buf) {
            throw Error(ErrorCode::kResource, std::string("cannot allocate ") +
                                                  std::to_string(size >> 20) + " MiB of " +
                                                  ggml_backend_buft_name(buft) + " for weights");
        }
        buffers_.emplace_back(buf);
        ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
        ggml_tallocr talloc = ggml_tallocr_new(buf);
        for (const Want *w : list) {
            if (ggml_tallocr_alloc(&talloc, *w->slot) != GGML_STATUS_SUCCESS) {
                throw Error(ErrorCode::kResource, "cannot place tensor " + w->name);
            }
            scratch.resize(w->src->nbytes);
            pread_all(fd.fd, scratch.data(), w->src->nbytes, w->src->offset, file.path());
            ggml_backend_tensor_set(*w->slot, scratch.data(), 0, w->src->nbytes);
            bytes_ += ggml_backend_buffer_get_alloc_size(buf, *w->slot);
            report(w->src->nbytes);
        }
    }
    scratch.clear();
    scratch.shrink_to_fit();

    // Mapped tensors: cluster by file offset so only needed ranges are mapped.
    if (opts.use_mmap && !plain.empty()) {
        std::sort(plain.begin(), plain.end(),
                  [](const Want *a, const Want *b) { return a->src->offset < b->src->offset; });
        constexpr uint64_t kMaxGap = 4ull << 20;
        size_t i = 0;
        while (i < plain.size()) {
            size_t j = i + 1;
            uint64_t begin = plain[i]->src->offset, end = begin + plain[i]->src->nbytes;
            while (j < plain.size() && plain[j]->src->offset <= end + kMaxGap) {
                end = std::max(end, plain[j]->src->offset + plain[j]->src->nbytes);
                ++j;
            }
            auto map = std::make_unique<MappedRange>(file.path(), begin, end - begin, false);
            uint64_t max_tensor = 0;
            for (size_t k = i; k < j; ++k)
                max_tensor = std::max(max_tensor, plain[k]->src->nbytes);
            ggml_backend_buffer_t buf = ggml_backend_dev_buffer_from_host_ptr(
                dev, map->mutable_data(), end - begin, max_tensor);
            if (!buf)
                throw Error(ErrorCode::kResource,
                            "cannot wrap the mapped weights in a backend buffer");
            buffers_.emplace_back(buf);
            ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
            for (size_t k = i; k < j; ++k) {
                const Want *w = plain[k];
                ggml_backend_tensor_alloc(buf, *w->slot,
                                          map->mutable_data() + (w->src->offset - begin));
                bytes_ += w->src->nbytes;
                report(w->src->nbytes);
            }
            maps_.push_back(std::move(map));
            i = j;
        }
    }
}

StageWeights::~StageWeights() = default;

std::string StageWeights::describe_buffers() const {
    std::string s;
    for (const auto &b : buffers_) {
        if (!s.empty())
            s += ", ";
        s += std::string(ggml_backend_buffer_name(b.get())) + " " +
             std::to_string(ggml_backend_buffer_get_size(b.get()) >> 20) + " MiB";
    }
    return s;
}

}  // namespace colony
