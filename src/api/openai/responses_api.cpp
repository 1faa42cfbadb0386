// POST /v1/responses: OpenAI's Responses API for text in and out, function
// tools and structured output (ref: platform.openai.com/docs/api-reference/
// responses/create and .../responses-streaming). The input items become the
// chat request they mean (instructions -> system, function_call items ->
// an assistant message with tool_calls, function_call_output -> a tool
// message) and run as a GenerationJob; the answer is a response object with
// message, function_call and reasoning output items, or the stream of
// response.* events. Stateless: previous_response_id is refused (colony
// stores no responses), so a client sends the whole conversation.
#include <nlohmann/json.hpp>

#include "api/openai/generation_job.h"
#include "api/openai/job_stream.h"
#include "api/openai/request_fields.h"
#include "api/openai/request_translate.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "util/clock.h"

namespace colony {

namespace {

using nlohmann::json;

/// The text of a message item's content: a string or input_text/output_text parts.
json content_of(const json &content, const std::string &p) {
    if (content.is_string())
        return content;
    if (!content.is_array())
        throw field_error(p, "must be a string or an array of content parts");
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const json &part = content[i];
        const std::string type = part.is_object() ? part.value("type", "") : "";
        if (type != "input_text" && type != "output_text" && type != "text") {
            throw RequestError(
                ErrorCode::kInvalidArgument, p + "[" + std::to_string(i) + "]",
                "unsupported_parameter",
                "content parts of type '" + type + "' are not supported (only input_text)");
        }
        text += part.value("text", "");
    }
    return text;
}

/// Responses input items -> chat messages.
json chat_messages(const json &body) {
    json msgs = json::array();
    if (const json *ins = field(body, "instructions")) {
        if (!ins->is_string())
            throw field_error("instructions", "must be a string");
        msgs.push_back({{"role", "system"}, {"content", *ins}});
    }
    const json *input = field(body, "input");
    if (!input)
        throw field_error("input", "is required");
    if (input->is_string()) {
        msgs.push_back({{"role", "user"}, {"content", *input}});
        return msgs;
    }
    if (!input->is_array())
        throw field_error("input", "must be a string or an array of items");
    for (size_t i = 0; i < input->size(); ++i) {
        const json &it = (*input)[i];
        const std::string p = "input[" + std::to_string(i) + "]";
        if (!it.is_object())
            throw field_error(p, "must be an object");
        const std::string type = it.value("type", "message");
        if (type == "message") {
            msgs.push_back(
                {{"role", it.value("role", "user")},
                 {"content", content_of(it.value("content", json("")), p + ".content")}});
        } else if (type == "function_call") {
            const json call = openai_tool_call(it.value("call_id", ""), it.value("name", ""),
                                               it.value("arguments", json("")));
            if (!msgs.empty() && msgs.back()["role"] == "assistant" &&
                msgs.back().contains("tool_calls")) {
                msgs.back()["tool_calls"].push_back(call);
            } else {
                msgs.push_back({{"role", "assistant"},
                                {"content", nullptr},
                                {"tool_calls", json::array({call})}});
            }
        } else if (type == "function_call_output") {
            const json out = it.value("output", json(""));
            msgs.push_back({{"role", "tool"},
                            {"tool_call_id", it.value("call_id", "")},
                            {"content", out.is_string() ? out : json(out.dump())}});
        } else if (type != "reasoning") {  // a model's earlier reasoning is not sent back
            throw RequestError(ErrorCode::kInvalidArgument, p + ".type", "unsupported_parameter",
                               "input items of type '" + type + "' are not supported");
        }
    }
    return msgs;
}

}  // namespace

ApiRequest responses_request(const json &body, const ApiLimits &limits) {
    return json_checked([&] {
        if (non_empty(field(body, "previous_response_id"))) {
            throw RequestError(ErrorCode::kInvalidArgument, "previous_response_id",
                               "unsupported_parameter",
                               "previous_response_id: colony stores no responses; send the whole "
                               "conversation in input");
        }
        json o = {{"messages", chat_messages(body)}};
        for (const char *k : {"model", "temperature", "top_p", "parallel_tool_calls", "seed"}) {
            if (const json *v = field(body, k))
                o[k] = *v;
        }
        if (const json *m = field(body, "max_output_tokens"))
            o["max_tokens"] = *m;
        if (const json *tools = field(body, "tools")) {
            if (!tools->is_array())
                throw field_error("tools", "must be an array");
            o["tools"] = json::array();
            for (size_t i = 0; i < tools->size(); ++i) {
                const json &t = (*tools)[i];
                if (!t.is_object() || t.value("type", "") != "function") {
                    throw RequestError(
                        ErrorCode::kInvalidArgument, "tools[" + std::to_string(i) + "].type",
                        "unsupported_parameter", "only function tools are supported");
                }
                json fn = {{"name", t.value("name", "")}};
                for (const char *k : {"description", "parameters", "strict"})
                    if (t.contains(k) && !t[k].is_null())
                        fn[k] = t[k];
                o["tools"].push_back(openai_tool(fn));
            }
        }
        if (const json *tc = field(body, "tool_choice")) {
            if (tc->is_object() && tc->value("type", "") == "function")
                o["tool_choice"] = openai_named_choice(tc->value("name", ""));
            else
                o["tool_choice"] = *tc;
        }
        if (const json *text = field(body, "text"); text && text->is_object()) {
            if (const json *f = field(*text, "format"); f && f->is_object()) {
                const std::string type = f->value("type", "text");
                if (type == "json_schema") {
                    o["response_format"] = {{"type", "json_schema"},
                                            {"json_schema",
                                             {{"name", f->value("name", "format")},
                                              {"schema", f->value("schema", json::object())}}}};
                } else {
                    o["response_format"] = {{"type", type}};
                }
            }
        }
        return parse_chat_request(json_text(o), limits);
    });
}

