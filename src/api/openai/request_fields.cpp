#include "api/openai/request_fields.h"

#include <cmath>

#include "api/openai/api_error.h"

namespace colony {

using nlohmann::json;

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
    } catch (const json::exception &e) {  // parse_error, and out_of_range for a number like 2e308
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

void refuse_if(bool unsupported, const char *param, const std::string &what) {
    if (unsupported)
        throw RequestError(ErrorCode::kInvalidArgument, param, "unsupported_parameter",
                           std::string(param) + ": " + what);
}

bool non_empty(const json *v) {
    return v && !((v->is_array() || v->is_object() || v->is_string()) && v->empty());
}

json openai_tool_call(const std::string &id, const std::string &name, const json &arguments) {
    return {
        {"id", id},
        {"type", "function"},
        {"function",
         {{"name", name},
          {"arguments", arguments.is_string() ? arguments.get<std::string>() : arguments.dump()}}}};
}

json openai_tool(const json &function) {
    return {{"type", "function"}, {"function", function}};
}

json openai_named_choice(const std::string &name) {
    return {{"type", "function"}, {"function", {{"name", name}}}};
}

}  // namespace colony
