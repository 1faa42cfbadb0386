// The OpenAI chat/completion request that a body of another API means: the
// Ollama, Responses and Anthropic endpoints translate their body into the
// OpenAI shape and parse it with parse_chat_request / parse_completion_request
// (request_parse.h), so every request is validated by one parser. Pure
// functions of the body (the fuzz target tests/fuzz/fuzz_api_request.cpp
// calls them on untrusted bytes).
#pragma once

#include <nlohmann/json.hpp>

#include "api/openai/request_parse.h"

namespace colony {

/// POST /api/chat (chat) or /api/generate (!chat) of Ollama's API. A generate
/// prompt is rendered as a user turn when the model has a chat template
/// (has_chat_template) and the body does not ask for "raw". The model name is
/// cleared (the caller matches it, with ":latest"). Errors: RequestError
/// naming the field.
ApiRequest ollama_request(const nlohmann::json &body, bool chat, const ApiLimits &limits,
                          bool has_chat_template);

/// POST /v1/responses (OpenAI Responses API, stateless: previous_response_id
/// is refused). Errors: RequestError naming the field.
ApiRequest responses_request(const nlohmann::json &body, const ApiLimits &limits);

/// POST /v1/messages (Anthropic Messages API). Errors: RequestError naming the
/// field (max_tokens is required, as Anthropic requires it).
ApiRequest anthropic_request(const nlohmann::json &body, const ApiLimits &limits);

}  // namespace colony
