// What the HTTP layer asks of a serving node, independent of how the model is
// spread over devices: generate a completion of a prompt, report health.
// The coordinator (coordinator.h) implements it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace colony {

/// One completion request, already validated by the API layer.
struct CompletionParams {
    std::string prompt;             // text; tokenized with BOS as the model asks
    int32_t max_tokens = 16;        // tokens to generate at most (>= 1)
    SamplingParams sampling;        // temperature 0 = greedy
    std::vector<std::string> stop;  // stop strings: generation ends before them
    bool ignore_eos = false;        // keep generating past end-of-generation tokens
};

/// The result of a completion.
struct CompletionResult {
    std::string text;           // generated text (prompt not included), cut before a stop string
    std::string finish_reason;  // "stop" (end of generation or stop string) or "length"
    int32_t prompt_tokens = 0;
    int32_t completion_tokens = 0;
    double ttft_ms = 0;   // request start to first sampled token
    double total_ms = 0;  // request start to result
};

/// Health as GET /health reports it.
struct HealthReport {
    std::string status;  // "ok", "no workers", "degraded"
    std::string reason;  // why not ok; empty when ok
    std::string json;    // the whole report (status, reason, stages, counters) as JSON text
};

class GenerationService {
  public:
    virtual ~GenerationService() = default;
    /// Generates a completion; blocks until it is done. Throws Error:
    /// kInvalidArgument (bad parameters, empty prompt), kOutOfRange (prompt
    /// longer than the context), kUnavailable (cluster not ready, a worker was
    /// lost, the pipeline stalled), kInternal. Thread-safe.
    virtual CompletionResult complete(const CompletionParams &params) = 0;
    /// Thread-safe.
    virtual HealthReport health() const = 0;
    /// Name reported as "model" in responses (the model file's name).
    virtual std::string model_name() const = 0;
};

}  // namespace colony
