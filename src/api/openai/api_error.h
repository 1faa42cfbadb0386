// Errors of the HTTP API in OpenAI's shape
//   {"error": {"message": "...", "type": "...", "param": "..."|null, "code": "..."|null}}
// (ref: platform.openai.com/docs/guides/error-codes). http_error_from() is the
// one place where a failure becomes an HTTP status (STYLE.md E2).
#pragma once

#include <exception>
#include <string>

#include "util/error.h"

namespace colony {

/// An Error about one request: which field is wrong (param, e.g. "max_tokens"
/// or "messages[1].content"; empty when no single field) and OpenAI's
/// machine-readable code ("model_not_found"; empty: the code's default).
class RequestError : public Error {
  public:
    RequestError(ErrorCode code, std::string param, std::string api_code,
                 const std::string &message)
        : Error(code, message), param_(std::move(param)), api_code_(std::move(api_code)) {}
    const std::string &param() const { return param_; }
    const std::string &api_code() const { return api_code_; }

  private:
    std::string param_;
    std::string api_code_;
};

/// A bad request field: Error(kInvalidArgument) naming `param`.
inline RequestError field_error(const std::string &param, const std::string &message) {
    return RequestError(ErrorCode::kInvalidArgument, param, "invalid_value",
                        param + ": " + message);
}

/// An error as the HTTP layer sends it.
struct HttpError {
    int status = 500;
    std::string type;     // OpenAI's error type ("invalid_request_error", ...)
    std::string code;     // machine-readable code; empty: JSON null
    std::string param;    // offending field; empty: JSON null
    std::string message;  // for people
};

/// Maps a failure to HTTP. colony::Error by code:
///   kInvalidArgument, kUnsupported          400 invalid_request_error
///   kUnauthorized                           401 authentication_error (invalid_api_key)
///   kNotFound                               404 invalid_request_error (not_found)
///   kOutOfRange                             413 invalid_request_error (context_length_exceeded)
///   kResource                               429 rate_limit_error (queue_full)
///   kUnavailable, kCancelled                503 unavailable_error (unavailable)
///   kCorrupt, kProtocol, kInternal, others  500 server_error
/// A RequestError adds its param and code; any other exception is a 500.
HttpError http_error_from(const std::exception &e);

/// An error the HTTP layer raises itself without an exception (e.g. 413 for
/// a body over the limit, 404 for an unknown path); type from the status.
HttpError http_error(int status, const std::string &message, const std::string &code = "",
                     const std::string &param = "");

/// OpenAI's error type for an HTTP status.
const char *error_type_for_status(int status);

/// The JSON body {"error": {"message", "type", "param", "code"}}.
std::string error_body(const HttpError &e);

}  // namespace colony
