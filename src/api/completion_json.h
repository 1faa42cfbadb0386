// OpenAI's /v1/completions request and response shapes (non-streaming), and
// the error body; ref: platform.openai.com/docs/api-reference/completions.
// Extensions as llama.cpp's server names them: top_k, min_p, repeat_penalty,
// repeat_last_n, ignore_eos.
#pragma once

#include <cstdint>
#include <string>

#include "pipeline/generation.h"
#include "util/error.h"

namespace colony {

/// Parses a request body. Fields: prompt (string, or an array of one
/// string; required), max_tokens (>= 1, default 16), temperature (0..2),
/// top_p (0..1), top_k, min_p (0..1), seed (-1 = random), presence_penalty and
/// frequency_penalty (-2..2), repeat_penalty (> 0), repeat_last_n (>= -1),
/// stop (string or array of at most 4 strings), ignore_eos, n (only 1),
/// stream (only false). Unset sampling fields keep SamplingParams' defaults.
/// Throws Error(kInvalidArgument) naming the field for bad JSON, wrong types,
/// values out of range, or unsupported options.
CompletionParams parse_completion_request(const std::string &body);

/// The response body: {id, object: "text_completion", created, model,
/// choices: [{text, index: 0, logprobs: null, finish_reason}], usage:
/// {prompt_tokens, completion_tokens, total_tokens}}.
std::string completion_response_json(const CompletionResult &result, const std::string &model,
                                     const std::string &id, int64_t created_unix);

/// {"error": {"message", "type", "code"}} as OpenAI sends it.
std::string error_json(const std::string &message, const std::string &type, int http_status);

/// HTTP status for an error code: 400 bad request fields and context overflow,
/// 401 unauthorized, 503 unavailable (no workers, a lost worker, a stall),
/// 500 otherwise.
int http_status_for(ErrorCode code);

/// OpenAI's error type for an HTTP status ("invalid_request_error", ...).
const char *error_type_for(int http_status);

}  // namespace colony
