// LocalBackend: a cluster of one as an InferenceBackend (what `colony serve`
// runs without workers). It is the one-stage case of the cluster: a
// ClusterState holding a plan of one stage (every layer, this node samples)
// and the same BatchScheduler (pipeline/batch_scheduler.h) that serves a
// coordinator with workers: the same queue, slots, cancellation, continuous
// batching (decode rows and prompt chunks in one ubatch) and stage host.
// There is no socket: the scheduler thread sleeps on a condition variable
// between requests.
//
// The KV cache holds n_ctx cells shared by n_parallel sequences; each
// sequence may use n_ctx / n_parallel positions, so the cache never runs out
// while at most n_parallel sequences run.
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "api/openai/inference_backend.h"
#include "ggml.h"
#include "model/hparams.h"
#include "net/keys.h"
#include "pipeline/coordinator_options.h"

namespace colony {

class BatchScheduler;
class ClusterState;
class GgufFile;
class Tokenizer;

struct LocalBackendOptions {
    std::string model_path;   // GGUF file
    std::string model_id;     // name in the API; empty: the file name without ".gguf"
    uint32_t n_parallel = 4;  // sequence slots (>= 1, <= n_ubatch)
    uint32_t n_ctx = 4096;    // KV cache cells in total (>= n_parallel * 2)
    uint32_t n_ubatch = 512;  // rows per forward pass
    int n_threads = 0;        // compute threads; 0 = all cores
    CpuAffinity cpu;          // where they run (cluster/cpu_placement.h)
    GpuOffload gpu;           // -ngl/--device (runtime/stage.h)
    size_t max_queue = 64;    // requests waiting for a slot before submit() refuses
    ggml_type type_k = GGML_TYPE_F16;
    ggml_type type_v = GGML_TYPE_F16;
    bool use_mmap = true;
    bool use_repack = true;
    std::string debug_logits_file;  // debug: sampled tokens and first logits (logits_dump.h)
    bool batch_invariant = false;   // --batch-invariant: the floats of a cluster's kFull stages
    KvWindow kv_window;             // --kv-window/--kv-sinks (runtime/kv_window.h)
    SpecParams spec;                // speculative decoding (runtime/speculative.h)
    LayerSkip skip_layers;          // --skip-layers (model/layer_skip.h; checked against the model)
    DynamicSkip dyn_skip;           // --dynamic-skip (runtime/dynamic_skip.h)
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
    CoordinatorOptions opts_;  // the scheduler's view: one stage, no sockets
    std::shared_ptr<const GgufFile> file_;
    ModelHparams hp_;
    BackendModelInfo info_;
    std::unique_ptr<Tokenizer> tok_;
    std::string device_;     // CPU description from ggml
    std::string hostname_;   // this machine's name
    CurveKeypair no_keys_;   // no link: unused
    zmq::context_t ctx_{0};  // no socket is ever opened on it
    std::unique_ptr<ClusterState> state_;
    std::unique_ptr<BatchScheduler> scheduler_;
};

}  // namespace colony
