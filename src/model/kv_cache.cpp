#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace colony {

ggml_type parse_cache_type(const std::string &name) {
    static const std::pair<const char *, ggml_type> kTypes[] = {
        {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16},
        {"q8_0", GGML_TYPE_Q8_0}, {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1},
        {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1}, {"iq4_nl", GGML_TYPE_IQ4_NL},
    };
    for (const auto &[n, t] : kTypes) {
        if (name == n)
            return t;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "unknown KV cache type '" + name +
                    "' (use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl)");
}

KvCache::KvCache(const ModelHparams &hp, LayerRange range, uint32_t size, uint32_t n_seq_max,
                 uint32_t n_ctx_seq, ggml_type type_k, ggml_type type_v,
                 ggml_backend_buffer_type_t buft, ggml_backend_buffer_type_t gpu_buft,
                 uint32_t gpu_first, const LayerSkip &skip)
    : range_(range),
      type_k_(type_k),
      type_v_(type_v),
      n_seq_max_(n_seq_max),
      n_ctx_seq_(n_ctx_seq) {
    if (size == 0 || n_seq_max == 0 || n_ctx_seq == 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    "KV cache size, sequences and context must be positive");
    }
    // K and V are viewed per head, so a head must hold whole quantization blocks
    const std::pair<ggml_type, uint32_t> checks[] = {{type_k, hp.head_dim_k},
                                                     {type_v, hp.head_dim_v}};
    for (const auto &[t, head_dim] : checks) {
        if (head_dim % ggml_blck_size(t) != 0) {
            throw Error(ErrorCode::kInvalidArgument,
                        std::string("KV cache type ") + ggml_type_name(t) +
                            " needs a head size that is a multiple of " +
                            std::to_string(ggml_blck_size(t)) + "; this model's is " +
                            std::to_string(head_dim));
        }
    }
    cells_.resize(size);
    shifts_.assign(size, 0);
    seq_pos_max_.assign(n_seq_max, -1);
    ggml_init_params params{ggml_tensor_overhead() * 2 * (range.size() + 1), nullptr, true};
    ctx_.reset(ggml_init(params));
    if (gpu_buft)
        gpu_ctx_.reset(ggml_init(params));
    for (uint32_t il = range.first; il < range.last; ++il) {
        if (skip.contains(il)) {  // a skipped block attends to nothing
            k_.push_back(nullptr);
            v_.push_back(nullptr);
            continue;
        }
        ggml_context *ctx = gpu_buft && il >= gpu_first ? gpu_ctx_.get() : ctx_.get();
        ggml_tensor *k = ggml_new_tensor_2d(ctx, type_k, hp.n_embd_k_gqa(), size);
        ggml_tensor *v = ggml_new_tensor_2d(ctx, type_v, hp.n_embd_v_gqa(), size);
        ggml_format_name(k, "cache_k_l%u", il);
        ggml_format_name(v, "cache_v_l%u", il);
        k_.push_back(k);
        v_.push_back(v);
    }
    auto alloc = [](ggml_context *ctx, ggml_backend_buffer_type_t bt) {
        ggml_backend_buffer_ptr b;
        if (!ctx || !ggml_get_first_tensor(ctx))
            return b;
        b.reset(ggml_backend_alloc_ctx_tensors_from_buft(ctx, bt));
        if (!b)
            throw Error(ErrorCode::kResource, std::string("cannot allocate the KV cache in ") +
                                                  ggml_backend_buft_name(bt));
        ggml_backend_buffer_clear(b.get(), 0);
        return b;
    };
    buf_ = alloc(ctx_.get(), buft);
    gpu_buf_ = alloc(gpu_ctx_.get(), gpu_buft);
}

uint64_t KvCache::bytes() const {
    return (buf_ ? ggml_backend_buffer_get_size(buf_.get()) : 0) +
           (gpu_buf_ ? ggml_backend_buffer_get_size(gpu_buf_.get()) : 0);
}

