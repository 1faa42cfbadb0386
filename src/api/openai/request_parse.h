// Parsing and validation of OpenAI request bodies (ref:
// platform.openai.com/docs/api-reference/chat/create and .../completions/create).
// Every problem is a RequestError naming the field; null counts as absent.
//
// Fields read by both endpoints: model, max_tokens, temperature (0..2),
// top_p (0..1), min_p (0..1), top_k (>= 0, 0 = off), seed (< 0: random),
// presence_penalty and frequency_penalty (-2..2), stop (string or array of at
// most 16 strings), n (1..8 choices), stream, stream_options.include_usage,
// response_format (text, json_object, json_schema); and llama.cpp's
// extensions repeat_penalty (> 0), repeat_last_n (>= -1), ignore_eos, grammar
// (GBNF) and json_schema. Chat adds messages (roles system, developer, user,
// assistant with tool_calls, tool), max_completion_tokens (wins over
// max_tokens), tools, tool_choice, parallel_tool_calls, logprobs and
// top_logprobs (0..20); completions add prompt (a string, an array of one
// string, or an array of token ids) and logprobs (0..20). Options colony
// cannot honour (logit_bias, echo, suffix, best_of > 1, non-text content
// parts, functions) are refused with 400 rather than ignored; fields that do
// not change the output (user, metadata, store, ...) are ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api/openai/chat_format.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace colony {

/// Limits a request must stay within (set by the server's options).
struct ApiLimits {
    int32_t max_tokens_limit = 4096;  // max_tokens above this: 400
    int32_t max_choices = 8;          // n above this: 400
};

enum class RequestKind { kChat, kCompletion };

/// A validated request.
struct ApiRequest {
    RequestKind kind = RequestKind::kCompletion;
    std::string model;  // empty: not given
    std::vector<ChatMessage>
        messages;        // chat: roles system/user/assistant ("developer" becomes "system")
    std::string prompt;  // completions: text (when prompt_tokens is empty)
    std::vector<int32_t> prompt_tokens;  // completions: token ids given directly
    int32_t max_tokens = -1;             // -1: not given (the server's default applies)
    SamplingParams sampling;             // fields not given keep SamplingParams' defaults
    std::vector<std::string> stop;       // non-empty stop sequences
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    bool ignore_eos = false;
    ChatInput chat;  // chat: messages as sent, tools, tool_choice; both: json_schema, grammar
    int32_t n = 1;   // choices from one prompt
    int32_t logprobs = -1;  // -1: none; else logprobs with this many top alternatives
};

/// Reads n, response_format, json_schema, grammar, logprobs and (chat) tools,
/// tool_choice, parallel_tool_calls of `j` into `r` (request_agent.cpp).
void parse_agent_fields(const nlohmann::json &j, const ApiLimits &limits, ApiRequest &r);

/// Parses a POST /v1/chat/completions body. Errors: RequestError
/// (kInvalidArgument) naming the field: malformed JSON, not an object, wrong
/// types, values out of range, unsupported options.
ApiRequest parse_chat_request(const std::string &body, const ApiLimits &limits);

/// Parses a POST /v1/completions body. Errors as parse_chat_request.
ApiRequest parse_completion_request(const std::string &body, const ApiLimits &limits);

}  // namespace colony
