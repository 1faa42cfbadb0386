// POST /v1/chat/completions and POST /v1/completions: validate, tokenize
// (chat template for chat), submit to the backend, then either wait for the
// whole answer or stream it as server-sent events.
#include <chrono>
#include <memory>

#include "api/openai/generation_job.h"
#include "api/openai/inference_backend.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr std::chrono::milliseconds kPollInterval{
    100};  // how often a waiting handler checks its client

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Waits for every choice; cancels if the client disconnects meanwhile.
void respond_whole(GenerationJob &job, RequestKind kind, const ResponseIds &ids, bool logprobs,
                   const httplib::Request &req, httplib::Response &res) {
    const bool complete = job.wait_all([&req] {
        return req.is_connection_closed && req.is_connection_closed();
    });
    if (!complete) {
        COLONY_LOG_DEBUG("api: client of %s went away; cancelling", ids.id.c_str());
        res.status = 499;  // nginx's "client closed request"; never reaches anyone
        return;
    }
    if (job.error()) {
        send_error(res, *job.error());
        return;
    }
    const Usage usage{job.prompt_tokens(), job.completion_tokens()};
    const Timings timings{job.ttft_ms(), job.elapsed_ms()};
    res.set_content(completion_body(kind, ids, job.results(), logprobs, usage, &timings),
                    "application/json");
}

/// State of one SSE response, shared by the content provider and its releaser.
struct SseState {
    std::shared_ptr<GenerationJob> job;
    RequestKind kind = RequestKind::kChat;
    ResponseIds ids;
    bool include_usage = false;
    bool logprobs = false;
    bool started = false;
    bool finished = false;
    std::vector<size_t> text_offset;  // completions: bytes sent per choice
};

bool write(httplib::DataSink &sink, const std::string &event) {
    return sink.write(event.data(), event.size());
}

/// One call of the chunked content provider: the first events (chat: the
/// assistant role of each choice), then whatever arrived within
/// kPollInterval, then the end (usage, [DONE]). false: the client is gone.
bool provide_sse(SseState &st, httplib::DataSink &sink) {
    const bool usage_field = st.include_usage;
    GenerationJob &job = *st.job;
    if (!st.started) {
        st.started = true;
        st.text_offset.assign(job.n_choices(), 0);
        if (st.kind == RequestKind::kChat) {
            const std::string role = "assistant";
            for (size_t i = 0; i < job.n_choices(); ++i) {
                ChoiceUpdate first;
                first.index = i;
                if (!write(sink, sse_event(chunk_body(st.kind, st.ids, first, &role, false, 0,
                                                      usage_field))))
                    return false;
            }
        }
    }
    for (const ChoiceUpdate &u : job.next(kPollInterval)) {
        if (u.error) {
            st.finished = true;
            job.abandon();
            if (!write(sink, sse_event(error_body(*u.error))))
                return false;
            break;
        }
        // OpenAI ends a choice with a chunk of its own: an empty delta and the finish reason
        ChoiceUpdate body = u;
        body.finished = false;
        if (!body.empty() &&
            !write(sink, sse_event(chunk_body(st.kind, st.ids, body, nullptr, st.logprobs,
                                              st.text_offset[u.index], usage_field))))
            return false;
        st.text_offset[u.index] += u.text.size();
        if (u.finished) {
            ChoiceUpdate end;
            end.index = u.index;
            end.finished = true;
            end.finish_reason = u.finish_reason;
            if (!write(sink, sse_event(chunk_body(st.kind, st.ids, end, nullptr, false, 0,
                                                  usage_field))))
                return false;
        }
    }
    if (!st.finished && !job.finished())
        return true;
    if (!st.finished && st.include_usage) {
        const Usage usage{job.prompt_tokens(), job.completion_tokens()};
        if (!write(sink, sse_event(usage_chunk_body(st.kind, st.ids, usage))))
            return false;
    }
    st.finished = true;
    if (!write(sink, "data: [DONE]\n\n"))
        return false;
    sink.done();
    return true;
}

}  // namespace

void handle_generation(OpenAiServer::Impl &impl, RequestKind kind, const httplib::Request &req,
                       httplib::Response &res) {
    const int64_t t_received = now_us();
    ApiLimits limits;
    limits.max_tokens_limit = impl.opts.max_tokens_limit;
    const ApiRequest r = kind == RequestKind::kChat ? parse_chat_request(req.body, limits)
                                                    : parse_completion_request(req.body, limits);
    const BackendModelInfo info = impl.backend.model_info();
    if (!r.model.empty() && r.model != info.id) {
        throw RequestError(
            ErrorCode::kNotFound, "model", "model_not_found",
            "the model '" + r.model + "' does not exist; this server serves '" + info.id + "'");
    }
    const BackendHealth health = impl.backend.health();
    if (!health.ready) {
        throw Error(ErrorCode::kUnavailable, "not ready (" + health.status + "): " + health.reason);
    }

    const std::shared_ptr<GenerationJob> job = GenerationJob::start(impl, r, t_received);
    ResponseIds ids;
    ids.id = impl.next_id(kind == RequestKind::kChat ? "chatcmpl" : "cmpl");
    // The backend's id is the one every node's log lines and the wire header
    // carry (docs/request-path.md): this line ties it to the response id.
    COLONY_LOG_DEBUG("api: %s %s is request %s: %d prompt tokens%s", req.path.c_str(),
                     ids.id.c_str(), job->backend_ids().c_str(), job->prompt_tokens(),
                     r.stream ? ", streaming" : "");
    ids.created = unix_now();
    ids.model = info.id;
    if (!r.stream) {
        respond_whole(*job, kind, ids, r.logprobs >= 0, req, res);
        return;
    }
    auto st = std::make_shared<SseState>();
    st->job = job;
    st->kind = kind;
    st->ids = ids;
    st->include_usage = r.include_usage;
    st->logprobs = r.logprobs >= 0;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink &sink) { return provide_sse(*st, sink); },
        [st](bool) {
            if (!st->finished) {
                COLONY_LOG_DEBUG("api: client of %s went away; cancelling", st->ids.id.c_str());
                st->job->abandon();
            }
        });
}

}  // namespace colony