void KvCache::store(const int32_t *seq_ids, const int32_t *pos, uint32_t n_tokens,
                    std::vector<int64_t> &cells) {
    for (uint32_t i = 0; i < n_tokens; ++i) {
        if (seq_ids[i] < 0 || static_cast<uint32_t>(seq_ids[i]) >= n_seq_max_) {
            throw Error(ErrorCode::kInvalidArgument, "sequence id " + std::to_string(seq_ids[i]) +
                                                         " outside [0," +
                                                         std::to_string(n_seq_max_) + ")");
        }
        if (pos[i] < 0 || static_cast<uint32_t>(pos[i]) >= n_ctx_seq_) {
            throw Error(ErrorCode::kOutOfRange,
                        "context overflow: position " + std::to_string(pos[i]) + " of sequence " +
                            std::to_string(seq_ids[i]) + " does not fit a context of " +
                            std::to_string(n_ctx_seq_));
        }
        if (pos[i] <= seq_pos_max_[seq_ids[i]]) {
            throw Error(
                ErrorCode::kInvalidArgument,
                "position " + std::to_string(pos[i]) + " of sequence " +
                    std::to_string(seq_ids[i]) +
                    " is already in the KV cache (positions must grow; trim with seq_rm first)");
        }
    }
    if (used_ + n_tokens > size()) {
        throw Error(ErrorCode::kResource, "KV cache full: " + std::to_string(used_) + " of " +
                                              std::to_string(size()) + " cells used, " +
                                              std::to_string(n_tokens) + " more needed");
    }
    cells.resize(n_tokens);
    if (fixed_) {
        for (uint32_t i = 0; i < n_tokens; ++i) {
            const uint32_t c = fixed_cell(seq_ids[i], pos[i]);
            if (c >= size() || cells_[c].seq >= 0 ||
                (static_cast<uint32_t>(seq_ids[i]) == front_seq_ &&
                 static_cast<uint32_t>(pos[i]) >= front_cells_)) {
                throw Error(ErrorCode::kResource, "no cell for position " + std::to_string(pos[i]) +
                                                      " of sequence " + std::to_string(seq_ids[i]) +
                                                      " in the fixed placement");
            }
        }
    }
    uint32_t c = 0;
    for (uint32_t i = 0; i < n_tokens; ++i) {
        if (fixed_) {
            c = fixed_cell(seq_ids[i], pos[i]);
        } else {
            while (cells_[c].seq >= 0)
                ++c;
        }
        cells_[c] = {seq_ids[i], pos[i]};
        shifts_[c] = 0;
        cells[i] = c;
        seq_pos_max_[seq_ids[i]] = std::max(seq_pos_max_[seq_ids[i]], pos[i]);
        max_used_p1_ = std::max(max_used_p1_, c + 1);
        ++used_;
    }
}

void KvCache::place_by_sequence(uint32_t front_seq, uint32_t front_cells) {
    if (front_seq >= n_seq_max_ ||
        static_cast<uint64_t>(front_cells) + uint64_t(n_seq_max_ - 1) * n_ctx_seq_ > size()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "fixed placement needs " + std::to_string(front_cells) + " + " +
                        std::to_string(n_seq_max_ - 1) + " x " + std::to_string(n_ctx_seq_) +
                        " cells, the cache has " + std::to_string(size()));
    }
    fixed_ = true;
    front_seq_ = front_seq;
    front_cells_ = front_cells;
}

uint32_t KvCache::fixed_cell(int32_t seq, int32_t pos) const {
    const auto s = static_cast<uint32_t>(seq);
    if (s == front_seq_)
        return static_cast<uint32_t>(pos);
    const uint32_t slot = s < front_seq_ ? s : s - 1;
    return front_cells_ + slot * n_ctx_seq_ + static_cast<uint32_t>(pos);
}

uint32_t KvCache::n_kv() const {
    constexpr uint32_t kPad = 256;
    const uint32_t padded = std::max(kPad, (max_used_p1_ + kPad - 1) / kPad * kPad);
    return std::min(size(), padded);
}

void KvCache::fill_mask(ggml_fp16_t *dst, uint32_t n_kv, const int32_t *seq_ids, const int32_t *pos,
                        uint32_t n_tokens, uint32_t n_swa) const {
    const ggml_fp16_t keep = ggml_fp32_to_fp16(0.0f);
    const ggml_fp16_t drop = ggml_fp32_to_fp16(-INFINITY);
    if (n_swa > 0) {
        for (uint32_t i = 0; i < n_tokens; ++i) {
            ggml_fp16_t *row = dst + static_cast<size_t>(i) * n_kv;
            for (uint32_t j = 0; j < n_kv; ++j) {
                const Cell &c = cells_[j];
                const bool seen =
                    c.seq == seq_ids[i] && c.pos <= pos[i] &&
                    static_cast<int64_t>(pos[i]) - c.pos < static_cast<int64_t>(n_swa);
                row[j] = seen ? keep : drop;
            }
        }
        return;
    }
    for (uint32_t i = 0; i < n_tokens; ++i) {
        ggml_fp16_t *row = dst + static_cast<size_t>(i) * n_kv;
        // tokens of the same sequence in a row of the ubatch share most of the mask
        if (i > 0 && seq_ids[i] == seq_ids[i - 1] && pos[i] >= pos[i - 1]) {
            std::copy(row - n_kv, row, row);
            for (uint32_t j = 0; j < n_kv; ++j) {
                const Cell &c = cells_[j];
                if (c.seq == seq_ids[i] && c.pos > pos[i - 1] && c.pos <= pos[i])
                    row[j] = keep;
            }
            continue;
        }
        for (uint32_t j = 0; j < n_kv; ++j) {
            const Cell &c = cells_[j];
            row[j] = (c.seq == seq_ids[i] && c.pos <= pos[i]) ? keep : drop;
        }
    }
}

