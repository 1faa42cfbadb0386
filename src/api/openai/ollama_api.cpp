// Ollama's REST API on the same port (ref: github.com/ollama/ollama
// docs/api.md): /api/version, /api/tags, /api/show, /api/ps, /api/chat and
// /api/generate with NDJSON streaming (stream defaults to true). Requests
// are translated into the OpenAI request they mean (options.num_predict ->
// max_tokens, format "json" or a schema -> response_format, tools as they
// are, tool-call arguments as JSON text) and parsed by the same validation;
// answers come from the same GenerationJob. Errors are {"error": "..."}.
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "api/openai/generation_job.h"
#include "api/openai/job_stream.h"
#include "api/openai/request_fields.h"
#include "api/openai/request_translate.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "llama.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/version.h"

namespace colony {

namespace {

using nlohmann::json;

constexpr const char *kJson = "application/json";

std::string iso_time(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

httplib::Server::Handler ollama_guarded(
    std::function<void(const httplib::Request &, httplib::Response &)> f) {
    return guarded(std::move(f), send_ollama_error);
}

/// Ollama's "options" as OpenAI fields. Server-side settings that do not
/// change the output (num_ctx, num_gpu, ...) are accepted and not used;
/// samplers colony lacks are refused by name.
void put_options(const json &body, json &out) {
    const json *o = field(body, "options");
    if (!o)
        return;
    if (!o->is_object())
        throw field_error("options", "must be an object");
    static const std::map<std::string, const char *> mapped = {
        {"temperature", "temperature"},
        {"top_k", "top_k"},
        {"top_p", "top_p"},
        {"min_p", "min_p"},
        {"seed", "seed"},
        {"stop", "stop"},
        {"repeat_penalty", "repeat_penalty"},
        {"presence_penalty", "presence_penalty"},
        {"frequency_penalty", "frequency_penalty"},
        {"repeat_last_n", "repeat_last_n"}};
    static const std::set<std::string> settings = {
        "num_ctx",  "num_batch", "num_gpu", "main_gpu", "num_thread",
        "use_mmap", "use_mlock", "numa",    "low_vram", "num_keep"};
    for (const auto &[key, value] : o->items()) {
        if (key == "num_predict") {
            if (!value.is_number_integer())
                throw field_error("options.num_predict", "must be an integer");
            if (value.get<int64_t>() > 0)
                out["max_tokens"] = value;
        } else if (auto it = mapped.find(key); it != mapped.end()) {
            out[it->second] = value;
        } else if (!settings.count(key)) {
            throw RequestError(ErrorCode::kInvalidArgument, "options." + key,
                               "unsupported_parameter",
                               "options." + key + " is not supported by colony");
        }
    }
}

/// format: "json" -> json_object; a schema object -> json_schema.
void put_format(const json &body, json &out) {
    const json *f = field(body, "format");
    if (!f || (f->is_string() && f->get<std::string>().empty()))
        return;
    if (f->is_string() && f->get<std::string>() == "json") {
        out["response_format"] = {{"type", "json_object"}};
    } else if (f->is_object()) {
        out["response_format"] = {{"type", "json_schema"},
                                  {"json_schema", {{"name", "format"}, {"schema", *f}}}};
    } else {
        throw field_error("format", "must be \"json\" or a JSON schema object");
    }
}

/// Ollama messages -> OpenAI messages (tool-call arguments become JSON text).
json openai_messages(const json &messages) {
    if (!messages.is_array())
        throw field_error("messages", "must be an array");
    json out = json::array();
    size_t n_call = 0;
    for (size_t i = 0; i < messages.size(); ++i) {
        const json &m = messages[i];
        const std::string p = "messages[" + std::to_string(i) + "]";
        if (!m.is_object())
            throw field_error(p, "must be an object");
        if (non_empty(field(m, "images")))
            throw RequestError(ErrorCode::kInvalidArgument, p + ".images", "unsupported_parameter",
                               "images are not supported");
        json o = {{"role", m.value("role", "")}, {"content", m.value("content", json(""))}};
        if (const json *calls = field(m, "tool_calls"); calls && calls->is_array()) {
            o["tool_calls"] = json::array();
            for (const json &c : *calls) {
                const json fn = c.value("function", json::object());
                const json args = fn.value("arguments", json::object());
                o["tool_calls"].push_back(openai_tool_call("call_" + std::to_string(n_call++),
                                                           fn.value("name", ""), args));
            }
        }
        out.push_back(o);
    }
    return out;
}

}  // namespace

ApiRequest ollama_request(const json &body, bool chat, const ApiLimits &limits,
                          bool has_chat_template) {
    return json_checked([&] {
        json o = json::object();
        if (const json *m = field(body, "model"))
            o["model"] = *m;
        put_options(body, o);
        put_format(body, o);
        if (chat) {
            o["messages"] = openai_messages(body.contains("messages") ? body["messages"] : json());
            if (const json *t = field(body, "tools"))
                o["tools"] = *t;
            ApiRequest r = parse_chat_request(json_text(o), limits);
            r.model.clear();  // checked by the caller, with ":latest"
            return r;
        }
        const json *prompt = field(body, "prompt");
        if (!prompt || !prompt->is_string())
            throw field_error("prompt", "must be a string");
        const bool raw = get_bool(body, "raw", false);
        if (!raw && has_chat_template) {
            // Ollama renders a generate prompt with the model's template as a user turn
            json msgs = json::array();
            if (const json *sys = field(body, "system"))
                msgs.push_back({{"role", "system"}, {"content", *sys}});
            msgs.push_back({{"role", "user"}, {"content", *prompt}});
            o["messages"] = msgs;
            ApiRequest r = parse_chat_request(json_text(o), limits);
            r.model.clear();
            return r;
        }
        o["prompt"] = *prompt;
        if (!field(o, "max_tokens"))
            o["max_tokens"] = limits.max_tokens_limit;  // Ollama: until the model stops
        ApiRequest r = parse_completion_request(json_text(o), limits);
        r.model.clear();
        return r;
    });
}

namespace {

json tool_calls_json(const std::vector<ToolCall> &calls) {
    json out = json::array();
    for (const ToolCall &c : calls) {
        json args = json::parse(c.arguments, nullptr, false);
        if (args.is_discarded())
            args = c.arguments;
        out.push_back({{"function", {{"name", c.name}, {"arguments", args}}}});
    }
    return out;
}

/// The final object's statistics (durations in nanoseconds).
void put_stats(const GenerationJob &job, const std::string &finish, json &j) {
    const double ttft = job.ttft_ms(), total = job.elapsed_ms();
    j["done"] = true;
    j["done_reason"] = finish == "length" ? "length" : "stop";
    j["total_duration"] = static_cast<int64_t>(total * 1e6);
    j["load_duration"] = 0;
    j["prompt_eval_count"] = job.prompt_tokens();
    j["prompt_eval_duration"] = static_cast<int64_t>(ttft * 1e6);
    j["eval_count"] = job.completion_tokens();
    j["eval_duration"] = static_cast<int64_t>(std::max(0.0, total - ttft) * 1e6);
}

json message_json(const std::string &content, const std::string &thinking,
                  const std::vector<ToolCall> &calls) {
    json m = {{"role", "assistant"}, {"content", content}};
    if (!thinking.empty())
        m["thinking"] = thinking;
    if (!calls.empty())
        m["tool_calls"] = tool_calls_json(calls);
    return m;
}

void handle(OpenAiServer::Impl &impl, bool chat, const httplib::Request &req,
            httplib::Response &res) {
    const int64_t t_received = now_us();
    const json body = parse_object(req.body);
    const std::string model = body.value("model", std::string());
    const BackendModelInfo info = check_servable(impl, model);
    const ApiRequest r = ollama_request(body, chat, request_limits(impl), impl.chat.available());
    const bool stream = get_bool(body, "stream", true);
    const std::shared_ptr<GenerationJob> job = GenerationJob::start(impl, r, t_received);
    const std::string name = model.empty() ? info.id : model;
    const std::string log_id =
        std::string(chat ? "ollama chat " : "ollama generate ") + job->backend_ids();
    auto head = [name] {
        return json{{"model", name}, {"created_at", iso_time(std::chrono::system_clock::now())}};
    };
    if (!stream) {
        if (!wait_job(*job, req, res, log_id))
            return;
        if (job->error()) {
            send_ollama_error(res, *job->error());
            return;
        }
        const ChoiceResult &c = job->results().at(0);
        json j = head();
        if (chat)
            j["message"] = message_json(c.text, c.reasoning, c.tool_calls);
        else
            j["response"] = c.text;
        put_stats(*job, c.finish_reason, j);
        res.set_content(json_text(j), kJson);
        return;
    }
    JobStreamFormat f;
    f.content_type = "application/x-ndjson";
    f.update = [head, chat](const ChoiceUpdate &u) {
        if (u.text.empty() && u.reasoning.empty())
            return std::string();
        json j = head();
        if (chat)
            j["message"] = message_json(u.text, u.reasoning, {});
        else
            j["response"] = u.text;
        j["done"] = false;
        return json_text(j) + "\n";
    };
    f.end = [head, chat](const GenerationJob &job) {
        const ChoiceResult &c = job.results().at(0);
        std::string out;
        json j = head();
        if (chat && !c.tool_calls.empty()) {  // Ollama sends whole calls, not deltas
            j["message"] = message_json("", "", c.tool_calls);
            j["done"] = false;
            out += json_text(j) + "\n";
            j = head();
        }
        if (chat)
            j["message"] = message_json("", "", {});
        else
            j["response"] = "";
        put_stats(job, c.finish_reason, j);
        return out + json_text(j) + "\n";
    };
    f.error = [](const HttpError &e) { return json_text({{"error", e.message}}) + "\n"; };
    stream_job(res, job, std::move(f), log_id);
}

/// details of the served model, as /api/tags, /api/show and /api/ps give them.
json details_json(const OpenAiServer::Impl &impl, const BackendModelInfo &info) {
    char desc[128] = {0};
    llama_model_desc(impl.tok.model(), desc, sizeof desc);
    const std::string d = desc;
    const size_t sp = d.rfind(' ');
    return {{"parent_model", ""},
            {"format", "gguf"},
            {"family", info.arch},
            {"families", json::array({info.arch})},
            {"parameter_size", ""},
            {"quantization_level", sp == std::string::npos ? "" : d.substr(sp + 1)}};
}

json model_entry(const OpenAiServer::Impl &impl, const BackendModelInfo &info) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(info.path, ec);
    return {{"name", info.id + ":latest"},
            {"model", info.id + ":latest"},
            {"modified_at", iso_time(std::chrono::system_clock::from_time_t(
                                static_cast<std::time_t>(info.created_unix)))},
            {"size", ec ? 0 : size},
            {"digest", ""},
            {"details", details_json(impl, info)}};
}

}  // namespace

void send_ollama_error(httplib::Response &res, const HttpError &e) {
    res.status = e.status;
    res.set_content(json_text({{"error", e.message}}), kJson);
}

void register_ollama_routes(httplib::Server &s, OpenAiServer::Impl &impl) {
    s.Get("/api/version", ollama_guarded([](const httplib::Request &, httplib::Response &res) {
              res.set_content(json_text({{"version", kSoftwareVersion}}), kJson);
          }));
    s.Get(
        "/api/tags", ollama_guarded([&impl](const httplib::Request &, httplib::Response &res) {
            const BackendModelInfo info = impl.backend.model_info();
            res.set_content(json_text({{"models", json::array({model_entry(impl, info)})}}), kJson);
        }));
    s.Get("/api/ps", ollama_guarded([&impl](const httplib::Request &, httplib::Response &res) {
              const BackendModelInfo info = impl.backend.model_info();
              json m = model_entry(impl, info);
              m["expires_at"] = "9999-12-31T23:59:59Z";  // loaded while colony serves
              m["size_vram"] = 0;
              m["context_length"] = info.n_ctx_seq;
              res.set_content(json_text({{"models", json::array({m})}}), kJson);
          }));
    s.Post("/api/show",
           ollama_guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               const json body = parse_object(req.body);
               const BackendModelInfo info = impl.backend.model_info();
               const std::string model = body.value("model", body.value("name", std::string()));
               if (model != info.id && model != info.id + ":latest")
                   throw RequestError(ErrorCode::kNotFound, "model", "model_not_found",
                                      "model '" + model + "' not found");
               json caps = json::array({"completion"});
               if (impl.chat.available())
                   caps.push_back("tools");
               res.set_content(json_text({{"modelfile", ""},
                                          {"parameters", ""},
                                          {"template", impl.tok.chat_template()},
                                          {"details", details_json(impl, info)},
                                          {"model_info",
                                           {{"general.architecture", info.arch},
                                            {info.arch + ".block_count", info.n_layer},
                                            {info.arch + ".context_length", info.n_ctx_seq},
                                            {"general.vocab_size", info.n_vocab}}},
                                          {"capabilities", caps},
                                          {"modified_at", model_entry(impl, info)["modified_at"]}}),
                               kJson);
           }));
    s.Post("/api/chat",
           ollama_guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               handle(impl, true, req, res);
           }));
    s.Post("/api/generate",
           ollama_guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               handle(impl, false, req, res);
           }));
}

}  // namespace colony
