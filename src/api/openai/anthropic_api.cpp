// POST /v1/messages: Anthropic's Messages API (ref: docs.anthropic.com/en/
// api/messages and .../messages-streaming): text and tool_use / tool_result
// blocks, system, tools with input_schema, tool_choice auto/any/tool/none,
// stop_sequences, streaming events. The request becomes the chat request it
// means and runs as a GenerationJob, like every other endpoint. Errors are
// {"type": "error", "error": {"type", "message"}}.
#include <nlohmann/json.hpp>

#include "api/openai/generation_job.h"
#include "api/openai/job_stream.h"
#include "api/openai/request_fields.h"
#include "api/openai/request_translate.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

using nlohmann::json;

json error_json(const HttpError &e) {
    const char *type = e.status == 401   ? "authentication_error"
                       : e.status == 404 ? "not_found_error"
                       : e.status == 429 ? "rate_limit_error"
                       : e.status == 503 ? "overloaded_error"
                       : e.status >= 500 ? "api_error"
                                         : "invalid_request_error";
    return {{"type", "error"}, {"error", {{"type", type}, {"message", e.message}}}};
}

void send_anthropic_error(httplib::Response &res, const HttpError &e) {
    res.status = e.status;
    res.set_content(json_text(error_json(e)), "application/json");
}

std::string block_text(const json &content, const std::string &p) {
    if (content.is_string())
        return content.get<std::string>();
    std::string text;
    if (content.is_array()) {
        for (const json &b : content) {
            if (b.is_object() && b.value("type", "") == "text")
                text += b.value("text", "");
            else
                throw field_error(p, "only text blocks are supported here");
        }
    }
    return text;
}

/// Anthropic messages -> chat messages (tool_use -> tool_calls, tool_result -> tool).
json chat_messages(const json &body) {
    json msgs = json::array();
    if (const json *sys = field(body, "system"))
        msgs.push_back({{"role", "system"}, {"content", block_text(*sys, "system")}});
    const json *in = field(body, "messages");
    if (!in || !in->is_array())
        throw field_error("messages", "must be an array");
    for (size_t i = 0; i < in->size(); ++i) {
        const json &m = (*in)[i];
        const std::string p = "messages[" + std::to_string(i) + "]";
        if (!m.is_object())
            throw field_error(p, "must be an object");
        const std::string role = m.value("role", "");
        const json content = m.value("content", json(""));
        if (content.is_string()) {
            msgs.push_back({{"role", role}, {"content", content}});
            continue;
        }
        if (!content.is_array())
            throw field_error(p + ".content", "must be a string or an array of blocks");
        std::string text;
        json calls = json::array();
        for (size_t k = 0; k < content.size(); ++k) {
            const json &b = content[k];
            const std::string type = b.is_object() ? b.value("type", "") : "";
            if (type == "text") {
                text += b.value("text", "");
            } else if (type == "tool_use") {
                calls.push_back(openai_tool_call(b.value("id", ""), b.value("name", ""),
                                                 b.value("input", json::object())));
            } else if (type == "tool_result") {
                msgs.push_back(
                    {{"role", "tool"},
                     {"tool_call_id", b.value("tool_use_id", "")},
                     {"content", block_text(b.value("content", json("")),
                                            p + ".content[" + std::to_string(k) + "]")}});
            } else {
                throw RequestError(ErrorCode::kInvalidArgument,
                                   p + ".content[" + std::to_string(k) + "].type",
                                   "unsupported_parameter",
                                   "content blocks of type '" + type + "' are not supported");
            }
        }
        if (!text.empty() || !calls.empty()) {
            json o = {{"role", role}, {"content", text}};
            if (!calls.empty())
                o["tool_calls"] = calls;
            msgs.push_back(o);
        }
    }
    return msgs;
}

}  // namespace

ApiRequest anthropic_request(const json &body, const ApiLimits &limits) {
    return json_checked([&] {
        if (!field(body, "max_tokens"))
            throw field_error("max_tokens", "is required");
        json o = {{"messages", chat_messages(body)}};
        for (const char *k : {"model", "max_tokens", "temperature", "top_p", "top_k"})
            if (const json *v = field(body, k))
                o[k] = *v;
        if (const json *s = field(body, "stop_sequences"))
            o["stop"] = *s;
        if (const json *th = field(body, "thinking");
            th && th->is_object() && th->value("type", "") == "enabled") {
            throw RequestError(ErrorCode::kInvalidArgument, "thinking", "unsupported_parameter",
                               "extended thinking budgets are not supported");
        }
        if (const json *tools = field(body, "tools")) {
            if (!tools->is_array())
                throw field_error("tools", "must be an array");
            o["tools"] = json::array();
            for (const json &t : *tools) {
                json fn = {{"name", t.value("name", "")},
                           {"parameters", t.value("input_schema", json::object())}};
                if (t.contains("description"))
                    fn["description"] = t["description"];
                o["tools"].push_back(openai_tool(fn));
            }
        }
        if (const json *tc = field(body, "tool_choice"); tc && tc->is_object()) {
            const std::string type = tc->value("type", "auto");
            if (type == "any")
                o["tool_choice"] = "required";
            else if (type == "tool")
                o["tool_choice"] = openai_named_choice(tc->value("name", ""));
            else
                o["tool_choice"] = type;  // auto, none
            o["parallel_tool_calls"] = !tc->value("disable_parallel_tool_use", false);
        }
        return parse_chat_request(json_text(o), limits);
    });
}