namespace {

/// What every response object (and the streamed copies) carries.
struct ResponseShell {
    std::string id;
    int64_t created = 0;
    std::string model;
    json echo;  // request fields echoed back: tools, tool_choice, temperature, ...

    json object(const char *status, const json &output, const json &usage) const {
        json r = {{"id", id},         {"object", "response"}, {"created_at", created},
                  {"status", status}, {"error", nullptr},     {"incomplete_details", nullptr},
                  {"model", model},   {"output", output},     {"usage", usage}};
        for (const auto &[k, v] : echo.items())
            r[k] = v;
        return r;
    }
};

json usage_json(const GenerationJob &job) {
    return {{"input_tokens", job.prompt_tokens()},
            {"input_tokens_details", {{"cached_tokens", 0}}},
            {"output_tokens", job.completion_tokens()},
            {"output_tokens_details", {{"reasoning_tokens", 0}}},
            {"total_tokens", job.prompt_tokens() + job.completion_tokens()}};
}

json text_part(const std::string &text) {
    return {{"type", "output_text"},
            {"text", text},
            {"annotations", json::array()},
            {"logprobs", json::array()}};
}

json message_item(const std::string &id, const std::string &text, const char *status) {
    return {{"type", "message"},
            {"id", id},
            {"status", status},
            {"role", "assistant"},
            {"content", text.empty() && std::string(status) != "completed"
                            ? json::array()
                            : json::array({text_part(text)})}};
}

json call_item(const std::string &id, const ToolCall &c, const char *status) {
    return {{"type", "function_call"},  {"id", id},        {"call_id", c.id}, {"name", c.name},
            {"arguments", c.arguments}, {"status", status}};
}

/// The output items of a whole answer.
json output_items(const ChoiceResult &c, const std::string &id) {
    json out = json::array();
    if (!c.reasoning.empty()) {
        out.push_back(
            {{"type", "reasoning"},
             {"id", "rs_" + id},
             {"summary", json::array()},
             {"content", json::array({{{"type", "reasoning_text"}, {"text", c.reasoning}}})}});
    }
    if (!c.text.empty() || c.tool_calls.empty())
        out.push_back(message_item("msg_" + id, c.text, "completed"));
    for (size_t i = 0; i < c.tool_calls.size(); ++i)
        out.push_back(
            call_item("fc_" + id + "_" + std::to_string(i), c.tool_calls[i], "completed"));
    return out;
}

/// The response.* event stream: one message item for text, one
/// function_call item per tool call, in the order they start.
class ResponseEvents {
  public:
    explicit ResponseEvents(ResponseShell shell) : shell_(std::move(shell)) {}

    std::string start() {
        const json r = shell_.object("in_progress", json::array(), nullptr);
        return event("response.created", {{"response", r}}) +
               event("response.in_progress", {{"response", r}});
    }

    std::string update(const ChoiceUpdate &u) {
        std::string out;
        if (!u.text.empty()) {
            if (text_index_ < 0) {
                text_index_ = next_index_++;
                out += event("response.output_item.added",
                             {{"output_index", text_index_},
                              {"item", message_item(msg_id(), "", "in_progress")}});
                out += event("response.content_part.added", {{"item_id", msg_id()},
                                                             {"output_index", text_index_},
                                                             {"content_index", 0},
                                                             {"part", text_part("")}});
            }
            text_ += u.text;
            out += event("response.output_text.delta", {{"item_id", msg_id()},
                                                        {"output_index", text_index_},
                                                        {"content_index", 0},
                                                        {"delta", u.text},
                                                        {"logprobs", json::array()}});
        }
        for (const ChatDelta::ToolCallDelta &d : u.tool_calls) {
            if (d.index >= calls_.size()) {
                calls_.push_back({d.id, d.name, ""});
                call_index_.push_back(next_index_++);
                out += event("response.output_item.added",
                             {{"output_index", call_index_.back()},
                              {"item", call_item(call_id(d.index), calls_.back(), "in_progress")}});
            }
            calls_[d.index].arguments += d.arguments;
            if (!d.arguments.empty()) {
                out += event("response.function_call_arguments.delta",
                             {{"item_id", call_id(d.index)},
                              {"output_index", call_index_[d.index]},
                              {"delta", d.arguments}});
            }
        }
        return out;
    }

