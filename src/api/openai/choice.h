// What one choice of a generation yields, endpoint-neutral: incremental
// updates while it streams (ChoiceUpdate) and the whole answer
// (ChoiceResult). GenerationJob (generation_job.h) makes them; the response
// formats (OpenAI, Responses, Ollama, Anthropic) read them.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/openai/api_error.h"
#include "api/openai/chat_format.h"

namespace colony {

/// One token's logprobs with text (the token's piece, as generated).
struct LogprobEntry {
    std::string text;
    float logprob = 0.0f;
    std::vector<std::pair<std::string, float>> top;  // most likely first
};

/// What changed in one choice since the last poll.
struct ChoiceUpdate {
    size_t index = 0;
    std::string text;  // completions: raw text; chat: content
    std::string reasoning;
    std::vector<ChatDelta::ToolCallDelta> tool_calls;
    std::vector<LogprobEntry> logprobs;
    bool finished = false;
    std::string finish_reason;  // "stop", "length", "tool_calls" when finished without error
    std::optional<HttpError> error;
    bool empty() const {
        return text.empty() && reasoning.empty() && tool_calls.empty() && logprobs.empty() &&
               !finished;
    }
};

/// A choice's whole answer (for non-streamed responses).
struct ChoiceResult {
    std::string text;  // completions: the text; chat: content
    std::string reasoning;
    std::vector<ToolCall> tool_calls;
    std::vector<LogprobEntry> logprobs;
    std::string finish_reason;
};

}  // namespace colony