namespace {

const char *stop_reason(const ChoiceResult &c) {
    if (!c.tool_calls.empty())
        return "tool_use";
    return c.finish_reason == "length" ? "max_tokens" : "end_turn";
}

json tool_use(const ToolCall &c) {
    json input = json::parse(c.arguments, nullptr, false);
    if (!input.is_object())
        input = json::object();
    return {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", input}};
}

/// The streamed events: one text block, then one tool_use block per call.
class MessageEvents {
  public:
    MessageEvents(std::string id, std::string model, int32_t n_prompt)
        : id_(std::move(id)), model_(std::move(model)), n_prompt_(n_prompt) {}

    std::string start() {
        return event("message_start",
                     {{"message",
                       {{"id", id_},
                        {"type", "message"},
                        {"role", "assistant"},
                        {"model", model_},
                        {"content", json::array()},
                        {"stop_reason", nullptr},
                        {"stop_sequence", nullptr},
                        {"usage", {{"input_tokens", n_prompt_}, {"output_tokens", 0}}}}}});
    }

    std::string update(const ChoiceUpdate &u) {
        std::string out;
        if (!u.text.empty()) {
            if (!text_open_) {
                text_open_ = true;
                text_index_ = next_++;
                out += event(
                    "content_block_start",
                    {{"index", text_index_}, {"content_block", {{"type", "text"}, {"text", ""}}}});
            }
            out += event(
                "content_block_delta",
                {{"index", text_index_}, {"delta", {{"type", "text_delta"}, {"text", u.text}}}});
        }
        for (const ChatDelta::ToolCallDelta &d : u.tool_calls) {
            if (!d.name.empty()) {
                out += close_open();
                open_call_ = next_++;
                out += event("content_block_start", {{"index", open_call_},
                                                     {"content_block",
                                                      {{"type", "tool_use"},
                                                       {"id", d.id},
                                                       {"name", d.name},
                                                       {"input", json::object()}}}});
            }
            if (!d.arguments.empty() && open_call_ >= 0) {
                out += event(
                    "content_block_delta",
                    {{"index", open_call_},
                     {"delta", {{"type", "input_json_delta"}, {"partial_json", d.arguments}}}});
            }
        }
        return out;
    }

    std::string end(const GenerationJob &job) {
        std::string out = close_open();
        const ChoiceResult &c = job.results().at(0);
        out += event("message_delta",
                     {{"delta", {{"stop_reason", stop_reason(c)}, {"stop_sequence", nullptr}}},
                      {"usage", {{"output_tokens", job.completion_tokens()}}}});
        return out + event("message_stop", json::object());
    }

    std::string error(const HttpError &e) { return event("error", error_json(e)); }

  private:
    std::string close_open() {
        std::string out;
        if (text_open_) {
            out += event("content_block_stop", {{"index", text_index_}});
            text_open_ = false;
        }
        if (open_call_ >= 0) {
            out += event("content_block_stop", {{"index", open_call_}});
            open_call_ = -1;
        }
        return out;
    }
    static std::string event(const char *type, json data) {
        data["type"] = type;
        return std::string("event: ") + type + "\ndata: " + json_text(data) + "\n\n";
    }

    std::string id_, model_;
    int32_t n_prompt_;
    int next_ = 0;
    bool text_open_ = false;
    int text_index_ = -1;
    int open_call_ = -1;
};

void handle(OpenAiServer::Impl &impl, const httplib::Request &req, httplib::Response &res) {
    const int64_t t_received = now_us();
    const json body = parse_object(req.body);
    const ApiRequest r = anthropic_request(body, request_limits(impl));
    const BackendModelInfo info = check_servable(impl, r.model);
    const std::shared_ptr<GenerationJob> job = GenerationJob::start(impl, r, t_received);
    std::string id = impl.next_id("msg");
    id[3] = '_';
    const std::string model = r.model.empty() ? info.id : r.model;
    if (!get_bool(body, "stream", false)) {
        if (!wait_job(*job, req, res, id))
            return;
        if (job->error()) {
            send_anthropic_error(res, *job->error());
            return;
        }
        const ChoiceResult &c = job->results().at(0);
        json content = json::array();
        if (!c.text.empty())
            content.push_back({{"type", "text"}, {"text", c.text}});
        for (const ToolCall &call : c.tool_calls)
            content.push_back(tool_use(call));
        res.set_content(json_text({{"id", id},
                                   {"type", "message"},
                                   {"role", "assistant"},
                                   {"model", model},
                                   {"content", content},
                                   {"stop_reason", stop_reason(c)},
                                   {"stop_sequence", nullptr},
                                   {"usage",
                                    {{"input_tokens", job->prompt_tokens()},
                                     {"output_tokens", job->completion_tokens()}}}}),
                        "application/json");
        return;
    }
    auto events = std::make_shared<MessageEvents>(id, model, job->prompt_tokens());
    JobStreamFormat f;
    f.start = [events] { return events->start(); };
    f.update = [events](const ChoiceUpdate &u) { return events->update(u); };
    f.end = [events](const GenerationJob &j) { return events->end(j); };
    f.error = [events](const HttpError &e) { return events->error(e); };
    stream_job(res, job, std::move(f), id);
}

}  // namespace

void register_anthropic_routes(httplib::Server &s, OpenAiServer::Impl &impl) {
    s.Post("/v1/messages", guarded([&impl](const httplib::Request &req,
                                           httplib::Response &res) { handle(impl, req, res); },
                                   send_anthropic_error));
}

}  // namespace colony
