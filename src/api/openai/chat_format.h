// Chat templates, tool calls and structured output through the pinned tree's
// common/ chat layer (common/chat.h: Jinja templates with per-model tool-call
// formats and parsers; common/json-schema-to-grammar.h), as llama-server
// uses it with --jinja (tools/server/server-common.cpp,
// oaicompat_chat_params_parse). The API layer renders the prompt here, the
// grammar it returns constrains sampling on the last stage (SequenceOptions),
// and ChatOutput parses the generated text back into content, reasoning and
// tool calls, also incrementally for streaming.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runtime/sampler.h"

struct common_chat_templates;

namespace colony {

class Tokenizer;

/// What a chat request asks for, in OpenAI's terms (already validated for
/// types by request_parse).
struct ChatInput {
    nlohmann::json messages = nlohmann::json::array();  // OpenAI messages
    nlohmann::json tools = nlohmann::json::array();     // OpenAI tools ([] = none)
    std::string tool_choice = "auto";                   // "auto", "none", "required"
    std::string tool_name;  // a named tool_choice: only this tool, required
    bool parallel_tool_calls = false;
    nlohmann::json json_schema;  // null: none; response_format / json_schema
    std::string grammar;         // user GBNF (llama-server's "grammar"); "" = none
};

/// A rendered chat prompt and how to constrain and parse its answer.
struct ChatPrompt {
    std::string prompt;                  // the template's text (special tokens as text)
    GrammarConstraint constraint;        // empty grammar: unconstrained
    std::vector<std::string> stops;      // the format's extra stop strings
    std::set<int32_t> preserved_tokens;  // tokens whose text the parser needs
    std::shared_ptr<const void> parser;  // opaque: common_chat_parser_params
    bool parse_tool_calls = false;       // tools were offered (and not "none")
};

/// One tool call of an answer.
struct ToolCall {
    std::string id;  // "call_..." (generated when the format has none)
    std::string name;
    std::string arguments;  // JSON text
};

/// An increment of the parsed answer (streaming).
struct ChatDelta {
    std::string content;
    std::string reasoning;
    struct ToolCallDelta {
        size_t index = 0;
        std::string id;    // non-empty in a call's first delta
        std::string name;  // non-empty in a call's first delta
        std::string arguments;
    };
    std::vector<ToolCallDelta> tool_calls;
    bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty(); }
};

/// The model's chat templates. Thread-safe after construction.
class ChatFormat {
  public:
    /// From the model's tokenizer.chat_template, or `template_override`
    /// (Jinja text, --chat-template-file) when non-empty. Never throws:
    /// available() is false when there is no template or it cannot be parsed.
    ChatFormat(const Tokenizer &tok, const std::string &template_override);
    ~ChatFormat();
    ChatFormat(const ChatFormat &) = delete;
    ChatFormat &operator=(const ChatFormat &) = delete;

    bool available() const { return templates_ != nullptr; }
    /// Why not available() ("" when it is).
    const std::string &problem() const { return problem_; }

    /// Renders `in`. Errors: RequestError naming the field (messages, tools,
    /// tool_choice, response_format) for what the template or the schema
    /// converter refuses.
    ChatPrompt render(const ChatInput &in) const;

  private:
    const Tokenizer &tok_;
    common_chat_templates *templates_ = nullptr;
    std::string problem_;
};

/// GBNF for a JSON schema (common/json-schema-to-grammar.h), for requests
/// without a chat template (completions). Errors: RequestError on `field`.
std::string json_schema_grammar(const nlohmann::json &schema, const char *field);

/// Parses the generated text of one answer as the template's format says.
class ChatOutput {
  public:
    explicit ChatOutput(const ChatPrompt &prompt);

    /// Parses `text` (everything generated so far; `final`: nothing more
    /// comes) and returns what changed since the last call. A text the
    /// format cannot parse yet yields no delta until it can; at the end it
    /// becomes content.
    ChatDelta update(const std::string &text, bool final);

    const std::string &content() const { return content_; }
    const std::string &reasoning() const { return reasoning_; }
    const std::vector<ToolCall> &tool_calls() const { return calls_; }

  private:
    std::shared_ptr<const void> parser_;
    bool parse_tool_calls_ = false;
    std::string content_;
    std::string reasoning_;
    std::vector<ToolCall> calls_;
    std::vector<bool> name_sent_;
    std::vector<std::string> ids_;
};

}  // namespace colony
