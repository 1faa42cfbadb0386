// colony's HTTP endpoint (cpp-httplib from the pinned tree's vendor/):
//   POST /v1/completions   OpenAI completions, non-streaming (completion_json.h)
//   GET  /health           200 {"status":"ok",...} when the cluster serves,
//                          503 {"status":"no workers"|"degraded","reason":...} otherwise
// Every handler catches at one boundary: an Error becomes its HTTP status
// (http_status_for) with an OpenAI-style error body; nothing escapes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace colony {

class GenerationService;

struct HttpApiOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;  // 0 = an ephemeral port
};

class HttpApi {
  public:
    /// Binds host:port and starts serving on a thread of its own. service
    /// must outlive this object. Throws Error(kUnavailable) when the port
    /// cannot be bound.
    HttpApi(GenerationService &service, const HttpApiOptions &opts);
    /// Stops serving and joins the thread.
    ~HttpApi();
    HttpApi(const HttpApi &) = delete;
    HttpApi &operator=(const HttpApi &) = delete;

    uint16_t port() const { return port_; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    uint16_t port_ = 0;
};

}  // namespace colony
