// A stage: the executor of one layer range on this device. This is the one
// interface the rest of colony computes through, whether the stage is the
// whole model (a cluster of one) or one link of a pipeline.
//
//   first stage  : token ids            -> hidden states (or logits if also last)
//   middle stage : hidden states        -> hidden states
//   last stage   : hidden states/tokens -> logits of the requested rows
//
// Hidden states are F32 [n_embd, n_tokens] (row per token); logits are F32
// [n_vocab, n_outputs]. Sequences are independent (own positions, own KV cells).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpp.h"
#include "model/hparams.h"
#include "model/layer_range.h"
#include "model/weights.h"
#include "runtime/dynamic_skip.h"
#include "runtime/kv_window.h"

namespace colony {

class GgufFile;
class KvCache;
struct StageGraph;

/// Where a stage's compute threads run; cluster/cpu_placement.h decides it
/// from the device's cores and -C/-Cr/--cpu-strict/--prio.
struct CpuAffinity {
    std::vector<int> cores;  // ascending core ids the threads may run on; empty = not pinned
    bool strict = false;     // thread i on the i-th core only (ggml's strict_cpu)
    int prio = 0;            // ggml_sched_priority: -1 low .. 3 realtime
    bool operator==(const CpuAffinity &o) const {
        return cores == o.cores && strict == o.strict && prio == o.prio;
    }
};

/// GPU offload, llama.cpp's --device and -ngl: the last n_gpu_layers blocks
/// of a stage run on the device (weights and KV cache in its memory), and the
/// LM head too when n_gpu_layers exceeds the stage's blocks (or is negative:
/// everything). 0 = CPU only. ggml's scheduler runs each op where its weights
/// are and copies hidden states between the devices.
struct GpuOffload {
    int n_gpu_layers = 0;
    std::string device;  // ggml device name (e.g. "Vulkan0"); empty = the first GPU
    bool operator==(const GpuOffload &o) const {
        return n_gpu_layers == o.n_gpu_layers && device == o.device;
    }
};

struct StageConfig {
    LayerRange range;         // blocks this stage runs; first==0 embeds, last==n_layer has the head
    uint32_t n_ctx = 4096;    // KV cells in total (shared by all sequences)
    uint32_t n_seq_max = 1;   // concurrent sequences
    uint32_t n_ctx_seq = 0;   // max positions per sequence; 0 = n_ctx
    uint32_t n_ubatch = 512;  // max tokens per forward()
    ggml_type type_k = GGML_TYPE_F16;
    ggml_type type_v = GGML_TYPE_F16;
    int n_threads = 0;  // 0 = all cores
    CpuAffinity cpu;    // where the n_threads threads run (default: anywhere)
    GpuOffload gpu;     // blocks on a GPU (default: none)
    WeightLoadOptions load;
    /// Dynamic skipping of cold blocks per decode row (runtime/dynamic_skip.h;
    /// default off). The same on every stage of a cluster.
    DynamicSkip dyn_skip;
    /// Debug: emulate a slower device. After each forward() the stage sleeps
    /// (slowdown - 1) x the compute time, so it runs `slowdown` times slower.
    /// Changeable at run time with set_slowdown(). 1 = off.
    double slowdown = 1.0;
    /// Batch invariance (recovery re-computes a lost stage's KV cache in one
    /// prefill from the token history, DESIGN.md decision 10, and gives the
    /// same text only when each position gets the floats its decode got):
    ///   kNone       ggml's fastest kernels (a node serving alone).
    ///   kAttention  ggml's reference flash attention
    ///               (ggml_backend_cpu_set_use_ref; also no op fusion): the
    ///               default path takes another route for a lone query row
    ///               over 512+ KV cells (split across threads) and for 32+
    ///               rows (tiled), ggml-cpu/ops.cpp. About 12 % less prefill
    ///               throughput, decode unchanged. Every stage of a cluster.
    ///   kFull       kAttention, and every ubatch padded with rows of a
    ///               scratch sequence to a multiple of 4 rows (the head's
    ///               output rows too): matmuls take another kernel for a lone
    ///               row (llamafile_sgemm refuses n < 2) and repacked weights
    ///               run rows in groups of 4 with gemm and the rest with gemv
    ///               (ggml-cpu/repack.cpp); and each sequence's KV cells
    ///               at fixed places in position order (KvCache::
    ///               place_by_sequence: attention sums cells in cell order, and
    ///               first-free placement interleaves sequences differently in
    ///               every batch mix). Needs n_ctx == n_seq_max * n_ctx_seq.
    ///               Bit-exact (BatchInvariance tests),
    ///               but a decode of one sequence computes 4 rows: 2.4 times
    ///               slower on the 1B Q4_K_M model on 2 cores (--batch-invariant).
    enum class Invariance { kNone, kAttention, kFull };
    Invariance invariance = Invariance::kNone;
};

/// A batch of tokens of one or more sequences, as views into caller memory.
/// Exactly one of tokens (first stage) and embd (other stages) is set.
struct Ubatch {
    uint32_t n_tokens = 0;
    const int32_t *tokens = nullptr;  // [n_tokens] token ids
    const float *embd = nullptr;      // [n_embd * n_tokens] hidden states
    const int32_t *pos = nullptr;     // [n_tokens] position of each token in its sequence
    const int32_t *seq_id = nullptr;  // [n_tokens] sequence of each token
    const int32_t *out_ids =
        nullptr;  // [n_outputs] last stage: increasing ubatch rows whose logits are wanted
    uint32_t n_outputs = 0;
    bool want_hidden = false;  // last stage: also keep the output rows' normalized hidden
                               // states (Stage::hidden_output)
};

/// Wall-clock timings of the last forward(), microseconds.
struct StageTimings {
    int64_t build_us = 0;    // graph build + allocation (0 when the graph was reused)
    int64_t compute_us = 0;  // ggml compute incl. input upload and output download
    bool reused = false;
};

/// Rows a ubatch is padded to a multiple of (StageConfig::Invariance::kFull).
inline constexpr uint32_t kInvariantRows = 4;
/// KV cells of the padding's scratch sequence (at most 2 * kInvariantRows - 1 rows).
inline constexpr uint32_t kScratchCells = 2 * kInvariantRows;

class Stage {
  public:
    /// Loads the weights of cfg.range from `file` and allocates the KV cache.
    /// Errors: see StageWeights and KvCache; kInvalidArgument for a bad config.
    Stage(std::shared_ptr<const GgufFile> file, const ModelHparams &hp, const StageConfig &cfg);
    ~Stage();
    Stage(const Stage &) = delete;
    Stage &operator=(const Stage &) = delete;

