// CoordinatorBackend: the pipeline coordinator (pipeline/coordinator.h) as an
// InferenceBackend, so that OpenAiServer serves a distributed cluster the way
// it serves a whole model in one process (LocalBackend).
//
//   submit   -> BatchScheduler::submit: a sequence in the pipeline,
//               tokens streamed back through on_token as the last stage
//               samples them, on_done exactly once
//   cancel   -> BatchScheduler::cancel: the sequence stops and
//               SEQ_RELEASE frees its KV cache on every stage
//   health   -> the control plane's readiness (ok, no workers, degraded)
//   stats    -> stage 0's counters from the scheduler, the workers' from
//               their STATUS reports (node_status.h)
//   cluster_json -> coordinator_cluster_view.cpp (schema: docs/api.md)
//
// Dependencies run one way: colony_api (this) -> colony_openai (the HTTP
// layer) and colony_pipeline (the coordinator).
#pragma once

#include <cstddef>
#include <string>

#include "api/openai/inference_backend.h"

namespace colony {

class Coordinator;

struct CoordinatorBackendOptions {
    std::string model_id;   // model name in the API; empty: the file name without ".gguf"
    size_t max_queue = 64;  // requests waiting for a sequence slot before submit() refuses
};

class CoordinatorBackend : public InferenceBackend {
  public:
    /// `coordinator` must outlive the backend. Sets the scheduler's queue bound.
    CoordinatorBackend(Coordinator &coordinator, CoordinatorBackendOptions opts);

    uint64_t submit(GenerationRequest request, GenerationCallbacks callbacks) override;
    void cancel(uint64_t id) override;
    BackendHealth health() const override;
    /// The coordinator's members, plan and counters (Coordinator::health_json).
    std::string health_detail_json() const override;
    BackendStats stats() const override;
    std::string cluster_json() const override;
    BackendModelInfo model_info() const override { return info_; }

  private:
    Coordinator &c_;
    CoordinatorBackendOptions opts_;
    BackendModelInfo info_;
    std::string host_;    // this machine's name
    std::string device_;  // CPU description from ggml
};

}  // namespace colony
