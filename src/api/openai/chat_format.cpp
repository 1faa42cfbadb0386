#include "api/openai/chat_format.h"

#include <cctype>
#include <exception>
#include <random>
#include <regex>

#include "api/openai/api_error.h"
#include "chat.h"
#include "common.h"
#include "json-schema-to-grammar.h"
#include "runtime/tokenizer.h"
#include "util/log.h"

namespace colony {

namespace {

using nlohmann::json;

common_json to_common(const json &j) {
    return common_json::parse(j.dump());
}

/// common_sampler_init's trigger rules (common/sampling.cpp): words become
/// escaped regexes, full patterns are anchored, tokens stay tokens.
void add_triggers(const std::vector<common_grammar_trigger> &triggers, GrammarConstraint &c) {
    for (const common_grammar_trigger &t : triggers) {
        switch (t.type) {
            case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
                c.trigger_patterns.push_back(regex_escape(t.value));
                break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
                c.trigger_patterns.push_back(t.value);
                break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
                const std::string &p = t.value;
                std::string anchored = "^$";
                if (!p.empty())
                    anchored = (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : "");
                c.trigger_patterns.push_back(anchored);
                break;
            }
            case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
                c.trigger_tokens.push_back(t.token);
                break;
        }
    }
}

/// The generation prompt's tokens that a non-lazy template grammar expects
/// first (common_sampler_init: a leading space some tokenizers add before a
/// special token is skipped).
std::vector<int32_t> prefill_tokens(const Tokenizer &tok, const std::string &generation_prompt) {
    std::vector<int32_t> out;
    if (generation_prompt.empty())
        return out;
    const std::vector<int32_t> tokens = tok.tokenize(generation_prompt, false, true);
    for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string piece = tok.special_piece(tokens[i]);
        if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) &&
            !std::isspace(static_cast<unsigned char>(generation_prompt[0]))) {
            continue;
        }
        out.push_back(tokens[i]);
    }
    return out;
}

/// Tools of `in` as common/ wants them: only the named one for a named choice.
json offered_tools(const ChatInput &in) {
    if (in.tool_name.empty())
        return in.tools;
    json out = json::array();
    for (const json &t : in.tools) {
        if (t.contains("function") && t["function"].value("name", "") == in.tool_name)
            out.push_back(t);
    }
    if (out.empty()) {
        throw field_error("tool_choice",
                          "names the function '" + in.tool_name + "', which is not in tools");
    }
    return out;
}

/// The template grammar's root with its free-text prefix (an optional
/// "until-N" rule before the tool calls) removed: a "required" or named
/// tool_choice then makes every model, even one that would rather talk,
/// start its answer with the call (llama-server's grammar lets text come
/// first, which a weak model fills until max_tokens).
std::string tool_call_first(const std::string &grammar) {
    const size_t root = grammar.rfind("\nroot ::= ", std::string::npos) != std::string::npos
                            ? grammar.rfind("\nroot ::= ") + 1
                            : (grammar.rfind("root ::= ", 0) == 0 ? 0 : std::string::npos);
    if (root == std::string::npos)
        return grammar;
    const size_t end = std::min(grammar.find('\n', root), grammar.size());
    static const std::regex free_text(R"( until-[0-9]+\?)");
    const std::string line = grammar.substr(root, end - root);
    return grammar.substr(0, root) + std::regex_replace(line, free_text, "") + grammar.substr(end);
}

/// json-schema-to-grammar's number rule allows a 16-digit exponent, which
/// overflows a double ("1e6666666666666666" parses as Infinity in every JSON
/// library); a weak model fills it. Exponents are bounded to 2 digits (1e99
/// and 1e-99 fit a double; 3 digits do not all) — the only change colony makes
/// to the converter's text.
std::string bounded_exponents(std::string grammar) {
    static const std::string from = R"(([eE] [-+]? integral-part)?)";
    static const std::string to = R"(([eE] [-+]? [0-9]{1,2})?)";
    for (size_t at = grammar.find(from); at != std::string::npos; at = grammar.find(from, at))
        grammar.replace(at, from.size(), to);
    return grammar;
}

std::string new_call_id() {
    static const char *chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    thread_local std::mt19937 rng{std::random_device{}()};
    std::string id = "call_";
    for (int i = 0; i < 24; ++i)
        id += chars[rng() % 62];
    return id;
}

/// The part of `now` after `before`, when `now` extends it; "" otherwise.
std::string extension(const std::string &before, const std::string &now) {
    if (now.size() > before.size() && now.compare(0, before.size(), before) == 0)
        return now.substr(before.size());
    return {};
}

}  // namespace

ChatFormat::ChatFormat(const Tokenizer &tok, const std::string &template_override) : tok_(tok) {
    if (template_override.empty() && !tok.has_chat_template()) {
        problem_ = "the model has no chat template";
        return;
    }
    try {
        common_chat_templates_ptr t = common_chat_templates_init(tok.model(), template_override);
        templates_ = t.release();
    } catch (const std::exception &e) {
        problem_ = std::string("the chat template cannot be parsed: ") + e.what();
        COLONY_LOG_WARN("api: %s", problem_.c_str());
    }
}

ChatFormat::~ChatFormat() {
    if (templates_)
        common_chat_templates_free(templates_);
}

