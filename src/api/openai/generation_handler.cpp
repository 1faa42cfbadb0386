// POST /v1/chat/completions and POST /v1/completions: validate, tokenize
// (chat template for chat), submit to the backend, then either wait for the
// whole answer or stream it as server-sent events.
#include <chrono>
#include <memory>

#include "api/openai/generation_job.h"
#include "api/openai/inference_backend.h"
#include "api/openai/job_stream.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr std::chrono::milliseconds kPollInterval{
    100};  // how often a waiting handler checks its client

/// The SSE stream of OpenAI's chat.completion.chunk / text_completion objects.
JobStreamFormat openai_sse(RequestKind kind, const ResponseIds &ids, const ApiRequest &r,
                           size_t n_choices) {
    const bool usage_field = r.include_usage;
    const bool include_usage = r.include_usage;
    const bool logprobs = r.logprobs >= 0;
    auto offsets = std::make_shared<std::vector<size_t>>(n_choices, 0);
    JobStreamFormat f;
    f.start = [kind, ids, usage_field, n_choices] {
        std::string out;
        if (kind != RequestKind::kChat)
            return out;
        const std::string role = "assistant";
        for (size_t i = 0; i < n_choices; ++i) {
            ChoiceUpdate first;
            first.index = i;
            out += sse_event(chunk_body(kind, ids, first, &role, false, 0, usage_field));
        }
        return out;
    };
    f.update = [kind, ids, usage_field, logprobs, offsets](const ChoiceUpdate &u) {
        std::string out;
        // OpenAI ends a choice with a chunk of its own: an empty delta and the finish reason
        ChoiceUpdate body = u;
        body.finished = false;
        if (!body.empty()) {
            out += sse_event(
                chunk_body(kind, ids, body, nullptr, logprobs, (*offsets)[u.index], usage_field));
        }
        (*offsets)[u.index] += u.text.size();
        if (u.finished) {
            ChoiceUpdate end;
            end.index = u.index;
            end.finished = true;
            end.finish_reason = u.finish_reason;
            out += sse_event(chunk_body(kind, ids, end, nullptr, false, 0, usage_field));
        }
        return out;
    };
    f.end = [kind, ids, include_usage](const GenerationJob &job) {
        std::string out;
        if (include_usage) {
            const Usage usage{job.prompt_tokens(), job.completion_tokens()};
            out += sse_event(usage_chunk_body(kind, ids, usage));
        }
        return out + "data: [DONE]\n\n";
    };
    f.error = [](const HttpError &e) { return sse_event(error_body(e)) + "data: [DONE]\n\n"; };
    return f;
}

}  // namespace

void handle_generation(OpenAiServer::Impl &impl, RequestKind kind, const httplib::Request &req,
                       httplib::Response &res) {
    const int64_t t_received = now_us();
    const ApiLimits limits = request_limits(impl);
    const ApiRequest r = kind == RequestKind::kChat ? parse_chat_request(req.body, limits)
                                                    : parse_completion_request(req.body, limits);
    const BackendModelInfo info = check_servable(impl, r.model);
    const std::shared_ptr<GenerationJob> job = GenerationJob::start(impl, r, t_received);
    ResponseIds ids;
    ids.id = impl.next_id(kind == RequestKind::kChat ? "chatcmpl" : "cmpl");
    // The backend's id is the one every node's log lines and the wire header
    // carry (docs/request-path.md): this line ties it to the response id.
    COLONY_LOG_DEBUG("api: %s %s is request %s: %d prompt tokens%s", req.path.c_str(),
                     ids.id.c_str(), job->backend_ids().c_str(), job->prompt_tokens(),
                     r.stream ? ", streaming" : "");
    ids.created = unix_now_s();
    ids.model = info.id;
    if (!r.stream) {
        if (!wait_job(*job, req, res, ids.id))
            return;
        if (job->error()) {
            send_error(res, *job->error());
            return;
        }
        const Usage usage{job->prompt_tokens(), job->completion_tokens()};
        const auto [draft_n, draft_n_accepted] = job->drafts();
        const Timings timings{job->ttft_ms(), job->elapsed_ms(), draft_n, draft_n_accepted};
        res.set_content(
            completion_body(kind, ids, job->results(), r.logprobs >= 0, usage, &timings),
            "application/json");
        return;
    }
    stream_job(res, job, openai_sse(kind, ids, r, job->n_choices()), ids.id);
}

}  // namespace colony
