// LocalBackend: an InferenceBackend on one in-process Stage that holds the
// whole model (a cluster of one; what `colony serve` runs without workers).
//
// One scheduler thread owns the Stage. Each step it
//   1. drops cancelled requests (queued ones, and running ones: seq_rm),
//   2. admits queued requests into free sequence slots (KV cache n_seq_max),
//   3. runs one ubatch holding every running sequence's decode token and
//      prefill chunks (ubatch_builder.h),
//   4. samples one token per output row with the sequence's own Sampler and
//      delivers it; sequences that reach EOG, max_tokens or the end of their
//      context are finished and their KV cells freed.
// Requests therefore join and leave between steps (continuous batching).
//
// The KV cache holds n_ctx cells shared by n_parallel sequences; each
// sequence may use n_ctx / n_parallel positions, so the cache never runs out
// while at most n_parallel sequences run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "api/openai/inference_backend.h"
#include "ggml.h"
#include "model/hparams.h"

namespace colony {

class GgufFile;
class Stage;
class Sampler;
class Tokenizer;

struct LocalBackendOptions {
    std::string model_path;   // GGUF file
    std::string model_id;     // name in the API; empty: the file name without ".gguf"
    uint32_t n_parallel = 4;  // sequence slots (>= 1, <= n_ubatch)
    uint32_t n_ctx = 4096;    // KV cache cells in total (>= n_parallel * 2)
    uint32_t n_ubatch = 512;  // rows per forward pass
    int n_threads = 0;        // compute threads; 0 = all cores
    size_t max_queue = 64;    // requests waiting for a slot before submit() refuses
    ggml_type type_k = GGML_TYPE_F16;
    ggml_type type_v = GGML_TYPE_F16;
    bool use_mmap = true;
    bool use_repack = true;
};

class LocalBackend : public InferenceBackend {
  public:
    /// Opens the model file and reads its hyper-parameters (synchronously, so
    /// a bad path or file throws here: kNotFound, kCorrupt, kUnsupported;
    /// kInvalidArgument for bad options), then starts the scheduler thread,
    /// which loads the weights. Until they are loaded health() says
    /// "loading" and submit() throws kUnavailable.
    explicit LocalBackend(LocalBackendOptions opts);
    /// Stops the scheduler: queued and running requests end with kError
    /// (kUnavailable, "shutting down"); joins the thread.
    ~LocalBackend() override;
    LocalBackend(const LocalBackend &) = delete;
    LocalBackend &operator=(const LocalBackend &) = delete;

    /// Blocks until the weights are loaded. Rethrows the load error.
    void wait_ready();
    /// The model's tokenizer (vocab only), which the backend uses to tell
    /// end-of-generation tokens; the API layer may share it (its methods are
    /// const and thread-safe).
    const Tokenizer &tokenizer() const { return *tok_; }

    uint64_t submit(GenerationRequest request, GenerationCallbacks callbacks) override;
    void cancel(uint64_t id) override;
    BackendHealth health() const override;
    BackendStats stats() const override;
    std::string cluster_json() const override;
    BackendModelInfo model_info() const override { return info_; }
    /// Ubatches run so far that held both decode rows (of sequences that are
    /// generating) and prompt rows (of others being prefilled): how often a
    /// prompt was prefilled alongside decoding. Any thread.
    uint64_t mixed_ubatches() const;

  private:
    struct Pending;  // a request waiting for a slot
    struct Slot;     // a running sequence

    void run();
    void load();
    bool wait_for_work();
    void take_cancellations(std::vector<std::unique_ptr<Pending>> &dropped);
    void admit();
    void step();
    void deliver(Slot &slot, int32_t token);
    void finish(Slot &slot, FinishReason reason, const Error *error = nullptr);
    void finish_pending(Pending &p, FinishReason reason, const Error *error);
    void record_step(int64_t compute_us, uint32_t n_sampled, bool mixed);
    void shutdown_all();

    LocalBackendOptions opts_;
    std::shared_ptr<const GgufFile> file_;
    ModelHparams hp_;
    BackendModelInfo info_;
    std::unique_ptr<Tokenizer> tok_;
    std::string device_;    // CPU description from ggml
    std::string hostname_;  // this machine's name

    // Scheduler thread only.
    std::unique_ptr<Stage> stage_;
    std::vector<std::unique_ptr<Slot>> slots_;  // index = sequence id; null = free
    std::vector<size_t> admission_order_;       // slot indices, oldest first

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Pending>> queue_;        // guarded by mutex_
    std::unordered_set<uint64_t> cancel_ids_;           // guarded by mutex_
    bool stop_ = false;                                 // guarded by mutex_
    std::string state_ = "loading";                     // guarded by mutex_: loading, ready, failed
    std::string load_error_;                            // guarded by mutex_
    ErrorCode load_error_code_ = ErrorCode::kInternal;  // guarded by mutex_
    std::condition_variable ready_cv_;

    std::atomic<uint64_t> next_id_{1};
    std::atomic<size_t> n_running_{0};
    std::atomic<uint64_t> load_done_{0}, load_total_{0};
    std::atomic<uint32_t> kv_used_{0};

    struct Counters {
        uint64_t n_ubatches = 0;
        uint64_t n_mixed_ubatches = 0;  // with decode rows and prompt rows
        double compute_seconds = 0;
        std::deque<std::pair<int64_t, uint32_t>> recent;  // (step end us, tokens sampled), last 5 s
        uint64_t weight_bytes = 0, kv_bytes = 0;
        uint32_t kv_size = 0;
    };
    mutable std::mutex counters_mutex_;
    Counters counters_;  // guarded by counters_mutex_

    std::thread thread_;
};

}  // namespace colony
