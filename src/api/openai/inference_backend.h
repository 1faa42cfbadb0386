// What the HTTP layer (openai_server.h) asks of whatever runs the model: a
// single in-process stage (LocalBackend, local_backend.h) or the pipeline's
// coordinator. The API layer owns tokenization, chat templates, stop strings
// and detokenization; a backend sees token ids only:
//
//   submit(prompt ids, sampling, max tokens)  -> id; tokens stream back through
//                                                callbacks on a backend thread
//   cancel(id)                                -> the sequence ends at the next
//                                                step and its KV cache is freed
//                                                on every stage
//   health(), stats(), cluster_json()         -> /health, /metrics, /v1/cluster
//
// Threading contract (every implementation must keep it):
//   - submit, cancel, health, stats, cluster_json and model_info are
//     thread-safe and may be called from any thread (the HTTP worker threads).
//   - on_token and on_done run on a backend thread, in order, never
//     concurrently for one request. They must return quickly (push to a queue,
//     notify) and must not call submit(); they may call cancel().
//   - on_done is called exactly once per accepted request, whatever happens
//     (finished, cancelled, failed, backend shutting down), and nothing is
//     called for that request after it. A submit() that throws calls nothing.
//   - cancel() of an unknown or finished id does nothing. A cancelled request
//     ends with FinishReason::kCancelled (or whatever reason it had already
//     reached); its KV cells are free by the time on_done runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/layer_range.h"
#include "runtime/sampler.h"
#include "util/error.h"

namespace colony {

/// Why a generation ended.
enum class FinishReason {
    kStop,       // an end-of-generation token was sampled
    kLength,     // max_tokens reached, or the sequence's context is full
    kCancelled,  // cancel() was called (client went away, stop string matched)
    kError,      // the backend failed; see GenerationResult::error_*
};

/// "stop", "length", "cancelled", "error".
const char *finish_reason_name(FinishReason reason);

/// The model's name in the API by default: the file name without ".gguf".
std::string model_id_from_path(const std::string &path);
/// Modification time of a file, Unix seconds; 0 when unknown.
uint64_t file_mtime_unix(const std::string &path);
/// This machine's host name ("localhost" when unknown).
std::string this_host_name();
/// The CPU as ggml describes it ("CPU" when unknown).
std::string cpu_device_name();

/// One generation in token ids, validated by the API layer.
struct GenerationRequest {
    std::vector<int32_t> prompt;   // token ids, 1 .. model_info().n_ctx_seq - 1 of them
    int32_t max_tokens = 16;       // >= 1; tokens to deliver through on_token at most
    SamplingParams sampling;       // temperature <= 0: greedy
    SequenceOptions options;       // grammar and logprobs, applied where the sampling happens
    uint64_t share_prompt_of = 0;  // an earlier request (id) with the same prompt: its prompt's
                                   // KV cells are copied instead of prefilled again (n choices)
    bool ignore_eos = false;       // true: end-of-generation tokens are delivered like any other
};

/// How a generation ended. Times are microseconds from submit().
struct GenerationResult {
    FinishReason finish = FinishReason::kStop;
    int32_t n_prompt = 0;          // prompt tokens
    int32_t n_generated = 0;       // tokens delivered through on_token (an ending EOG token is not)
    int64_t queue_us = 0;          // until the request got a sequence slot
    int64_t ttft_us = 0;           // until the first token was sampled (0: none)
    int64_t total_us = 0;          // until on_done
    int64_t draft_n = 0;           // speculative decoding: drafts verified (llama-server's name)
    int64_t draft_n_accepted = 0;  // ... and accepted
    ErrorCode error_code = ErrorCode::kInternal;  // finish == kError only
    std::string error_message;                    // finish == kError only
};

/// Where a backend reports a request's progress (see the threading contract).
struct GenerationCallbacks {
    std::function<void(const SampledToken &token)> on_token;      // one sampled token (with
                                                                  // logprobs if asked for)
    std::function<void(const GenerationResult &result)> on_done;  // exactly once, last
    /// An embedding request (options.pooling set): the pooled, L2-normalized
    /// embedding F32 [n_embd], once, before on_done.
    std::function<void(std::vector<float> embedding)> on_embedding;
};

/// Health as GET /health reports it.
struct BackendHealth {
    bool ready = false;  // requests are accepted (HTTP 200); false: 503
    std::string
        status;  // "ok", "degraded" (serving with a problem), "loading", "no workers", "failed"
    std::string reason;  // why not "ok"; empty when ok
};

/// Counters of one pipeline stage, cumulative since its node started (for /metrics).
struct StageStats {
    std::string node_id;         // node running the stage ("local" for LocalBackend; the
                                 // coordinator's and workers' names in a pipeline)
    uint32_t index = 0;          // 0 = first stage
    LayerRange layers;           // transformer blocks [first, last)
    uint64_t n_ubatches = 0;     // forward passes run
    double compute_seconds = 0;  // total wall time of those forward passes
    uint64_t n_hops = 0;         // hidden-state transfers to the next stage (0 on the last)
    double hop_seconds = 0;      // total time the stage spent handing them to the transport
                                 // (encode + enqueue; the network's latency is link_rtt_ms)
    uint32_t kv_used_cells = 0;  // KV cache cells holding a (sequence, position) now
    uint32_t kv_size_cells = 0;  // KV cache cells in total
};

/// Recoveries from lost stages since the backend started (for /metrics;
/// ClusterState's RecoveryTotals in a cluster, zeros serving alone).
struct RecoveryStats {
    uint64_t recoveries = 0;         // losses that opened a recovery
    uint64_t failed = 0;             // of them, those whose requests failed
    uint64_t requests_replayed = 0;  // requests replayed on a new plan
    uint64_t tokens_recomputed = 0;  // positions re-prefilled
};

/// Messages one node dropped as stale or replayed (net/message_fence.h), for
/// colony_messages_dropped_total.
struct MessageDropStats {
    std::string node_id;  // the node's name ("local" serving alone)
    std::string reason;   // "stale_epoch", "future_epoch", "replayed", "unknown_request"
    uint64_t count = 0;   // since the node started
};

/// A snapshot of the backend's load (for /metrics).
struct BackendStats {
    size_t n_queued = 0;      // accepted requests waiting for a sequence slot
    size_t n_running = 0;     // requests holding a sequence slot
    uint32_t n_parallel = 0;  // sequence slots (KV cache n_seq_max)
    size_t max_queue = 0;     // submit() refuses beyond this many queued requests
    std::vector<StageStats> stages;
    RecoveryStats recovery;
    uint64_t prompt_tokens_shared = 0;  // prompt positions copied between choices (n > 1)
    std::vector<MessageDropStats> messages_dropped;  // per node and reason (none serving alone)
};

/// What the API layer needs to know about the model.
struct BackendModelInfo {
    std::string id;        // model name in the API ("model" field), e.g. the file's stem
    std::string path;      // GGUF path on the serving node (for the tokenizer)
    std::string arch;      // "llama", "qwen2", "qwen3"
    uint32_t n_layer = 0;  // transformer blocks
    uint32_t n_vocab = 0;
    uint32_t n_ctx_seq = 0;             // positions one sequence may use (prompt + generated)
    std::vector<uint32_t> skip_layers;  // blocks no stage computes (--skip-layers), ascending
    uint64_t created_unix = 0;          // for /v1/models "created" (the file's modification time)
};

class InferenceBackend {
  public:
    virtual ~InferenceBackend() = default;