    /// Runs the ubatch through this stage's blocks. Returns hidden states
    /// [n_embd, n_tokens] or, on the last stage, logits [n_vocab, n_outputs];
    /// the pointer stays valid until the next call. Errors: kInvalidArgument
    /// (shape, ids, sizes), kOutOfRange (context overflow), kResource (KV cache
    /// full), kInternal (ggml compute failure). On error the KV cache is unchanged.
    const float *forward(const Ubatch &ub);
    /// After a forward() of the last stage with want_hidden: the output rows'
    /// hidden states after the final norm, F32 [n_embd, n_outputs] (the
    /// input of the output head; what embeddings pool). Valid until the next
    /// forward(); null otherwise.
    const float *hidden_output() const { return hidden_.empty() ? nullptr : hidden_.data(); }

    bool is_first() const;
    bool is_last() const;
    LayerRange range() const { return cfg_.range; }
    const ModelHparams &hparams() const { return hp_; }
    const StageConfig &config() const { return cfg_; }
    /// Floats per output row: n_vocab on the last stage, else n_embd.
    uint32_t out_row_size() const { return is_last() ? hp_.n_vocab : hp_.n_embd; }

    /// Forgets positions [p0, p1) of sequence `seq` (p1 < 0: to the end).
    void seq_rm(int32_t seq, int32_t p0 = 0, int32_t p1 = -1);
    /// Moves positions [p0, p1) of `seq` by `delta` (p1 < 0: to the end) and
    /// re-rotates their keys at once (KvCache::seq_add, build_k_shift_graph):
    /// the context shift of llama.cpp's llama_memory_seq_add. Errors: those
    /// of KvCache::seq_add; kInternal on a ggml compute failure.
    void seq_add(int32_t seq, int32_t p0, int32_t p1, int32_t delta);
    /// One context shift of `seq` (kv_window.h): seq_rm of the dropped
    /// positions, then seq_add of the later ones. Errors: seq_add's.
    void apply_shift(int32_t seq, const KvShift &s);
    /// Copies positions [0, p1) of `src`'s KV cache into `dst` (KvCache::seq_cp).
    void seq_cp(int32_t src, int32_t dst, int32_t p1);
    int32_t seq_pos_max(int32_t seq) const;
    uint32_t kv_used() const;
    uint32_t kv_size() const;
    uint64_t kv_bytes() const;
    uint64_t weight_bytes() const;
    const StageTimings &last_timings() const { return timings_; }
    /// Debug slow-down factor (see StageConfig::slowdown); >= 1.
    void set_slowdown(double factor);
    double slowdown() const { return cfg_.slowdown; }
    /// Compute threads of later forward() calls, 1..StageConfig::n_threads
    /// (the threadpool's size; --max-temp lowers it, cluster/thermal_guard.h).
    /// Throws Error(kInvalidArgument) outside that range.
    void set_n_threads(int n);
    int n_threads() const { return n_threads_; }
    const StageWeights &weights() const { return *weights_; }
    /// Dynamic skipping's counts so far: block x decode-row decisions and
    /// how many of them skipped (both 0 when it is off).
    uint64_t dyn_skip_evaluated() const { return gate_.n_evaluated(); }
    uint64_t dyn_skip_skipped() const { return gate_.n_skipped(); }
    /// The GPU device this stage offloads to ("" when none) and how many of
    /// its blocks are there.
    std::string gpu_device() const;
    uint32_t gpu_layers() const { return gpu_.gpu ? cfg_.range.last - gpu_.gpu_first : 0; }

