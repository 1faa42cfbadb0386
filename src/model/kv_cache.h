// The KV cache of one stage: for every block of its layer range a K and a V
// tensor of `size` cells, shared by up to `n_seq_max` sequences.
//
// Layout (as llama.cpp's llama_kv_cache with flash attention, src/llama-kv-cache.cpp):
//   K[il]: type_k [n_embd_k_gqa, size]   V[il]: type_v [n_embd_v_gqa, size] (not transposed)
// Each cell holds one (sequence, position) or is free. A ubatch's tokens are
// scattered into free cells with ggml_set_rows (indices from find_cells), and
// attention reads the first n_kv cells, n_kv padded to 256 so graphs can be reused.
#pragma once

#include <cstdint>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpp.h"
#include "model/hparams.h"
#include "model/layer_range.h"
#include "model/layer_skip.h"

namespace colony {

class KvCache {
  public:
    /// Allocates K/V for `range` in `buft`, those of blocks from gpu_first on
    /// in gpu_buft when it is given (the blocks a stage offloads, as
    /// llama.cpp keeps an offloaded layer's cache on its device). n_ctx_seq
    /// bounds the positions of any one sequence (context overflow beyond it
    /// is Error(kOutOfRange)). The blocks in `skip` get no K/V (k() and v()
    /// are null there). Errors: kInvalidArgument (bad type, zero size),
    /// kResource (allocation).
    KvCache(const ModelHparams &hp, LayerRange range, uint32_t size, uint32_t n_seq_max,
            uint32_t n_ctx_seq, ggml_type type_k, ggml_type type_v, ggml_backend_buffer_type_t buft,
            ggml_backend_buffer_type_t gpu_buft = nullptr, uint32_t gpu_first = UINT32_MAX,
            const LayerSkip &skip = {});

    uint32_t size() const { return static_cast<uint32_t>(cells_.size()); }
    uint32_t n_seq_max() const { return n_seq_max_; }
    uint32_t n_ctx_seq() const { return n_ctx_seq_; }
    uint32_t used() const { return used_; }
    uint64_t bytes() const;

    ggml_type type_k() const { return type_k_; }
    ggml_type type_v() const { return type_v_; }
    /// K and V of block `il` (null for a skipped block).
    ggml_tensor *k(uint32_t il) const { return k_[il - range_.first]; }
    ggml_tensor *v(uint32_t il) const { return v_[il - range_.first]; }

    /// Finds one free cell per token (lowest first) and records (seq, pos) there.
    /// Checks every seq id < n_seq_max and pos < n_ctx_seq, and that a sequence
    /// does not store a position twice. Errors: kInvalidArgument, kOutOfRange
    /// (context overflow), kResource (cache full). On error nothing is stored.
    /// `cells` receives the cell index of each token.
    void store(const int32_t *seq_ids, const int32_t *pos, uint32_t n_tokens,
               std::vector<int64_t> &cells);

    /// Fixed placement (batch invariance, runtime/stage.h): sequence
    /// `front_seq` at cells [0, front_cells) by position, every other
    /// sequence s at front_cells + s' * n_ctx_seq + pos (s' = s, minus one
    /// above front_seq). A sequence's cells are then in position order
    /// wherever the others are, so attention sums them in the same order in
    /// every batch. Needs size() >= front_cells + (n_seq_max - 1) * n_ctx_seq
    /// (else Error(kInvalidArgument)). Call on an empty cache.
    void place_by_sequence(uint32_t front_seq, uint32_t front_cells);

    /// Number of cells attention must look at: highest used cell + 1, padded
    /// to 256, at most size().
    uint32_t n_kv() const;

    /// Fills the attention mask F16 [n_kv, n_tokens] (row per token): 0 where
    /// the cell belongs to the token's sequence at a position <= the token's,
    /// -inf elsewhere (causal, per sequence).
    /// n_swa > 0: a sliding window as well (gemma3): the key at position p0
    /// is masked for the query at p1 when p1 - p0 >= n_swa
    /// (llama_hparams::is_masked_swa, LLAMA_SWA_TYPE_STANDARD).
    void fill_mask(ggml_fp16_t *dst, uint32_t n_kv, const int32_t *seq_ids, const int32_t *pos,
                   uint32_t n_tokens, uint32_t n_swa = 0) const;

    /// Copies the cells of `src` with pos < p1 (their K and V rows in every
    /// layer) into new cells of `dst`, which must hold no position below p1
    /// (a prompt prefilled once for several choices, llama_memory_seq_cp's
    /// role). Errors: kInvalidArgument (bad ids, src == dst, dst not empty
    /// there), kResource (no free cells; nothing is copied then).
    void seq_cp(int32_t src, int32_t dst, int32_t p1);
    /// Frees the cells of `seq` with p0 <= pos < p1 (p1 < 0: to the end).
    void seq_rm(int32_t seq, int32_t p0 = 0, int32_t p1 = -1);
    /// Adds `delta` to the positions of `seq`'s cells with p0 <= pos < p1
    /// (p1 < 0: to the end), llama_memory_seq_add's role in a context shift;
    /// a cell whose position would fall below 0 is freed. The keys of moved
    /// cells still carry their old rotation: the stage must re-rotate them
    /// by shifts() (Stage::seq_add does) before attention reads them, then
    /// clear_shifts(). The shifted range must not land on positions `seq`
    /// still holds below p0 (Error(kInvalidArgument)); under fixed
    /// placement Error(kUnsupported).
    void seq_add(int32_t seq, int32_t p0, int32_t p1, int32_t delta);
    /// Per cell, the position change not yet applied to its key (0 when none).
    const std::vector<int32_t> &shifts() const { return shifts_; }
    bool has_shift() const { return has_shift_; }
    void clear_shifts();
    /// Highest stored position of `seq`, or -1.
    int32_t seq_pos_max(int32_t seq) const;
    void clear();

  private:
    struct Cell {
        int32_t seq = -1;  // -1: free
        int32_t pos = -1;
    };
    LayerRange range_;
    ggml_type type_k_, type_v_;
    uint32_t n_seq_max_;
    uint32_t n_ctx_seq_;
    uint32_t used_ = 0;
    uint32_t max_used_p1_ = 0;  // highest used cell + 1
    bool fixed_ = false;        // place_by_sequence
    uint32_t front_seq_ = 0, front_cells_ = 0;
    /// The cell of (seq, pos) under fixed placement.
    uint32_t fixed_cell(int32_t seq, int32_t pos) const;
    std::vector<Cell> cells_;
    std::vector<int32_t> seq_pos_max_;  // per sequence, -1 when empty
    std::vector<int32_t> shifts_;       // per cell: pending RoPE shift of its key
    bool has_shift_ = false;
    ggml_context_ptr ctx_, gpu_ctx_;
    ggml_backend_buffer_ptr buf_, gpu_buf_;
    std::vector<ggml_tensor *> k_, v_;

    void recompute_bounds();
};

/// Parses a KV cache type as llama.cpp names it: f32, f16, bf16, q8_0, q4_0,
/// q4_1, q5_0, q5_1. Error(kInvalidArgument) otherwise.
ggml_type parse_cache_type(const std::string &name);

}  // namespace colony
