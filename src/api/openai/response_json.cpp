#include "api/openai/response_json.h"

#include <nlohmann/json.hpp>

namespace colony {

namespace {

using nlohmann::json;

std::string dump(const json &j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

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

std::string completion_body(RequestKind kind, const ResponseIds &ids, const std::string &text,
                            const std::string &finish_reason, const Usage &usage,
                            const Timings *timings) {
    json j = head(kind, ids, false);
    json choice = {{"index", 0}};
    if (kind == RequestKind::kChat) {
        choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
        choice["text"] = text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish_json(finish_reason);
    j["choices"] = json::array({choice});
    j["usage"] = usage_json(usage);
    if (timings)
        j["timings"] = {{"ttft_ms", timings->ttft_ms}, {"total_ms", timings->total_ms}};
    return dump(j);
}

std::string chunk_body(RequestKind kind, const ResponseIds &ids, const std::string *role,
                       const std::string *text, const std::string &finish_reason,
                       bool with_usage_field) {
    json j = head(kind, ids, true);
    json choice = {{"index", 0}};
    if (kind == RequestKind::kChat) {
        json delta = json::object();
        if (role)
            delta["role"] = *role;
        if (text)
            delta["content"] = *text;
        choice["delta"] = delta;
    } else {
        choice["text"] = text ? *text : std::string();
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish_json(finish_reason);
    j["choices"] = json::array({choice});
    if (with_usage_field)
        j["usage"] = nullptr;
    return dump(j);
}

std::string usage_chunk_body(RequestKind kind, const ResponseIds &ids, const Usage &usage) {
    json j = head(kind, ids, true);
    j["choices"] = json::array();
    j["usage"] = usage_json(usage);
    return dump(j);
}

std::string models_body(const BackendModelInfo &info, bool has_chat_template) {
    return dump({{"object", "list"}, {"data", json::array({model_json(info, has_chat_template)})}});
}

std::string model_body(const BackendModelInfo &info, bool has_chat_template) {
    return dump(model_json(info, has_chat_template));
}

std::string sse_event(const std::string &data) {
    return "data: " + data + "\n\n";
}

}  // namespace colony
