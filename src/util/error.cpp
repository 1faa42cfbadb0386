#include "util/error.h"

namespace colony {

const char *error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument:
            return "invalid_argument";
        case ErrorCode::kNotFound:
            return "not_found";
        case ErrorCode::kCorrupt:
            return "corrupt";
        case ErrorCode::kUnsupported:
            return "unsupported";
        case ErrorCode::kOutOfRange:
            return "out_of_range";
        case ErrorCode::kResource:
            return "resource";
        case ErrorCode::kProtocol:
            return "protocol";
        case ErrorCode::kUnauthorized:
            return "unauthorized";
        case ErrorCode::kUnavailable:
            return "unavailable";
        case ErrorCode::kCancelled:
            return "cancelled";
        case ErrorCode::kInternal:
            return "internal";
    }
    return "unknown";
}

ErrorAction error_action(ErrorCode code) {
    switch (code) {
        case ErrorCode::kResource:
            return ErrorAction::kRetry;
        case ErrorCode::kUnavailable:
        case ErrorCode::kProtocol:
            return ErrorAction::kReplan;
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kNotFound:
        case ErrorCode::kCorrupt:
        case ErrorCode::kUnsupported:
        case ErrorCode::kOutOfRange:
        case ErrorCode::kUnauthorized:
        case ErrorCode::kCancelled:
        case ErrorCode::kInternal:
            return ErrorAction::kFail;
    }
    return ErrorAction::kFail;
}

const char *error_action_name(ErrorAction action) {
    switch (action) {
        case ErrorAction::kRetry:
            return "retry";
        case ErrorAction::kReplan:
            return "replan";
        case ErrorAction::kFail:
            return "fail";
    }
    return "fail";
}

}  // namespace colony
