// Internals of OpenAiServer shared by its source files (not a public header).
#pragma once

#include <cpp-httplib/httplib.h>
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "api/openai/api_error.h"
#include "api/openai/chat_format.h"
#include "api/openai/metrics.h"
#include "api/openai/openai_server.h"
#include "api/openai/request_parse.h"
#include "api/openai/web_assets.h"

namespace colony {

struct OpenAiServer::Impl {
    Impl(InferenceBackend &b, const Tokenizer &t, const OpenAiServerOptions &o)
        : backend(b), tok(t), opts(o), chat(t, o.chat_template) {}

    InferenceBackend &backend;
    const Tokenizer &tok;
    OpenAiServerOptions opts;
    ChatFormat chat;  // the model's chat templates (common/ chat layer)
    ApiMetrics metrics;
    std::unique_ptr<httplib::Server> server;
    std::thread thread;
    uint16_t port = 0;
    bool tls = false;
    std::string id_prefix;  // random per server start
    std::atomic<uint64_t> id_counter{0};

    /// A new response id: "<prefix>-<random><counter>".
    std::string next_id(const char *prefix);
};

/// Sends `e` as the response (status and OpenAI error body).
void send_error(httplib::Response &res, const HttpError &e);

/// Sends `e` in Ollama's shape: {"error": "..."} (ollama_api.cpp).
void send_ollama_error(httplib::Response &res, const HttpError &e);

/// Writes an error response in an endpoint's shape (OpenAI's: send_error).
using ErrorWriter = void (*)(httplib::Response &res, const HttpError &e);

/// The request limits the server's options set (max_tokens and n bounds).
inline ApiLimits request_limits(const OpenAiServer::Impl &impl) {
    ApiLimits limits;
    limits.max_tokens_limit = impl.opts.max_tokens_limit;
    return limits;
}

/// Wraps a handler so that every exception becomes an error response that
/// `write` formats (http_error_from decides the status; 5xx are logged).
httplib::Server::Handler guarded(
    std::function<void(const httplib::Request &, httplib::Response &)> f,
    ErrorWriter write = send_error);

/// POST /v1/responses (responses_api.cpp).
void register_responses_routes(httplib::Server &s, OpenAiServer::Impl &impl);

/// POST /v1/embeddings, /api/embed, /api/embeddings (embeddings_api.cpp).
void register_embeddings_routes(httplib::Server &s, OpenAiServer::Impl &impl);

/// POST /v1/messages, Anthropic's Messages API (anthropic_api.cpp).
void register_anthropic_routes(httplib::Server &s, OpenAiServer::Impl &impl);

/// Ollama's /api/* routes (ollama_api.cpp).
void register_ollama_routes(httplib::Server &s, OpenAiServer::Impl &impl);

/// POST /v1/chat/completions and /v1/completions (generation_handler.cpp).
/// Throws on bad requests before anything is sent; the caller maps the error.
void handle_generation(OpenAiServer::Impl &impl, RequestKind kind, const httplib::Request &req,
                       httplib::Response &res);

}  // namespace colony