ChatPrompt ChatFormat::render(const ChatInput &in) const {
    if (!templates_)
        throw RequestError(ErrorCode::kUnsupported, "messages", "no_chat_template", problem_);
    common_chat_templates_inputs inputs;
    try {
        inputs.messages = common_chat_msgs_parse_oaicompat(to_common(in.messages));
    } catch (const std::exception &e) {
        throw field_error("messages", e.what());
    }
    const bool tools_on = !in.tools.empty() && in.tool_choice != "none";
    try {
        inputs.tools = common_chat_tools_parse_oaicompat(to_common(offered_tools(in)));
    } catch (const RequestError &) {
        throw;
    } catch (const std::exception &e) {
        throw field_error("tools", e.what());
    }
    inputs.tool_choice = !in.tool_name.empty()
                             ? COMMON_CHAT_TOOL_CHOICE_REQUIRED
                             : common_chat_tool_choice_parse_oaicompat(in.tool_choice);
    inputs.parallel_tool_calls = in.parallel_tool_calls;
    if (!in.json_schema.is_null()) {
        json schema = in.json_schema;
        if (schema.is_object() && schema.empty())
            schema["type"] = "object";  // an empty schema means any object (llama-server)
        inputs.json_schema = schema.dump();
    }
    inputs.grammar = in.grammar;
    inputs.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;  // llama-server's default

    common_chat_params params;
    try {
        params = common_chat_templates_apply(templates_, inputs);
    } catch (const std::exception &e) {
        const char *field = !in.json_schema.is_null() ? "response_format"
                            : tools_on                ? "tools"
                                                      : "messages";
        throw field_error(field, std::string("the chat template refused the request: ") + e.what());
    }

    COLONY_LOG_DEBUG(
        "api: chat format %s, grammar %zu bytes%s, %zu triggers, generation prompt '%s'",
        common_chat_format_name(params.format), params.grammar.size(),
        params.grammar_lazy ? " (lazy)" : "", params.grammar_triggers.size(),
        params.generation_prompt.c_str());
    ChatPrompt out;
    out.prompt = params.prompt;
    out.stops = params.additional_stops;
    out.parse_tool_calls = tools_on;
    out.constraint.grammar =
        bounded_exponents(inputs.tool_choice == COMMON_CHAT_TOOL_CHOICE_REQUIRED && tools_on
                              ? tool_call_first(params.grammar)
                              : params.grammar);
    out.constraint.lazy = params.grammar_lazy;
    if (!params.grammar.empty()) {
        add_triggers(params.grammar_triggers, out.constraint);
        if (!params.grammar_lazy)
            out.constraint.prefill_tokens = prefill_tokens(tok_, params.generation_prompt);
    }
    for (const std::string &t : params.preserved_tokens) {
        const std::vector<int32_t> ids = tok_.tokenize(t, false, true);
        if (ids.size() == 1)
            out.preserved_tokens.insert(ids[0]);
    }
    auto parser = std::make_shared<common_chat_parser_params>(params);
    parser->reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
    parser->parse_tool_calls = tools_on;
    if (!params.parser.empty())
        parser->parser.load(params.parser);
    out.parser = std::move(parser);
    return out;
}

std::string json_schema_grammar(const json &schema, const char *field) {
    json s = schema;
    if (s.is_object() && s.empty())
        s["type"] = "object";
    try {
        return bounded_exponents(json_schema_to_grammar(to_common(s)));
    } catch (const std::exception &e) {
        throw field_error(field, std::string("the JSON schema cannot be converted: ") + e.what());
    }
}

ChatOutput::ChatOutput(const ChatPrompt &prompt)
    : parser_(prompt.parser), parse_tool_calls_(prompt.parse_tool_calls) {}

ChatDelta ChatOutput::update(const std::string &text, bool final) {
    ChatDelta d;
    common_chat_msg msg;
    if (!parser_) {
        msg.content = text;
    } else {
        const auto &params = *static_cast<const common_chat_parser_params *>(parser_.get());
        try {
            msg = common_chat_parse(text, !final, params);
        } catch (const std::exception &e) {
            if (!final)
                return d;  // not parseable yet: wait for more text
            COLONY_LOG_DEBUG(
                "api: the answer does not parse as the chat format (%s); "
                "returned as content",
                e.what());
            msg = common_chat_msg{};
            msg.content = text;
        }
    }
    d.content = extension(content_, msg.content);
    if (!d.content.empty() || msg.content.size() >= content_.size())
        content_ = msg.content;
    d.reasoning = extension(reasoning_, msg.reasoning_content);
    if (!d.reasoning.empty() || msg.reasoning_content.size() >= reasoning_.size())
        reasoning_ = msg.reasoning_content;
    for (size_t i = 0; i < msg.tool_calls.size(); ++i) {
        const common_chat_tool_call &c = msg.tool_calls[i];
        if (i >= calls_.size()) {
            calls_.push_back({c.id.empty() ? new_call_id() : c.id, "", ""});
            name_sent_.push_back(false);
        }
        ToolCall &mine = calls_[i];
        ChatDelta::ToolCallDelta td;
        td.index = i;
        if (!name_sent_[i]) {
            if (c.name.empty() || (!final && c.arguments.empty() && i + 1 == msg.tool_calls.size()))
                continue;  // the name may still grow
            mine.name = c.name;
            td.id = mine.id;
            td.name = mine.name;
            name_sent_[i] = true;
        }
        td.arguments = extension(mine.arguments, c.arguments);
        if (!td.arguments.empty())
            mine.arguments = c.arguments;
        if (!td.name.empty() || !td.arguments.empty())
            d.tool_calls.push_back(std::move(td));
    }
    return d;
}

}  // namespace colony
