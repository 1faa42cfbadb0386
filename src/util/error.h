// colony's one error type. Every failure that crosses a component boundary is
// a colony::Error carrying a code (what kind of failure, stable, for callers to
// branch on) and a one-line message (for people). Components throw; the CLI,
// the HTTP layer and the network loops catch at their one boundary and turn it
// into an exit code, an HTTP error or a dropped message.
#pragma once

#include <stdexcept>
#include <string>

namespace colony {

enum class ErrorCode {
    kInvalidArgument,  // bad option or request field
    kNotFound,         // missing file, tensor, key
    kCorrupt,          // malformed or truncated GGUF, bad hash
    kUnsupported,      // architecture, quant type, feature not supported
    kOutOfRange,       // context overflow, layer range outside the model
    kResource,         // allocation failed, out of memory, out of KV cache cells
    kProtocol,         // malformed, forged or oversized network message
    kUnauthorized,     // bad token, revoked key
    kUnavailable,      // peer gone, timeout, no workers
    kCancelled,        // client went away
    kInternal,         // a bug: an invariant did not hold
};

/// Short stable name of an error code ("corrupt", "unsupported", ...).
const char *error_code_name(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string &message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

}  // namespace colony
