#include "api/openai/openai_server.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "api/openai/connection_pool.h"
#include "api/openai/inference_backend.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "runtime/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr const char *kJson = "application/json";
constexpr int kReadTimeoutSec = 30;   // a client has this long to send each piece of its request
constexpr int kWriteTimeoutSec = 10;  // a client that reads nothing for this long is dropped
constexpr int kKeepAliveSec = 5;

/// Routes that need the API key when one is set.
bool needs_auth(const std::string &path) {
    return path.rfind("/v1/", 0) == 0 || path.rfind("/api/", 0) == 0 || path == "/metrics";
}

/// Compares a client's key with ours in time that depends only on the
/// client's key's length (not on how much of it matches). key is not empty.
bool same_secret(const std::string &given, const std::string &key) {
    unsigned diff = given.size() == key.size() ? 0u : 1u;
    for (size_t i = 0; i < given.size(); ++i) {
        diff |=
            static_cast<unsigned char>(given[i]) ^ static_cast<unsigned char>(key[i % key.size()]);
    }
    return diff == 0;
}

/// The key of an "Authorization: Bearer <key>" header; "" without one.
std::string bearer_token(const httplib::Request &req) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
}

std::string random_hex(size_t n) {
    static const char *digits = "0123456789abcdef";
    std::random_device rd;
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += digits[rd() % 16];
    return s;
}

std::unique_ptr<httplib::Server> make_server(const OpenAiServerOptions &o, bool &tls) {
    tls = false;
    if (o.ssl_cert.empty() != o.ssl_key.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "--ssl-cert and --ssl-key must be given together");
    }
    if (o.ssl_cert.empty())
        return std::make_unique<httplib::Server>();
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    auto s = std::make_unique<httplib::SSLServer>(o.ssl_cert.c_str(), o.ssl_key.c_str());
    if (!s->is_valid()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "cannot use the TLS certificate '" + o.ssl_cert + "' with key '" + o.ssl_key +
                        "' (unreadable, not PEM, or they do not match)");
    }
    tls = true;
    return s;
#else
    throw Error(ErrorCode::kUnsupported,
                "this build of colony has no TLS support (cpp-httplib without OpenSSL)");
#endif
}

}  // namespace

bool openai_server_has_tls() {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    return true;
#else
    return false;
#endif
}

httplib::Server::Handler guarded(
    std::function<void(const httplib::Request &, httplib::Response &)> f, ErrorWriter write) {
    return [f = std::move(f), write](const httplib::Request &req, httplib::Response &res) {
        try {
            f(req, res);
        } catch (const std::exception &e) {
            const HttpError err = http_error_from(e);
            if (err.status >= 500)
                COLONY_LOG_WARN("api: %s %s: %s", req.method.c_str(), req.path.c_str(), e.what());
            write(res, err);
        }
    };
}

void send_error(httplib::Response &res, const HttpError &e) {
    res.status = e.status;
    if (e.status == 401)
        res.set_header("WWW-Authenticate", "Bearer");
    res.set_content(error_body(e), kJson);
}

std::string OpenAiServer::Impl::next_id(const char *prefix) {
    return std::string(prefix) + "-" + id_prefix + std::to_string(id_counter.fetch_add(1) + 1);
}

