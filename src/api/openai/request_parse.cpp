#include "api/openai/request_parse.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "api/openai/api_error.h"
#include "api/openai/request_fields.h"
#include "net/wire.h"

namespace colony {

namespace {

using nlohmann::json;

constexpr size_t kMaxStopSequences = 16;
constexpr size_t kMaxStopBytes = 512;

std::vector<std::string> parse_stop(const json &obj) {
    const json *v = field(obj, "stop");
    std::vector<std::string> out;
    if (!v)
        return out;
    std::vector<std::string> items;
    if (v->is_string()) {
        items.push_back(v->get<std::string>());
    } else if (v->is_array()) {
        if (v->size() > kMaxStopSequences) {
            throw field_error("stop",
                              "at most " + std::to_string(kMaxStopSequences) + " stop sequences");
        }
        for (size_t i = 0; i < v->size(); ++i) {
            if (!(*v)[i].is_string())
                throw field_error("stop[" + std::to_string(i) + "]", "must be a string");
            items.push_back((*v)[i].get<std::string>());
        }
    } else {
        throw field_error("stop", "must be a string or an array of strings");
    }
    for (auto &s : items) {
        if (s.size() > kMaxStopBytes) {
            throw field_error("stop", "stop sequences are limited to " +
                                          std::to_string(kMaxStopBytes) + " bytes");
        }
        if (!s.empty())
            out.push_back(std::move(s));
    }
    return out;
}

/// Fields common to both endpoints.
void parse_common(const json &j, const ApiLimits &limits, ApiRequest &r) {
    if (const json *m = field(j, "model")) {
        if (!m->is_string())
            throw field_error("model", "must be a string");
        r.model = m->get<std::string>();
    }
    const int64_t hi = limits.max_tokens_limit;
    auto max_tokens = [&](const char *key) {
        const json *v = field(j, key);
        if (!v)
            return;
        if (v->is_number() && v->get<double>() > static_cast<double>(hi)) {
            throw field_error(key, "must be at most " + std::to_string(hi) +
                                       " (the server's --max-tokens-limit)");
        }
        r.max_tokens = static_cast<int32_t>(get_int(j, key, -1, 1, hi));
    };
    max_tokens("max_tokens");
    if (r.kind == RequestKind::kChat)
        max_tokens("max_completion_tokens");

    SamplingParams &sp = r.sampling;
    sp.temperature = static_cast<float>(get_number(j, "temperature", sp.temperature, 0.0, 2.0));
    sp.top_p = static_cast<float>(get_number(j, "top_p", sp.top_p, 0.0, 1.0));
    sp.min_p = static_cast<float>(get_number(j, "min_p", sp.min_p, 0.0, 1.0));
    sp.top_k =
        static_cast<int32_t>(get_int(j, "top_k", sp.top_k, 0, std::numeric_limits<int32_t>::max()));
    sp.presence_penalty =
        static_cast<float>(get_number(j, "presence_penalty", sp.presence_penalty, -2.0, 2.0));
    sp.frequency_penalty =
        static_cast<float>(get_number(j, "frequency_penalty", sp.frequency_penalty, -2.0, 2.0));
    if (const json *rp = field(j, "repeat_penalty")) {
        if (!rp->is_number() || !(rp->get<double>() > 0.0) || rp->get<double>() > 100.0) {
            throw field_error("repeat_penalty", "must be a number in (0, 100]");
        }
        sp.repeat_penalty = static_cast<float>(rp->get<double>());
    }
    sp.penalty_last_n = static_cast<int32_t>(
        get_int(j, "repeat_last_n", sp.penalty_last_n, -1, kWireMaxPenaltyLastN));
    const int64_t seed = get_int(j, "seed", -1, std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max());
    if (seed >= 0)
        sp.seed = static_cast<uint32_t>(static_cast<uint64_t>(seed) & 0xFFFFFFFFu);

    r.stop = parse_stop(j);
    parse_agent_fields(j, limits, r);
    r.stream = get_bool(j, "stream", false);
    if (const json *so = field(j, "stream_options")) {
        if (!so->is_object())
            throw field_error("stream_options", "must be an object");
        if (const json *iu = field(*so, "include_usage")) {
            if (!iu->is_boolean())
                throw field_error("stream_options.include_usage", "must be a boolean");
            r.include_usage = iu->get<bool>();
        }
    }
    r.ignore_eos = get_bool(j, "ignore_eos", false);
    if (const json *lb = field(j, "logit_bias")) {
        if (!lb->is_object())
            throw field_error("logit_bias", "must be an object");
        refuse_if(!lb->empty(), "logit_bias", "is not supported");
    }
}

std::string content_text(const json &content, const std::string &param) {
    if (content.is_string())
        return content.get<std::string>();
    if (!content.is_array())
        throw field_error(param, "must be a string or an array of content parts");
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const json &part = content[i];
        const std::string p = param + "[" + std::to_string(i) + "]";
        if (!part.is_object())
            throw field_error(p, "must be an object");
        const json *type = field(part, "type");
        if (!type || !type->is_string())
            throw field_error(p + ".type", "must be a string");
        refuse_if(type->get<std::string>() != "text", "messages",
                  "content parts of type '" + type->get<std::string>() +
                      "' are not supported (only 'text')");
        const json *t = field(part, "text");
        if (!t || !t->is_string())
            throw field_error(p + ".text", "must be a string");
        text += t->get<std::string>();
    }
    return text;
}

/// An assistant message's tool_calls: [{id, type: "function", function:
/// {name, arguments: JSON text}}].
void check_tool_calls(const json &m, const std::string &p) {
    const json *calls = field(m, "tool_calls");
    if (!calls)
        return;
    if (!calls->is_array())
        throw field_error(p + ".tool_calls", "must be an array");
    for (size_t k = 0; k < calls->size(); ++k) {
        const json &c = (*calls)[k];
        const std::string q = p + ".tool_calls[" + std::to_string(k) + "]";
        const json *fn = c.is_object() ? field(c, "function") : nullptr;
        if (!fn || !fn->is_object())
            throw field_error(q + ".function", "must be an object");
        const json *name = field(*fn, "name");
        if (!name || !name->is_string() || name->get<std::string>().empty())
            throw field_error(q + ".function.name", "must be a non-empty string");
        const json *args = field(*fn, "arguments");
        if (args && !args->is_string() && !args->is_object())
            throw field_error(q + ".function.arguments", "must be a JSON string");
    }
}

std::vector<ChatMessage> parse_messages(const json &j) {
    const json *msgs = field(j, "messages");
    if (!msgs)
        throw field_error("messages", "is required");
    if (!msgs->is_array())
        throw field_error("messages", "must be an array");
    if (msgs->empty())
        throw field_error("messages", "must not be empty");
    std::vector<ChatMessage> out;
    for (size_t i = 0; i < msgs->size(); ++i) {
        const json &m = (*msgs)[i];
        const std::string p = "messages[" + std::to_string(i) + "]";
        if (!m.is_object())
            throw field_error(p, "must be an object");
        const json *role = field(m, "role");
        if (!role || !role->is_string())
            throw field_error(p + ".role", "must be a string");
        std::string r = role->get<std::string>();
        if (r == "developer")
            r = "system";
        if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
            throw field_error(p + ".role",
                              "must be one of system, developer, user, assistant, "
                              "tool (got '" +
                                  r + "')");
        }
        const json *content = field(m, "content");
        if (!content && r != "assistant")
            throw field_error(p + ".content", "is required");
        check_tool_calls(m, p);
        out.push_back({r, content ? content_text(*content, p + ".content") : std::string()});
    }
    return out;
}

}  // namespace

