#include "api/http_api.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <cpp-httplib/httplib.h>

#include "api/completion_json.h"
#include "pipeline/generation.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr const char *kJson = "application/json";

void send_error(httplib::Response &res, int status, const std::string &message) {
    res.status = status;
    res.set_content(error_json(message, error_type_for(status), status), kJson);
}

}  // namespace

struct HttpApi::Impl {
    GenerationService &service;
    httplib::Server server;
    std::thread thread;
    std::atomic<uint64_t> counter{0};

    explicit Impl(GenerationService &s) : service(s) {}

    void completions(const httplib::Request &req, httplib::Response &res) {
        try {
            const CompletionParams params = parse_completion_request(req.body);
            const CompletionResult result = service.complete(params);
            const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
            const std::string id = "cmpl-" + std::to_string(now) + "-" + std::to_string(++counter);
            res.set_content(completion_response_json(result, service.model_name(), id, now), kJson);
        } catch (const Error &e) {
            const int status = http_status_for(e.code());
            if (status >= 500)
                COLONY_LOG_WARN("api: completion failed: %s", e.what());
            send_error(res, status, e.what());
        } catch (const std::exception &e) {
            COLONY_LOG_ERROR("api: completion failed: %s", e.what());
            send_error(res, 500, e.what());
        }
    }

    void health(httplib::Response &res) {
        try {
            const HealthReport h = service.health();
            res.status = h.status == "ok" ? 200 : 503;
            res.set_content(h.json, kJson);
        } catch (const std::exception &e) {
            send_error(res, 500, e.what());
        }
    }
};

HttpApi::HttpApi(GenerationService &service, const HttpApiOptions &opts)
    : impl_(std::make_unique<Impl>(service)) {
    Impl &impl = *impl_;
    impl.server.Post("/v1/completions",
                     [&impl](const httplib::Request &req, httplib::Response &res) {
                         impl.completions(req, res);
                     });
    impl.server.Get(
        "/health", [&impl](const httplib::Request &, httplib::Response &res) { impl.health(res); });
    impl.server.set_payload_max_length(16u << 20);
    if (opts.port == 0) {
        const int port = impl.server.bind_to_any_port(opts.host);
        if (port <= 0) {
            throw Error(ErrorCode::kUnavailable, "cannot bind the HTTP API on " + opts.host);
        }
        port_ = static_cast<uint16_t>(port);
    } else {
        if (!impl.server.bind_to_port(opts.host, opts.port)) {
            throw Error(ErrorCode::kUnavailable, "cannot bind the HTTP API on " + opts.host + ":" +
                                                     std::to_string(opts.port));
        }
        port_ = opts.port;
    }
    impl.thread = std::thread([&impl] { impl.server.listen_after_bind(); });
    impl.server.wait_until_ready();
}

HttpApi::~HttpApi() {
    impl_->server.stop();
    if (impl_->thread.joinable())
        impl_->thread.join();
}

}  // namespace colony