OpenAiServer::OpenAiServer(InferenceBackend &backend, const Tokenizer &tok,
                           const OpenAiServerOptions &opts)
    : impl_(std::make_unique<Impl>(backend, tok, opts)) {
    Impl &impl = *impl_;
    if (opts.max_body_bytes == 0)
        throw Error(ErrorCode::kInvalidArgument, "--max-body-bytes must be positive");
    if (opts.max_tokens_limit < 1)
        throw Error(ErrorCode::kInvalidArgument, "--max-tokens-limit must be positive");
    if (opts.max_prompt_tokens < 0)
        throw Error(ErrorCode::kInvalidArgument, "--max-prompt-tokens must be >= 0");
    impl.id_prefix = random_hex(12);
    impl.server = make_server(opts, impl.tls);
    httplib::Server &s = *impl.server;

    // A connection holds an HTTP thread for its life (streams, keep-alive,
    // slow clients): room for every slot and queued request and many idle
    // connections besides (bench/api_load --idle measures it).
    const BackendStats st = backend.stats();
    const size_t max_threads = opts.http_threads > 0
                                   ? static_cast<size_t>(opts.http_threads)
                                   : std::max<size_t>(512, st.n_parallel + st.max_queue + 64);
    const size_t base_threads = std::min<size_t>(8, max_threads);
    // httplib takes ownership of the queue it gets from this factory (its API needs a raw pointer).
    s.new_task_queue = [base_threads, max_threads] {
        return new ConnectionPool(base_threads, max_threads);
    };
    s.set_payload_max_length(opts.max_body_bytes);
    s.set_read_timeout(kReadTimeoutSec, 0);
    s.set_write_timeout(kWriteTimeoutSec, 0);
    s.set_keep_alive_timeout(kKeepAliveSec);

    s.set_pre_routing_handler([&impl](const httplib::Request &req, httplib::Response &res) {
        if (impl.opts.api_key.empty() || !needs_auth(req.path))
            return httplib::Server::HandlerResponse::Unhandled;
        std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (auth.empty() && req.has_header("x-api-key"))  // Anthropic's clients
            auth = prefix + req.get_header_value("x-api-key");
        if (auth.empty()) {
            send_error(
                res,
                http_error(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                           "missing_api_key"));
            return httplib::Server::HandlerResponse::Handled;
        }
        if (auth.rfind(prefix, 0) != 0 ||
            !same_secret(auth.substr(prefix.size()), impl.opts.api_key)) {
            send_error(res, http_error(401, "invalid API key", "invalid_api_key"));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Statuses httplib sets itself (404 no route, 413 body too large, 400
    // unreadable request) get an OpenAI error body too.
    s.set_error_handler([](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty() || res.content_provider_)
            return httplib::Server::HandlerResponse::Unhandled;
        std::string msg = "HTTP " + std::to_string(res.status);
        std::string code;
        if (res.status == 404) {
            msg = "no route for " + req.method + " " + req.path;
            code = "not_found";
        } else if (res.status == 413) {
            msg = "the request body is larger than this server accepts (--max-body-bytes)";
            code = "request_too_large";
        } else if (res.status == 400) {
            msg = "malformed HTTP request";
        }
        send_error(res, http_error(res.status, msg, code));
        return httplib::Server::HandlerResponse::Handled;
    });
    s.set_exception_handler(
        [](const httplib::Request &, httplib::Response &res, std::exception_ptr ep) {
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception &e) {
                send_error(res, http_error_from(e));
            } catch (...) {
                send_error(res, http_error(500, "unknown error", "internal_error"));
            }
        });
    s.set_logger([&impl](const httplib::Request &req, const httplib::Response &res) {
        impl.metrics.count_request(req.path, res.status);
    });

    s.Post("/v1/chat/completions",
           guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               handle_generation(impl, RequestKind::kChat, req, res);
           }));
    s.Post("/v1/completions", guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               handle_generation(impl, RequestKind::kCompletion, req, res);
           }));
    register_ollama_routes(s, impl);
    register_responses_routes(s, impl);
    register_anthropic_routes(s, impl);
    register_embeddings_routes(s, impl);
    s.Get("/v1/models", guarded([&impl](const httplib::Request &, httplib::Response &res) {
              res.set_content(models_body(impl.backend.model_info(), impl.tok.has_chat_template()),
                              kJson);
          }));
    s.Get(R"(/v1/models/(.+))",
          guarded([&impl](const httplib::Request &req, httplib::Response &res) {
              const BackendModelInfo info = impl.backend.model_info();
              if (req.matches[1] != info.id) {
                  throw RequestError(
                      ErrorCode::kNotFound, "model", "model_not_found",
                      "the model '" + std::string(req.matches[1]) + "' does not exist");
              }
              res.set_content(model_body(info, impl.tok.has_chat_template()), kJson);
          }));
    s.Get("/v1/cluster", guarded([&impl](const httplib::Request &, httplib::Response &res) {
              res.set_header("Cache-Control", "no-store");
              res.set_content(impl.backend.cluster_json(), kJson);
          }));
    s.Get("/health", guarded([&impl](const httplib::Request &req, httplib::Response &res) {
              const BackendHealth h = impl.backend.health();
              // the backend's details (addresses, keys' fingerprints) only for those with the key
              const bool details =
                  impl.opts.api_key.empty() || same_secret(bearer_token(req), impl.opts.api_key);
              nlohmann::json body = nlohmann::json::parse(
                  details ? impl.backend.health_detail_json() : std::string(), nullptr, false);
              if (!body.is_object())
                  body = nlohmann::json::object();
              body["status"] = h.status;
              body["reason"] = h.reason;
              res.status = h.ready ? 200 : 503;
              res.set_header("Cache-Control", "no-store");
              res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                              kJson);
          }));
    s.Get("/metrics", guarded([&impl](const httplib::Request &, httplib::Response &res) {
              res.set_content(impl.metrics.render(impl.backend.stats(), impl.backend.health()),
                              "text/plain; version=0.0.4; charset=utf-8");
          }));
    s.Get(R"(/|/[a-z0-9_.\-]+\.(js|css|svg))",
          guarded([](const httplib::Request &req, httplib::Response &res) {
              const WebAsset *a = find_web_asset(req.path);
              if (!a)
                  throw RequestError(ErrorCode::kNotFound, "", "not_found", "no file " + req.path);
              res.set_header("Cache-Control", "no-cache");
              res.set_header(
                  "Content-Security-Policy",
                  "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:");
              res.set_header("X-Content-Type-Options", "nosniff");
              res.set_content(reinterpret_cast<const char *>(a->data), a->size, a->content_type);
          }));

    int bound = -1;
    if (opts.port == 0) {
        bound = s.bind_to_any_port(opts.host);
    } else if (s.bind_to_port(opts.host, opts.port)) {
        bound = opts.port;
    }
    if (bound <= 0) {
        throw Error(ErrorCode::kUnavailable,
                    "cannot listen on " + opts.host + ":" + std::to_string(opts.port) +
                        " (address in use, or not an address of this machine)");
    }
    impl.port = static_cast<uint16_t>(bound);
    impl.thread = std::thread([&s] { s.listen_after_bind(); });
    s.wait_until_ready();
    COLONY_LOG_INFO("api: serving %s on %s://%s:%u%s", backend.model_info().id.c_str(),
                    impl.tls ? "https" : "http", opts.host.c_str(), impl.port,
                    opts.api_key.empty() ? "" : " (API key required)");
}

OpenAiServer::~OpenAiServer() {
    impl_->server->stop();
    if (impl_->thread.joinable())
        impl_->thread.join();
}

uint16_t OpenAiServer::port() const {
    return impl_->port;
}
bool OpenAiServer::tls() const {
    return impl_->tls;
}
const ApiMetrics &OpenAiServer::metrics() const {
    return impl_->metrics;
}

}  // namespace colony