    std::string end(const GenerationJob &job) {
        std::string out;
        if (text_index_ >= 0) {
            out += event("response.output_text.done", {{"item_id", msg_id()},
                                                       {"output_index", text_index_},
                                                       {"content_index", 0},
                                                       {"text", text_},
                                                       {"logprobs", json::array()}});
            out += event("response.content_part.done", {{"item_id", msg_id()},
                                                        {"output_index", text_index_},
                                                        {"content_index", 0},
                                                        {"part", text_part(text_)}});
            out += event("response.output_item.done",
                         {{"output_index", text_index_},
                          {"item", message_item(msg_id(), text_, "completed")}});
        }
        for (size_t i = 0; i < calls_.size(); ++i) {
            out += event("response.function_call_arguments.done",
                         {{"item_id", call_id(i)},
                          {"output_index", call_index_[i]},
                          {"arguments", calls_[i].arguments}});
            out += event("response.output_item.done",
                         {{"output_index", call_index_[i]},
                          {"item", call_item(call_id(i), calls_[i], "completed")}});
        }
        const ChoiceResult &c = job.results().at(0);
        json output = json::array();
        if (text_index_ >= 0)
            output.push_back(message_item(msg_id(), text_, "completed"));
        for (size_t i = 0; i < calls_.size(); ++i)
            output.push_back(call_item(call_id(i), calls_[i], "completed"));
        const bool cut = c.finish_reason == "length";
        json r = shell_.object(cut ? "incomplete" : "completed", output, usage_json(job));
        if (cut)
            r["incomplete_details"] = {{"reason", "max_output_tokens"}};
        return out + event(cut ? "response.incomplete" : "response.completed", {{"response", r}});
    }

    std::string error(const HttpError &e) {
        json r = shell_.object("failed", json::array(), nullptr);
        r["error"] = {{"code", e.code.empty() ? "server_error" : e.code}, {"message", e.message}};
        return event("response.failed", {{"response", r}});
    }

  private:
    std::string event(const char *type, json data) {
        data["type"] = type;
        data["sequence_number"] = seq_++;
        return std::string("event: ") + type + "\ndata: " + json_text(data) + "\n\n";
    }
    std::string msg_id() const { return "msg_" + shell_.id; }
    std::string call_id(size_t i) const { return "fc_" + shell_.id + "_" + std::to_string(i); }

    ResponseShell shell_;
    int64_t seq_ = 0;
    int next_index_ = 0;
    int text_index_ = -1;
    std::string text_;
    std::vector<ToolCall> calls_;
    std::vector<int> call_index_;
};

void handle(OpenAiServer::Impl &impl, const httplib::Request &req, httplib::Response &res) {
    const int64_t t_received = now_us();
    const json body = parse_object(req.body);
    const ApiRequest r = responses_request(body, request_limits(impl));
    const BackendModelInfo info = check_servable(impl, r.model);
    const std::shared_ptr<GenerationJob> job = GenerationJob::start(impl, r, t_received);
    ResponseShell shell;
    shell.id = impl.next_id("resp");
    shell.id[4] = '_';  // OpenAI's ids read resp_...
    shell.created = unix_now_s();
    shell.model = info.id;
    shell.echo = {{"tools", body.value("tools", json::array())},
                  {"tool_choice", body.value("tool_choice", json("auto"))},
                  {"parallel_tool_calls", body.value("parallel_tool_calls", false)},
                  {"temperature", body.value("temperature", json(nullptr))},
                  {"top_p", body.value("top_p", json(nullptr))},
                  {"max_output_tokens", body.value("max_output_tokens", json(nullptr))},
                  {"instructions", body.value("instructions", json(nullptr))},
                  {"previous_response_id", nullptr},
                  {"metadata", body.value("metadata", json::object())},
                  {"store", false},
                  {"text", body.value("text", json{{"format", {{"type", "text"}}}})}};
    if (!get_bool(body, "stream", false)) {
        if (!wait_job(*job, req, res, shell.id))
            return;
        if (job->error()) {
            send_error(res, *job->error());
            return;
        }
        const ChoiceResult &c = job->results().at(0);
        const bool cut = c.finish_reason == "length";
        json out = shell.object(cut ? "incomplete" : "completed", output_items(c, shell.id),
                                usage_json(*job));
        if (cut)
            out["incomplete_details"] = {{"reason", "max_output_tokens"}};
        res.set_content(json_text(out), "application/json");
        return;
    }
    auto events = std::make_shared<ResponseEvents>(shell);
    JobStreamFormat f;
    f.start = [events] { return events->start(); };
    f.update = [events](const ChoiceUpdate &u) { return events->update(u); };
    f.end = [events](const GenerationJob &j) { return events->end(j); };
    f.error = [events](const HttpError &e) { return events->error(e); };
    stream_job(res, job, std::move(f), shell.id);
}

}  // namespace

void register_responses_routes(httplib::Server &s, OpenAiServer::Impl &impl) {
    s.Post("/v1/responses", guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               handle(impl, req, res);
           }));
}

}  // namespace colony
