// Reading fields of a JSON request body with errors that name the field
// (RequestError, api_error.h), shared by every endpoint's parser. null counts
// as absent.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include <string>
#include "api/openai/api_error.h"

namespace colony {

/// The field `key` of `obj`, or nullptr when absent or null.
const nlohmann::json *field(const nlohmann::json &obj, const char *key);
/// The body as a JSON object. Errors: "invalid_json".
nlohmann::json parse_object(const std::string &body);

/// Runs a request parser: a field of an unexpected JSON type that a reader
/// met with nlohmann's typed accessors (value(), get<>(), at()) becomes a
/// RequestError (400 "invalid_request_error") instead of escaping as
/// nlohmann::json::exception (which the server would answer with a 500).
template <typename Fn>
auto json_checked(Fn &&fn) {
    try {
        return fn();
    } catch (const nlohmann::json::exception &e) {
        throw RequestError(
            ErrorCode::kInvalidArgument, "", "invalid_request",
            std::string("a field of the request body has the wrong JSON type: ") + e.what());
    }
}
bool get_bool(const nlohmann::json &obj, const char *key, bool def);
/// A number in [lo, hi].
double get_number(const nlohmann::json &obj, const char *key, double def, double lo, double hi);
/// An integer in [lo, hi]; integral floats (3.0) are accepted.
int64_t get_int(const nlohmann::json &obj, const char *key, int64_t def, int64_t lo, int64_t hi);
/// Throws "unsupported_parameter" naming `param` when `unsupported`.
void refuse_if(bool unsupported, const char *param, const std::string &what);
/// Present and not an empty array, object or string.
bool non_empty(const nlohmann::json *v);

/// OpenAI's pieces of a request, for endpoints that translate into one
/// (Ollama, Responses, Anthropic): an assistant's tool call {id, type:
/// "function", function: {name, arguments}} (`arguments` as JSON text, an
/// object is dumped), a function tool and a named tool_choice.
nlohmann::json openai_tool_call(const std::string &id, const std::string &name,
                                const nlohmann::json &arguments);
nlohmann::json openai_tool(const nlohmann::json &function);
nlohmann::json openai_named_choice(const std::string &name);

}  // namespace colony
