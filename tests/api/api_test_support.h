// Helpers for the API tests: models, a server on a LocalBackend, a slowed-down
// backend (to hold requests open), an SSE parser that checks the framing,
// and a raw socket client that can hang up mid-response.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/local_backend.h"
#include "api/openai/inference_backend.h"
#include "api/openai/openai_server.h"
#include "common/test_env.h"

namespace colony::apitest {

/// stories260K (llama, no chat template), F32.
std::string stories_path();

/// 16 streamed greedy completion requests with distinct prompts (8 story
/// openings, then the same 8 with " and then"), max_tokens each.
std::vector<nlohmann::json> sixteen_stream_requests(int max_tokens);

/// One streamed completion as a client saw it.
struct StreamedCompletion {
    int status = 0;             // HTTP status; 0: no answer
    std::string text;           // every chunk's text, joined
    std::string finish_reason;  // of the chunk that carries one; "" when none did
    std::string error;          // an error event's "error" object, as JSON; "" when none
    std::string body;           // the raw response body, for failure messages
    /// HTTP 200, no error event, and the stream ended with a finish reason.
    bool ok() const { return status == 200 && error.empty() && !finish_reason.empty(); }
    /// "HTTP <status>, finish '<reason>', error '<error>': <body>" for assertion messages.
    std::string describe() const;
};

/// POSTs `req` (a completion request with "stream": true) to /v1/completions
/// on 127.0.0.1:port and reads the whole stream. The SSE framing is checked
/// (sse_payloads). Never throws; a failed request has ok() false.
StreamedCompletion stream_completion(uint16_t port, const nlohmann::json &req,
                                     int read_timeout_s = 120);

/// Writes a tiny synthetic qwen2 model (2 layers, 64 wide, the Qwen2 vocab
/// and ChatML template) into `dir` once per process and returns its path.
std::string tiny_qwen2_path(const std::string &dir);

/// LocalBackend options for tests: 2 threads, the given slots and context.
LocalBackendOptions backend_options(const std::string &model, uint32_t n_parallel = 4,
                                    uint32_t n_ctx = 2048);

/// A backend that forwards to another and sleeps `delay` in every on_token
/// (on the backend's thread), so generations last long enough to interrupt.
class SlowBackend : public InferenceBackend {
  public:
    SlowBackend(InferenceBackend &inner, std::chrono::milliseconds delay)
        : inner_(inner), delay_(delay) {}
    uint64_t submit(GenerationRequest request, GenerationCallbacks callbacks) override;
    void cancel(uint64_t id) override { inner_.cancel(id); }
    BackendHealth health() const override { return inner_.health(); }
    BackendStats stats() const override { return inner_.stats(); }
    std::string cluster_json() const override { return inner_.cluster_json(); }
    BackendModelInfo model_info() const override { return inner_.model_info(); }

  private:
    InferenceBackend &inner_;
    std::chrono::milliseconds delay_;
};

/// A backend that is never ready (health from the constructor), for 503 tests.
class NotReadyBackend : public InferenceBackend {
  public:
    explicit NotReadyBackend(BackendModelInfo info, std::string status, std::string reason)
        : info_(std::move(info)), status_(std::move(status)), reason_(std::move(reason)) {}
    uint64_t submit(GenerationRequest, GenerationCallbacks) override;
    void cancel(uint64_t) override {}
    BackendHealth health() const override { return {false, status_, reason_}; }
    BackendStats stats() const override { return {}; }
    std::string cluster_json() const override { return "{\"nodes\":[]}"; }
    BackendModelInfo model_info() const override { return info_; }

  private:
    BackendModelInfo info_;
    std::string status_, reason_;
};

/// Payloads of an SSE body. Fails the current test (ADD_FAILURE) unless the
/// body is exactly a sequence of "data: <payload>\n\n" events.
std::vector<std::string> sse_payloads(const std::string &body);

/// An HTTP response as read from a raw socket.
struct RawResponse {
    int status = 0;
    std::string headers;
    std::string body;
};

/// Sends `request` (a complete HTTP/1.1 request) to 127.0.0.1:port and reads
/// until the server closes, `timeout` passes, or hang_up(what arrived so far)
/// returns true (checked every 20 ms and after each read); then hangs up.
RawResponse raw_http(uint16_t port, const std::string &request,
                     const std::function<bool(const RawResponse &)> &hang_up = nullptr,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

/// A POST request with a JSON body, as raw bytes.
std::string raw_post(const std::string &path, const std::string &json,
                     const std::string &extra_headers = "");

/// Value of the first sample of `metric` (with exactly `labels`, "" for none)
/// in Prometheus text; -1 when absent.
double metric_value(const std::string &text, const std::string &metric,
                    const std::string &labels = "");

/// Polls `pred` every 20 ms until it holds or `timeout` passes; returns pred's last value.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

}  // namespace colony::apitest
