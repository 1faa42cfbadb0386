// Response bodies and server-sent-event chunks in OpenAI's shapes (ref:
// platform.openai.com/docs/api-reference/chat/object, .../chat-streaming,
// .../completions/object). Text that is not valid UTF-8 is sent with U+FFFD
// in place of the bad bytes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "api/openai/choice.h"
#include "api/openai/inference_backend.h"
#include "api/openai/request_parse.h"

namespace colony {

/// What every object of one response shares.
struct ResponseIds {
    std::string id;       // "chatcmpl-..." or "cmpl-..."
    int64_t created = 0;  // Unix seconds
    std::string model;
};

struct Usage {
    int32_t prompt_tokens = 0;
    int32_t completion_tokens = 0;
};

/// How long a request took on the server, ms from its arrival (colony's
/// extension "timings", as llama.cpp's server adds one).
struct Timings {
    double ttft_ms = 0;            // to the first generated token (0: none)
    double total_ms = 0;           // to the whole answer
    int64_t draft_n = 0;           // speculative decoding (llama-server's names): drafts verified
    int64_t draft_n_accepted = 0;  // ... and accepted; both shown when draft_n > 0
};

/// Non-streaming body: chat.completion {choices: [{index, message: {role:
/// "assistant", content, reasoning_content?, tool_calls?}, logprobs,
/// finish_reason}], usage} or text_completion {choices: [{text, index,
/// logprobs, finish_reason}], usage}; logprobs null unless `logprobs`; with
/// timings: "timings": {ttft_ms, total_ms}.
std::string completion_body(RequestKind kind, const ResponseIds &ids,
                            const std::vector<ChoiceResult> &choices, bool logprobs,
                            const Usage &usage, const Timings *timings = nullptr);

/// One streamed chunk of choice u.index: chat.completion.chunk with delta
/// {role?, content?, reasoning_content?, tool_calls?} or text_completion with
/// text; its logprobs when `logprobs` (completions: text offsets from
/// `text_offset`); finish_reason when u.finished. with_usage_field: the chunk
/// carries "usage": null (stream_options.include_usage).
std::string chunk_body(RequestKind kind, const ResponseIds &ids, const ChoiceUpdate &u,
                       const std::string *role, bool logprobs, size_t text_offset,
                       bool with_usage_field);

/// OpenAI's logprobs objects: chat {content: [{token, logprob, bytes,
/// top_logprobs: [{token, logprob, bytes}]}], refusal: null}; completions
/// {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
nlohmann::json chat_logprobs_json(const std::vector<LogprobEntry> &entries);
nlohmann::json completion_logprobs_json(const std::vector<LogprobEntry> &entries,
                                        size_t text_offset);

/// The last chunk when include_usage is set: "choices": [] and "usage".
std::string usage_chunk_body(RequestKind kind, const ResponseIds &ids, const Usage &usage);

/// GET /v1/models: {"object": "list", "data": [model]}.
std::string models_body(const BackendModelInfo &info, bool has_chat_template);
/// GET /v1/models/{id}: {"id", "object": "model", "created", "owned_by": "colony"} and colony's
/// extensions "chat_template" (whether /v1/chat/completions works), "n_ctx_seq", "n_layer".
std::string model_body(const BackendModelInfo &info, bool has_chat_template);

/// `j` as one line of JSON text; invalid UTF-8 in strings becomes U+FFFD.
std::string json_text(const nlohmann::json &j);

/// A server-sent event carrying `data` ("data: <data>\n\n").
std::string sse_event(const std::string &data);

}  // namespace colony
