// The fields agents and apps send beyond plain generation: several choices,
// structured output, logprobs and (chat) tools. Shapes: OpenAI's
// chat/create and completions/create references; llama-server's grammar and
// json_schema extensions (tools/server/README.md).
#include <algorithm>
#include <nlohmann/json.hpp>

#include "api/openai/api_error.h"
#include "api/openai/request_fields.h"
#include "api/openai/request_parse.h"

namespace colony {

namespace {

using nlohmann::json;

/// tools: [{type: "function", function: {name, description?, parameters?}}].
void parse_tools(const json &j, ChatInput &c) {
    refuse_if(non_empty(field(j, "functions")), "functions",
              "the deprecated functions field is not supported; use tools");
    const json *tools = field(j, "tools");
    if (!tools)
        return;
    if (!tools->is_array())
        throw field_error("tools", "must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
        const json &t = (*tools)[i];
        const std::string p = "tools[" + std::to_string(i) + "]";
        if (!t.is_object())
            throw field_error(p, "must be an object");
        const json *type = field(t, "type");
        if (type && (!type->is_string() || type->get<std::string>() != "function"))
            throw field_error(p + ".type", "must be \"function\"");
        const json *fn = field(t, "function");
        if (!fn || !fn->is_object())
            throw field_error(p + ".function", "must be an object");
        const json *name = field(*fn, "name");
        if (!name || !name->is_string() || name->get<std::string>().empty())
            throw field_error(p + ".function.name", "must be a non-empty string");
        const json *params = field(*fn, "parameters");
        if (params && !params->is_object())
            throw field_error(p + ".function.parameters", "must be a JSON schema object");
    }
    c.tools = *tools;
}

/// tool_choice: "auto" | "none" | "required" | {type: "function", function: {name}}.
void parse_tool_choice(const json &j, ChatInput &c) {
    c.parallel_tool_calls = get_bool(j, "parallel_tool_calls", false);
    const json *tc = field(j, "tool_choice");
    if (!tc)
        return;
    if (tc->is_string()) {
        const std::string s = tc->get<std::string>();
        if (s != "auto" && s != "none" && s != "required")
            throw field_error("tool_choice", "must be auto, none, required or a named function");
        c.tool_choice = s;
    } else if (tc->is_object()) {
        const json *fn = field(*tc, "function");
        const json *name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
        if (!name || !name->is_string() || name->get<std::string>().empty())
            throw field_error("tool_choice.function.name", "must be a non-empty string");
        c.tool_choice = "required";
        c.tool_name = name->get<std::string>();
    } else {
        throw field_error("tool_choice", "must be a string or an object");
    }
    if (c.tools.empty() && c.tool_choice == "required")
        throw field_error("tool_choice", "requires tools");
}

/// response_format and llama-server's json_schema / grammar fields.
void parse_structured(const json &j, ChatInput &c) {
    if (const json *g = field(j, "grammar")) {
        if (!g->is_string())
            throw field_error("grammar", "must be a GBNF string");
        c.grammar = g->get<std::string>();
    }
    if (const json *s = field(j, "json_schema")) {
        if (!s->is_object())
            throw field_error("json_schema", "must be a JSON schema object");
        c.json_schema = *s;
    }
    if (const json *rf = field(j, "response_format")) {
        if (!rf->is_object())
            throw field_error("response_format", "must be an object");
        const json *t = field(*rf, "type");
        const std::string type = t && t->is_string() ? t->get<std::string>() : "";
        if (type == "json_object") {
            const json *schema = field(*rf, "schema");  // llama-server's extension
            c.json_schema = schema ? *schema : json::object();
        } else if (type == "json_schema") {
            const json *w = field(*rf, "json_schema");
            const json *schema = w && w->is_object() ? field(*w, "schema") : nullptr;
            if (schema && !schema->is_object())
                throw field_error("response_format.json_schema.schema", "must be an object");
            c.json_schema = schema ? *schema : json::object();
        } else if (type != "text") {
            throw field_error("response_format.type", "must be text, json_object or json_schema");
        }
    }
    if (!c.grammar.empty() && !c.json_schema.is_null())
        throw field_error("grammar", "cannot be combined with a JSON schema");
    if (!c.grammar.empty() && !c.tools.empty() && c.tool_choice != "none")
        throw field_error("grammar", "cannot be combined with tools");
}

}  // namespace

void parse_agent_fields(const json &j, const ApiLimits &limits, ApiRequest &r) {
    r.n = static_cast<int32_t>(get_int(j, "n", 1, 1, limits.max_choices));
    if (r.kind == RequestKind::kChat) {
        parse_tools(j, r.chat);
        parse_tool_choice(j, r.chat);
        const bool on = get_bool(j, "logprobs", false);
        const int64_t top = get_int(j, "top_logprobs", -1, 0, kMaxTopLogprobs);
        if (top >= 0 && !on)
            throw field_error("top_logprobs", "requires logprobs: true");
        r.logprobs = on ? static_cast<int32_t>(std::max<int64_t>(top, 0)) : -1;
    } else {
        refuse_if(non_empty(field(j, "tools")), "tools", "tools need /v1/chat/completions");
        r.logprobs = static_cast<int32_t>(get_int(j, "logprobs", -1, 0, kMaxTopLogprobs));
    }
    parse_structured(j, r.chat);
}

}  // namespace colony
