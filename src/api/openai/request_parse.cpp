#include "api/openai/request_parse.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "api/openai/api_error.h"

namespace colony {

namespace {

using nlohmann::json;

constexpr size_t kMaxStopSequences = 16;
constexpr size_t kMaxStopBytes = 512;

/// The field `key` of `obj`, or nullptr when absent or null.
const json *field(const json &obj, const char *key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return nullptr;
    return &*it;
}

json parse_object(const std::string &body) {
    json j;
    try {
        j = json::parse(body);
    } catch (const json::parse_error &e) {
        throw RequestError(ErrorCode::kInvalidArgument, "", "invalid_json",
                           std::string("malformed JSON in the request body: ") + e.what());
    }
    if (!j.is_object()) {
        throw RequestError(ErrorCode::kInvalidArgument, "", "invalid_json",
                           "the request body must be a JSON object");
    }
    return j;
}

bool get_bool(const json &obj, const char *key, bool def) {
    const json *v = field(obj, key);
    if (!v)
        return def;
    if (!v->is_boolean())
        throw field_error(key, "must be a boolean");
    return v->get<bool>();
}

/// A number in [lo, hi].
double get_number(const json &obj, const char *key, double def, double lo, double hi) {
    const json *v = field(obj, key);
    if (!v)
        return def;
    if (!v->is_number())
        throw field_error(key, "must be a number");
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
        throw field_error(key, "must be between " + json(lo).dump() + " and " + json(hi).dump());
    }
    return x;
}

/// An integer in [lo, hi]; integral floats (3.0) are accepted.
int64_t get_int(const json &obj, const char *key, int64_t def, int64_t lo, int64_t hi) {
    const json *v = field(obj, key);
    if (!v)
        return def;
    int64_t x = 0;
    if (v->is_number_integer()) {
        if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
            throw field_error(key, "must be at most " + std::to_string(hi));
        }
        x = v->get<int64_t>();
    } else if (v->is_number_float()) {
        const double d = v->get<double>();
        if (!std::isfinite(d) || std::floor(d) != d || d < -9.0e18 || d > 9.0e18) {
            throw field_error(key, "must be an integer");
        }
        x = static_cast<int64_t>(d);
    } else {
        throw field_error(key, "must be an integer");
    }
    if (x < lo)
        throw field_error(key, "must be at least " + std::to_string(lo));
    if (x > hi)
        throw field_error(key, "must be at most " + std::to_string(hi));
    return x;
}

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

void refuse_if(bool unsupported, const char *param, const std::string &what) {
    if (unsupported)
        throw RequestError(ErrorCode::kInvalidArgument, param, "unsupported_parameter",
                           std::string(param) + ": " + what);
}

bool non_empty(const json *v) {
    return v && !((v->is_array() || v->is_object() || v->is_string()) && v->empty());
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
    sp.penalty_last_n =
        static_cast<int32_t>(get_int(j, "repeat_last_n", sp.penalty_last_n, -1, 1 << 20));
    const int64_t seed = get_int(j, "seed", -1, std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max());
    if (seed >= 0)
        sp.seed = static_cast<uint32_t>(static_cast<uint64_t>(seed) & 0xFFFFFFFFu);

    r.stop = parse_stop(j);
    if (get_int(j, "n", 1, 1, std::numeric_limits<int32_t>::max()) != 1) {
        throw RequestError(ErrorCode::kInvalidArgument, "n", "unsupported_parameter",
                           "n: only n=1 is supported");
    }
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
        if (r != "system" && r != "user" && r != "assistant") {
            throw field_error(
                p + ".role", "must be one of system, developer, user, assistant (got '" + r + "')");
        }
        const json *content = field(m, "content");
        if (!content && r != "assistant")
            throw field_error(p + ".content", "is required");
        refuse_if(non_empty(field(m, "tool_calls")), "tool_calls", "tool calls are not supported");
        out.push_back({r, content ? content_text(*content, p + ".content") : std::string()});
    }
    return out;
}

}  // namespace

ApiRequest parse_chat_request(const std::string &body, const ApiLimits &limits) {
    const json j = parse_object(body);
    ApiRequest r;
    r.kind = RequestKind::kChat;
    r.messages = parse_messages(j);
    parse_common(j, limits, r);
    const json *lp = field(j, "logprobs");
    if (lp && !lp->is_boolean())
        throw field_error("logprobs", "must be a boolean");
    refuse_if(lp && lp->get<bool>(), "logprobs", "is not supported");
    refuse_if(field(j, "top_logprobs") != nullptr, "top_logprobs", "is not supported");
    refuse_if(non_empty(field(j, "tools")), "tools", "tool calling is not supported");
    refuse_if(non_empty(field(j, "functions")), "functions", "function calling is not supported");
    if (const json *rf = field(j, "response_format")) {
        if (!rf->is_object())
            throw field_error("response_format", "must be an object");
        const json *t = field(*rf, "type");
        refuse_if(!t || !t->is_string() || t->get<std::string>() != "text", "response_format",
                  "only {\"type\": \"text\"} is supported");
    }
    return r;
}

ApiRequest parse_completion_request(const std::string &body, const ApiLimits &limits) {
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
    refuse_if(field(j, "logprobs") != nullptr, "logprobs", "is not supported");
    refuse_if(get_bool(j, "echo", false), "echo", "is not supported");
    refuse_if(non_empty(field(j, "suffix")), "suffix", "is not supported");
    refuse_if(get_int(j, "best_of", 1, 1, 1 << 20) != 1, "best_of", "only best_of=1 is supported");
    return r;
}

}  // namespace colony