ApiRequest parse_chat_request(const std::string &body, const ApiLimits &limits) {
    return json_checked([&] {
        const json j = parse_object(body);
        ApiRequest r;
        r.kind = RequestKind::kChat;
        r.messages = parse_messages(j);
        r.chat.messages = j.at("messages");
        parse_common(j, limits, r);
        return r;
    });
}

ApiRequest parse_completion_request(const std::string &body, const ApiLimits &limits) {
    return json_checked([&] {
        const json j = parse_object(body);
        ApiRequest r;
        r.kind = RequestKind::kCompletion;
        const json *p = field(j, "prompt");
        if (!p)
            throw field_error("prompt", "is required");
        if (p->is_string()) {
            r.prompt = p->get<std::string>();
        } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
            r.prompt = (*p)[0].get<std::string>();
        } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
            for (size_t i = 0; i < p->size(); ++i) {
                const json &t = (*p)[i];
                if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
                    t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
                    throw field_error("prompt[" + std::to_string(i) + "]",
                                      "must be a token id (a non-negative integer)");
                }
                r.prompt_tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
            }
        } else if (p->is_array()) {
            throw field_error(
                "prompt",
                "must be one prompt: a string, an array of one string, or an array of token ids");
        } else {
            throw field_error("prompt", "must be a string");
        }
        parse_common(j, limits, r);
        refuse_if(get_bool(j, "echo", false), "echo", "is not supported");
        refuse_if(non_empty(field(j, "suffix")), "suffix", "is not supported");
        refuse_if(get_int(j, "best_of", 1, 1, 1 << 20) != 1, "best_of",
                  "only best_of=1 is supported");
        return r;
    });
}

}  // namespace colony
