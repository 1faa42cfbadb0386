#include "util/error.h"

namespace colony {

const char *error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument: return "invalid_argument";
        case ErrorCode::kNotFound: return "not_found";
        case ErrorCode::kCorrupt: return "corrupt";
        case ErrorCode::kUnsupported: return "unsupported";
        case ErrorCode::kOutOfRange: return "out_of_range";
        case ErrorCode::kResource: return "resource";
        case ErrorCode::kProtocol: return "protocol";
        case ErrorCode::kUnauthorized: return "unauthorized";
        case ErrorCode::kUnavailable: return "unavailable";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kInternal: return "internal";
    }
    return "unknown";
}

}  // namespace colony