void KvCache::seq_cp(int32_t src, int32_t dst, int32_t p1) {
    if (src < 0 || dst < 0 || static_cast<uint32_t>(src) >= n_seq_max_ ||
        static_cast<uint32_t>(dst) >= n_seq_max_ || src == dst) {
        throw Error(ErrorCode::kInvalidArgument,
                    "cannot copy sequence " + std::to_string(src) + " to " + std::to_string(dst));
    }
    std::vector<std::pair<int32_t, uint32_t>> from;  // (pos, cell) of src below p1
    for (uint32_t j = 0; j < cells_.size(); ++j) {
        if (cells_[j].seq == src && cells_[j].pos < p1)
            from.emplace_back(cells_[j].pos, j);
    }
    if (from.empty())
        return;
    for (const Cell &c : cells_) {
        if (c.seq == dst && c.pos < p1)
            throw Error(ErrorCode::kInvalidArgument, "sequence " + std::to_string(dst) +
                                                         " already holds position " +
                                                         std::to_string(c.pos));
    }
    std::sort(from.begin(), from.end());  // store() wants each sequence's positions growing
    std::vector<int32_t> seq_ids(from.size(), dst), pos(from.size());
    for (size_t i = 0; i < from.size(); ++i)
        pos[i] = from[i].first;
    std::vector<int64_t> to;
    store(seq_ids.data(), pos.data(), static_cast<uint32_t>(pos.size()), to);
    std::vector<uint8_t> row;
    for (size_t l = 0; l < k_.size(); ++l) {
        for (ggml_tensor *t : {k_[l], v_[l]}) {
            if (!t)  // a skipped block
                continue;
            const size_t nb = t->nb[1];
            row.resize(nb);
            for (size_t i = 0; i < to.size(); ++i) {
                ggml_backend_tensor_get(t, row.data(), from[i].second * nb, nb);
                ggml_backend_tensor_set(t, row.data(), static_cast<size_t>(to[i]) * nb, nb);
            }
        }
    }
}

void KvCache::seq_rm(int32_t seq, int32_t p0, int32_t p1) {
    if (seq < 0 || static_cast<uint32_t>(seq) >= n_seq_max_)
        return;
    for (Cell &c : cells_) {
        if (c.seq == seq && c.pos >= p0 && (p1 < 0 || c.pos < p1)) {
            c = Cell{};
            shifts_[&c - cells_.data()] = 0;
            --used_;
        }
    }
    recompute_bounds();
}

void KvCache::seq_add(int32_t seq, int32_t p0, int32_t p1, int32_t delta) {
    if (seq < 0 || static_cast<uint32_t>(seq) >= n_seq_max_ || delta == 0)
        return;
    if (fixed_)
        throw Error(ErrorCode::kUnsupported,
                    "a context shift needs free cell placement "
                    "(not the batch-invariant fixed placement)");
    auto moved = [&](const Cell &c) {
        return c.seq == seq && c.pos >= p0 && (p1 < 0 || c.pos < p1);
    };
    // the moved positions must not meet ones the sequence keeps
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (const Cell &c : cells_) {
        if (moved(c)) {
            lo = std::min(lo, c.pos + delta);
            hi = std::max(hi, c.pos + delta);
        }
    }
    for (const Cell &c : cells_) {
        if (c.seq == seq && !moved(c) && c.pos >= lo && c.pos <= hi)
            throw Error(ErrorCode::kInvalidArgument,
                        "shifting positions [" + std::to_string(p0) + ", " + std::to_string(p1) +
                            ") of sequence " + std::to_string(seq) + " by " +
                            std::to_string(delta) + " would meet position " +
                            std::to_string(c.pos));
    }
    for (uint32_t j = 0; j < cells_.size(); ++j) {
        Cell &c = cells_[j];
        if (!moved(c))
            continue;
        c.pos += delta;
        if (c.pos < 0) {
            c = Cell{};
            shifts_[j] = 0;
            --used_;
            continue;
        }
        shifts_[j] += delta;
        has_shift_ = true;
    }
    recompute_bounds();
}

void KvCache::clear_shifts() {
    std::fill(shifts_.begin(), shifts_.end(), 0);
    has_shift_ = false;
}

int32_t KvCache::seq_pos_max(int32_t seq) const {
    if (seq < 0 || static_cast<uint32_t>(seq) >= n_seq_max_)
        return -1;
    return seq_pos_max_[seq];
}

void KvCache::clear() {
    std::fill(cells_.begin(), cells_.end(), Cell{});
    clear_shifts();
    used_ = 0;
    recompute_bounds();
}

void KvCache::recompute_bounds() {
    std::fill(seq_pos_max_.begin(), seq_pos_max_.end(), -1);
    max_used_p1_ = 0;
    for (uint32_t j = 0; j < cells_.size(); ++j) {
        const Cell &c = cells_[j];
        if (c.seq < 0)
            continue;
        seq_pos_max_[c.seq] = std::max(seq_pos_max_[c.seq], c.pos);
        max_used_p1_ = j + 1;
    }
}

}  // namespace colony
