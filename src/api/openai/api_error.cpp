#include "api/openai/api_error.h"

#include <nlohmann/json.hpp>

namespace colony {

namespace {

struct CodeMapping {
    int status;
    const char *code;
};

CodeMapping mapping_for(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument:
            return {400, ""};
        case ErrorCode::kUnsupported:
            return {400, "unsupported"};
        case ErrorCode::kUnauthorized:
            return {401, "invalid_api_key"};
        case ErrorCode::kNotFound:
            return {404, "not_found"};
        case ErrorCode::kOutOfRange:
            return {413, "context_length_exceeded"};
        case ErrorCode::kResource:
            return {429, "queue_full"};
        case ErrorCode::kUnavailable:
            return {503, "unavailable"};
        case ErrorCode::kCancelled:
            return {503, "cancelled"};
        case ErrorCode::kCorrupt:
        case ErrorCode::kProtocol:
        case ErrorCode::kInternal:
            return {500, "internal_error"};
    }
    return {500, "internal_error"};
}

}  // namespace

const char *error_type_for_status(int status) {
    switch (status) {
        case 400:
        case 404:
        case 413:
            return "invalid_request_error";
        case 401:
            return "authentication_error";
        case 429:
            return "rate_limit_error";
        case 503:
            return "unavailable_error";
        default:
            return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

HttpError http_error(int status, const std::string &message, const std::string &code,
                     const std::string &param) {
    HttpError e;
    e.status = status;
    e.type = error_type_for_status(status);
    e.code = code;
    e.param = param;
    e.message = message;
    return e;
}

HttpError http_error_from(const std::exception &ex) {
    const auto *err = dynamic_cast<const Error *>(&ex);
    if (!err)
        return http_error(500, std::string("internal error: ") + ex.what(), "internal_error");
    const CodeMapping m = mapping_for(err->code());
    HttpError e = http_error(m.status, err->what(), m.code);
    if (const auto *re = dynamic_cast<const RequestError *>(err)) {
        e.param = re->param();
        if (!re->api_code().empty())
            e.code = re->api_code();
    }
    return e;
}

std::string error_body(const HttpError &e) {
    using nlohmann::json;
    json body = {{"error",
                  {{"message", e.message},
                   {"type", e.type},
                   {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                   {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
    // invalid UTF-8 in a message (e.g. an echoed field) must not throw here
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace colony
