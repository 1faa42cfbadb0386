#include "api/completion_json.h"

#include <nlohmann/json.hpp>

namespace colony {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string &msg) {
    throw Error(ErrorCode::kInvalidArgument, msg);
}

double number(const json &j, const char *field, double lo, double hi) {
    const json &v = j.at(field);
    if (!v.is_number())
        bad(std::string("'") + field + "' must be a number");
    const double d = v.get<double>();
    if (!(d >= lo && d <= hi)) {
        bad(std::string("'") + field + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() +
            "], got " + v.dump());
    }
    return d;
}

int64_t integer(const json &j, const char *field, int64_t lo, int64_t hi) {
    const json &v = j.at(field);
    if (!v.is_number_integer())
        bad(std::string("'") + field + "' must be an integer");
    const int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) {
        bad(std::string("'") + field + "' must be in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "], got " + std::to_string(i));
    }
    return i;
}

bool present(const json &j, const char *field) {
    return j.contains(field) && !j.at(field).is_null();
}

}  // namespace

CompletionParams parse_completion_request(const std::string &body) {
    const json j = json::parse(body, nullptr, false);
    if (j.is_discarded())
        bad("the request body is not valid JSON");
    if (!j.is_object())
        bad("the request body must be a JSON object");
    CompletionParams p;
    if (!present(j, "prompt"))
        bad("'prompt' is required");
    const json &prompt = j.at("prompt");
    if (prompt.is_string()) {
        p.prompt = prompt.get<std::string>();
    } else if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
        p.prompt = prompt[0].get<std::string>();
    } else {
        bad("'prompt' must be a string (or an array of one string)");
    }
    if (p.prompt.empty())
        bad("'prompt' is empty");
    if (present(j, "stream")) {
        if (!j.at("stream").is_boolean())
            bad("'stream' must be a boolean");
        if (j.at("stream").get<bool>())
            bad("'stream': true is not supported yet");
    }
    if (present(j, "n") && integer(j, "n", 1, 1) != 1)
        bad("'n' must be 1");
    if (present(j, "max_tokens"))
        p.max_tokens = static_cast<int32_t>(integer(j, "max_tokens", 1, 1 << 24));
    SamplingParams &s = p.sampling;
    if (present(j, "temperature"))
        s.temperature = static_cast<float>(number(j, "temperature", 0, 2));
    if (present(j, "top_p"))
        s.top_p = static_cast<float>(number(j, "top_p", 0, 1));
    if (present(j, "top_k"))
        s.top_k = static_cast<int32_t>(integer(j, "top_k", -1, 1 << 24));
    if (present(j, "min_p"))
        s.min_p = static_cast<float>(number(j, "min_p", 0, 1));
    if (present(j, "seed")) {
        const int64_t seed = integer(j, "seed", -1, 0xFFFFFFFFll);
        s.seed = seed < 0 ? 0xFFFFFFFFu : static_cast<uint32_t>(seed);
    }
    if (present(j, "presence_penalty")) {
        s.presence_penalty = static_cast<float>(number(j, "presence_penalty", -2, 2));
    }
    if (present(j, "frequency_penalty")) {
        s.frequency_penalty = static_cast<float>(number(j, "frequency_penalty", -2, 2));
    }
    if (present(j, "repeat_penalty")) {
        s.repeat_penalty = static_cast<float>(number(j, "repeat_penalty", 1e-6, 100));
    }
    if (present(j, "repeat_last_n")) {
        s.penalty_last_n = static_cast<int32_t>(integer(j, "repeat_last_n", -1, 1 << 24));
    }
    if (present(j, "stop")) {
        const json &stop = j.at("stop");
        if (stop.is_string()) {
            p.stop.push_back(stop.get<std::string>());
        } else if (stop.is_array() && stop.size() <= 4) {
            for (const json &s1 : stop) {
                if (!s1.is_string())
                    bad("'stop' must hold strings");
                p.stop.push_back(s1.get<std::string>());
            }
        } else {
            bad("'stop' must be a string or an array of at most 4 strings");
        }
    }
    if (present(j, "ignore_eos")) {
        if (!j.at("ignore_eos").is_boolean())
            bad("'ignore_eos' must be a boolean");
        p.ignore_eos = j.at("ignore_eos").get<bool>();
    }
    return p;
}

std::string completion_response_json(const CompletionResult &r, const std::string &model,
                                     const std::string &id, int64_t created_unix) {
    json choice = {
        {"text", r.text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", r.finish_reason}};
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created_unix},
              {"model", model},
              {"choices", json::array({choice})},
              {"usage",
               {{"prompt_tokens", r.prompt_tokens},
                {"completion_tokens", r.completion_tokens},
                {"total_tokens", r.prompt_tokens + r.completion_tokens}}},
              {"timings", {{"ttft_ms", r.ttft_ms}, {"total_ms", r.total_ms}}}};
    return j.dump();
}

std::string error_json(const std::string &message, const std::string &type, int http_status) {
    return json{{"error", {{"message", message}, {"type", type}, {"code", http_status}}}}.dump();
}

int http_status_for(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kOutOfRange:
            return 400;
        case ErrorCode::kUnauthorized:
            return 401;
        case ErrorCode::kUnavailable:
        case ErrorCode::kCancelled:
            return 503;
        default:
            return 500;
    }
}

const char *error_type_for(int http_status) {
    switch (http_status) {
        case 400:
            return "invalid_request_error";
        case 401:
            return "authentication_error";
        case 503:
            return "unavailable_error";
        default:
            return "server_error";
    }
}

}  // namespace colony