  private:
    /// Sets a Hadamard rotation input of a graph (graph.h); null: nothing.
    void set_rotation(ggml_tensor *rot);

    struct ThreadpoolDeleter {
        void operator()(ggml_threadpool *tp) const;
    };
    std::shared_ptr<const GgufFile> file_;
    ModelHparams hp_;
    StageConfig cfg_;
    ggml_backend_ptr backend_;
    ggml_backend_ptr gpu_backend_;  // null without offload
    GpuPlacement gpu_;
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> threadpool_;
    int n_threads_ = 0;              // threads of the next graph (<= cfg_.n_threads)
    std::thread::id pinned_thread_;  // the forward() caller last pinned to cfg_.cpu.cores
    std::unique_ptr<StageWeights> weights_;
    std::unique_ptr<KvCache> kv_;
    ggml_backend_sched_ptr sched_;
    std::vector<uint8_t> graph_meta_;  // graph_'s tensor and node metadata (declared first:
                                       // outlives graph_)
    std::unique_ptr<StageGraph> graph_;
    std::vector<int64_t> cells_;
    std::vector<ggml_fp16_t> mask_;
    std::map<uint32_t, std::vector<float>> hadamard_;  // rotation matrices by side (graph.h)
    std::vector<float> out_;
    std::vector<float> hidden_;  // hidden_output()
    // Batch-invariant padding (Invariance::kFull): the ubatch with
    // rows of a scratch sequence appended, up to a multiple of 4 rows.
    std::vector<int32_t> pad_tokens_, pad_pos_, pad_seq_, pad_out_;
    /// `in` padded to a multiple of kInvariantRows rows (in itself when it is
    /// one already or padding is off); the scratch rows go to sequence
    /// cfg_.n_seq_max at positions 0.., after the real rows. Its embd stays
    /// in's (the real rows only): forward() uploads the padding's rows.
    Ubatch padded(const Ubatch &in);
    StageTimings timings_;
    DynamicSkipGate gate_;
    std::vector<std::vector<float>> keep_;  // the gate's rows per block, this ubatch

    void validate(const Ubatch &ub) const;
    void prepare_graph(const Ubatch &ub, uint32_t n_kv, std::vector<uint8_t> block_mode);
    /// After a compute: the cosines of the gated blocks to the gate.
    void observe_cosines(const Ubatch &ub);
};

/// Default thread count for compute: the number of online CPUs.
int default_thread_count();

}  // namespace colony
