// colony's one error type. Every failure that crosses a component boundary
// carries an ErrorCode (what kind of failure, stable, for callers to branch
// on) and a one-line message (for people). Each code maps to one HTTP status
// (api/openai/api_error.h) and to one next step of the caller (ErrorAction:
// retry, re-plan or fail; STYLE.md rule 4).
//
// Two carriers of the same pair: Error, thrown, caught at a few boundaries
// (the CLI's main, the HTTP handler wrapper, each stage's receive loop), and
// Status / Result<T>, returned, for code that must go on after a failure
// (the scheduler and the stages' hot path).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

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

/// What the caller does next about a failure of a given code:
///   kRetry   the same request may succeed later, unchanged (a full queue,
///            memory or KV cells that are busy now): refuse now, ask again;
///   kReplan  the pipeline is broken (a peer gone or silent, a peer that sent
///            a malformed message): fail what runs on it and re-plan;
///   kFail    the request itself cannot succeed (bad argument, unsupported,
///            corrupt input, a bug): fail it, and only it.
enum class ErrorAction { kRetry, kReplan, kFail };

/// The one action for each code: kResource -> kRetry; kUnavailable and
/// kProtocol -> kReplan; every other code -> kFail.
ErrorAction error_action(ErrorCode code);
/// "retry", "replan", "fail".
const char *error_action_name(ErrorAction action);

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string &message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

  private:
    ErrorCode code_;
};

/// Success, or an error code with its message. [[nodiscard]]: a Status that
/// is ignored is a compile warning.
class [[nodiscard]] Status {
  public:
    /// Success.
    Status() = default;
    Status(ErrorCode code, std::string message) : error_(Error(code, std::move(message))) {}
    explicit Status(const Error &e) : error_(e) {}

    bool ok() const { return !error_.has_value(); }
    /// The code; kInternal when called on success (a bug of the caller).
    ErrorCode code() const { return error_ ? error_->code() : ErrorCode::kInternal; }
    /// The message; empty on success.
    std::string message() const { return error_ ? error_->what() : std::string(); }
    /// What the caller does next (error_action of the code); kFail on success.
    ErrorAction action() const { return error_action(code()); }
    /// Throws the Error (at a boundary that turns it into an exit code or a
    /// response); does nothing on success.
    void throw_if_error() const {
        if (error_)
            throw *error_;
    }

  private:
    std::optional<Error> error_;
};

/// A value of T, or the Status of why there is none.
template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit, like std::optional
    Result(Status status) : status_(std::move(status)) {}  // NOLINT; must not be ok()

    bool ok() const { return value_.has_value(); }
    const Status &status() const { return status_; }
    /// The value; throws the Error when there is none.
    T &value() & {
        if (!value_)
            status_.throw_if_error();
        return *value_;
    }
    T &&value() && { return std::move(value()); }

  private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace colony
