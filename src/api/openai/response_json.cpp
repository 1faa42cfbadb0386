#include "api/openai/response_json.h"

#include <nlohmann/json.hpp>

namespace colony {

namespace {

using nlohmann::json;

json usage_json(const Usage &u) {
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json finish_json(const std::string &reason) {
    return reason.empty() ? json(nullptr) : json(reason);
}

json head(RequestKind kind, const ResponseIds &ids, bool chunk) {
    const char *object = kind == RequestKind::kChat
                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                             : "text_completion";
    return {{"id", ids.id}, {"object", object}, {"created", ids.created}, {"model", ids.model}};
}

json model_json(const BackendModelInfo &info, bool has_chat_template) {
    return {{"id", info.id},
            {"object", "model"},
            {"created", info.created_unix},
            {"owned_by", "colony"},
            {"chat_template", has_chat_template},
            {"n_ctx_seq", info.n_ctx_seq},
            {"n_layer", info.n_layer}};
}

}  // namespace

static json bytes_json(const std::string &s) {
    json b = json::array();
    for (unsigned char c : s)
        b.push_back(static_cast<int>(c));
    return b;
}

json chat_logprobs_json(const std::vector<LogprobEntry> &entries) {
    json content = json::array();
    for (const LogprobEntry &e : entries) {
        json top = json::array();
        for (const auto &[text, lp] : e.top)
            top.push_back({{"token", text}, {"logprob", lp}, {"bytes", bytes_json(text)}});
        content.push_back({{"token", e.text},
                           {"logprob", e.logprob},
                           {"bytes", bytes_json(e.text)},
                           {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs_json(const std::vector<LogprobEntry> &entries, size_t text_offset) {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    for (const LogprobEntry &e : entries) {
        tokens.push_back(e.text);
        lps.push_back(e.logprob);
        json top = json::object();
        for (const auto &[text, lp] : e.top)
            top[text] = lp;
        tops.push_back(top);
        offsets.push_back(text_offset);
        text_offset += e.text.size();
    }
    return {{"tokens", tokens},
            {"token_logprobs", lps},
            {"top_logprobs", tops},
            {"text_offset", offsets}};
}

namespace {

json tool_calls_json(const std::vector<ToolCall> &calls) {
    json out = json::array();
    for (const ToolCall &c : calls) {
        out.push_back({{"id", c.id},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    }
    return out;
}

json tool_call_deltas_json(const std::vector<ChatDelta::ToolCallDelta> &deltas) {
    json out = json::array();
    for (const ChatDelta::ToolCallDelta &d : deltas) {
        json j = {{"index", d.index}};
        json fn = {{"arguments", d.arguments}};
        if (!d.name.empty()) {
            j["id"] = d.id;
            j["type"] = "function";
            fn["name"] = d.name;
        }
        j["function"] = fn;
        out.push_back(j);
    }
    return out;
}

}  // namespace

std::string completion_body(RequestKind kind, const ResponseIds &ids,
                            const std::vector<ChoiceResult> &choices, bool logprobs,
                            const Usage &usage, const Timings *timings) {
    json j = head(kind, ids, false);
    j["choices"] = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
        const ChoiceResult &c = choices[i];
        json choice = {{"index", i}};
        if (kind == RequestKind::kChat) {
            json msg = {{"role", "assistant"}, {"content", c.text}};
            if (!c.reasoning.empty())
                msg["reasoning_content"] = c.reasoning;
            if (!c.tool_calls.empty()) {
                msg["tool_calls"] = tool_calls_json(c.tool_calls);
                if (c.text.empty())
                    msg["content"] = nullptr;
            }
            choice["message"] = msg;
            choice["logprobs"] = logprobs ? chat_logprobs_json(c.logprobs) : json(nullptr);
        } else {
            choice["text"] = c.text;
            choice["logprobs"] = logprobs ? completion_logprobs_json(c.logprobs, 0) : json(nullptr);
        }
        choice["finish_reason"] = finish_json(c.finish_reason);
        j["choices"].push_back(choice);
    }
    j["usage"] = usage_json(usage);
    if (timings) {
        j["timings"] = {{"ttft_ms", timings->ttft_ms}, {"total_ms", timings->total_ms}};
        if (timings->draft_n > 0) {
            j["timings"]["draft_n"] = timings->draft_n;
            j["timings"]["draft_n_accepted"] = timings->draft_n_accepted;
        }
    }
    return json_text(j);
}

std::string chunk_body(RequestKind kind, const ResponseIds &ids, const ChoiceUpdate &u,
                       const std::string *role, bool logprobs, size_t text_offset,
                       bool with_usage_field) {
    json j = head(kind, ids, true);
    json choice = {{"index", u.index}};
    if (kind == RequestKind::kChat) {
        json delta = json::object();
        if (role)
            delta["role"] = *role;
        if (!u.text.empty() || (role && u.tool_calls.empty()))
            delta["content"] = u.text;
        if (!u.reasoning.empty())
            delta["reasoning_content"] = u.reasoning;
        if (!u.tool_calls.empty())
            delta["tool_calls"] = tool_call_deltas_json(u.tool_calls);
        choice["delta"] = delta;
        choice["logprobs"] =
            logprobs && !u.logprobs.empty() ? chat_logprobs_json(u.logprobs) : json(nullptr);
    } else {
        choice["text"] = u.text;
        choice["logprobs"] = logprobs && !u.logprobs.empty()
                                 ? completion_logprobs_json(u.logprobs, text_offset)
                                 : json(nullptr);
    }
    choice["finish_reason"] = finish_json(u.finished ? u.finish_reason : "");
    j["choices"] = json::array({choice});
    if (with_usage_field)
        j["usage"] = nullptr;
    return json_text(j);
}

std::string usage_chunk_body(RequestKind kind, const ResponseIds &ids, const Usage &usage) {
    json j = head(kind, ids, true);
    j["choices"] = json::array();
    j["usage"] = usage_json(usage);
    return json_text(j);
}

std::string models_body(const BackendModelInfo &info, bool has_chat_template) {
    return json_text(
        {{"object", "list"}, {"data", json::array({model_json(info, has_chat_template)})}});
}

std::string model_body(const BackendModelInfo &info, bool has_chat_template) {
    return json_text(model_json(info, has_chat_template));
}

std::string json_text(const json &j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_event(const std::string &data) {
    return "data: " + data + "\n\n";
}

}  // namespace colony
