// colony's OpenAI-compatible HTTP server (cpp-httplib from the pinned tree),
// in front of any InferenceBackend (inference_backend.h):
//
//   POST /v1/chat/completions   chat, rendered with the model's chat template; SSE when stream
//   POST /v1/completions        plain prompt; SSE when stream
//   GET  /v1/models, /v1/models/{id}
//   GET  /v1/cluster            the backend's cluster JSON (dashboard)
//   GET  /health                200 when ready, 503 otherwise; {"status", "reason"}
//   GET  /metrics               Prometheus text
//   GET  /                      the dashboard (files embedded at build time)
//
// Field-by-field reference, errors and metric names: docs/api.md.
//
// Safety: binds 127.0.0.1 unless told otherwise; with an API key every /v1/
// route and /metrics need "Authorization: Bearer <key>" (/health and the
// dashboard page do not); optional TLS; request bodies, prompt tokens and
// max_tokens are limited; the backend's queue is bounded (429 when full).
// Every handler catches at one boundary (http_error_from); nothing a client
// sends stops the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace colony {

class ApiMetrics;
class InferenceBackend;
class Tokenizer;

struct OpenAiServerOptions {
    std::string host = "127.0.0.1";    // address to bind; "0.0.0.0" exposes the server
    uint16_t port = 8080;              // 0: an ephemeral port (see OpenAiServer::port)
    std::string api_key;               // empty: no authentication
    std::string ssl_cert;              // PEM certificate chain; with ssl_key: HTTPS
    std::string ssl_key;               // PEM private key
    size_t max_body_bytes = 4u << 20;  // larger request bodies: 413
    int32_t max_prompt_tokens = 0;     // longer prompts: 413; 0: only the context bounds them
    int32_t max_tokens_limit = 4096;   // larger max_tokens: 400; also the chat default
    int32_t default_completion_tokens =
        16;                // /v1/completions without max_tokens (OpenAI's default)
    int http_threads = 0;  // HTTP threads (connections) at most; 0: max(512, slots + queue + 64)
    std::string chat_template;  // Jinja text replacing the model's (--chat-template-file)
    std::string pooling;        // embeddings: "mean", "cls", "last"; "": the model's
                                // <arch>.pooling_type, else mean (--pooling)
};

/// True when this build can serve HTTPS (cpp-httplib built with OpenSSL).
bool openai_server_has_tls();

class OpenAiServer {
  public:
    /// Binds host:port and serves on a thread of its own. backend and tok
    /// (the model's tokenizer) must outlive the server. Errors:
    /// kInvalidArgument (a certificate without a key or the reverse, unreadable
    /// or mismatched TLS files, bad limits), kUnsupported (TLS asked for in a
    /// build without it), kUnavailable (the address cannot be bound).
    OpenAiServer(InferenceBackend &backend, const Tokenizer &tok, const OpenAiServerOptions &opts);
    /// Stops accepting, ends open streams, joins the server thread.
    ~OpenAiServer();
    OpenAiServer(const OpenAiServer &) = delete;
    OpenAiServer &operator=(const OpenAiServer &) = delete;

    uint16_t port() const;
    bool tls() const;
    const ApiMetrics &metrics() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace colony
