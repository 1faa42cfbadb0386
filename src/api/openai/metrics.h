// The API's Prometheus metrics (text exposition format 0.0.4, ref:
// prometheus.io/docs/instrumenting/exposition_formats). Names and labels are
// listed in docs/api.md ("GET /metrics"). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "api/openai/inference_backend.h"

namespace colony {

/// A Prometheus histogram with fixed upper bounds (seconds).
class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double value);
    /// Appends the _bucket, _sum and _count lines of metric `name`.
    void render(const std::string &name, std::string &out) const;
    uint64_t count() const { return count_; }

  private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

class ApiMetrics {
  public:
    ApiMetrics();

    /// One finished HTTP request. Endpoints outside the API's routes are
    /// counted as "other" so label values stay bounded.
    void count_request(const std::string &path, int status);
    /// Tokens of one generation (prompt and generated).
    void add_tokens(int32_t prompt_tokens, int32_t generated_tokens);
    /// Speculative decoding's drafts of one generation: verified, accepted.
    void add_drafts(int64_t drafted, int64_t accepted);
    /// Time from receiving a request to its first generated token, seconds.
    void observe_ttft(double seconds);
    /// Time between two consecutive generated tokens of one request, seconds.
    void observe_tpot(double seconds);
    /// Whole duration of a generation request, seconds.
    void observe_duration(double seconds);
    /// A generation ended because its client disconnected.
    void count_client_disconnect();

    /// Counters of requests by status, for tests.
    uint64_t requests(const std::string &endpoint, int status) const;

    /// The exposition text: this object's metrics plus the backend's
    /// (queue depth, running sequences, per-stage compute and hop time, KV
    /// cache use per node) from `stats` and `health`.
    std::string render(const BackendStats &stats, const BackendHealth &health) const;

  private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;  // guarded by mutex_
    uint64_t prompt_tokens_ = 0;                                // guarded by mutex_
    uint64_t generated_tokens_ = 0;                             // guarded by mutex_
    uint64_t disconnects_ = 0;                                  // guarded by mutex_
    uint64_t drafted_ = 0, accepted_ = 0;                       // guarded by mutex_
    Histogram ttft_, tpot_, duration_;                          // guarded by mutex_
};

/// Escapes a Prometheus label value (backslash, double quote, newline).
std::string prometheus_escape(const std::string &value);

}  // namespace colony