    /// Accepts a request and returns its id (> 0, unique for the backend's
    /// lifetime). Throws Error: kUnavailable (not ready: loading, no
    /// workers, shutting down), kResource (the queue holds max_queue
    /// requests: "queue full"), kOutOfRange (prompt does not fit the
    /// sequence's context), kInvalidArgument (empty prompt, token id outside
    /// the vocabulary, max_tokens < 1, bad sampling parameters).
    virtual uint64_t submit(GenerationRequest request, GenerationCallbacks callbacks) = 0;

    /// Ends request `id` as soon as possible and frees its KV cache on every
    /// stage; on_done follows (on a backend thread, possibly before cancel
    /// returns). Unknown or finished ids are ignored.
    virtual void cancel(uint64_t id) = 0;

    virtual BackendHealth health() const = 0;
    /// More about the backend's state as a JSON object text, merged into the
    /// GET /health body (its "status" and "reason" come from health()); empty:
    /// nothing more.
    virtual std::string health_detail_json() const { return {}; }
    virtual BackendStats stats() const = 0;

    /// The cluster as JSON text for GET /v1/cluster and the dashboard; schema
    /// in docs/api.md ("GET /v1/cluster"): {model, status, reason, requests,
    /// nodes: [{id, name, role, device, state, progress, layers, memory, kv,
    /// tokens_per_s, compute_ms, link_rtt_ms, battery, temperature_c}]}.
    virtual std::string cluster_json() const = 0;

    /// Constant for the backend's lifetime (callable before it is ready).
    virtual BackendModelInfo model_info() const = 0;
};

}  // namespace colony
