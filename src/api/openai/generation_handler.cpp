// POST /v1/chat/completions and POST /v1/completions: validate, tokenize
// (chat template for chat), submit to the backend, then either wait for the
// whole answer or stream it as server-sent events.
#include <chrono>
#include <memory>

#include "api/openai/generation_stream.h"
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

std::vector<int32_t> tokenize_request(const OpenAiServer::Impl &impl, const ApiRequest &r,
                                      const BackendModelInfo &info) {
    std::vector<int32_t> tokens;
    const char *param = r.kind == RequestKind::kChat ? "messages" : "prompt";
    if (r.kind == RequestKind::kChat) {
        if (!impl.tok.has_chat_template()) {
            throw RequestError(
                ErrorCode::kUnsupported, "messages", "no_chat_template",
                "the model '" + info.id +
                    "' has no chat template, so /v1/chat/completions cannot render messages; "
                    "use /v1/completions with a plain prompt");
        }
        const std::string text = impl.tok.apply_chat_template(r.messages);
        tokens = impl.tok.tokenize(text, true, true);
    } else if (!r.prompt_tokens.empty()) {
        tokens = r.prompt_tokens;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (static_cast<uint32_t>(tokens[i]) >= info.n_vocab) {
                throw field_error("prompt[" + std::to_string(i) + "]",
                                  "token id " + std::to_string(tokens[i]) +
                                      " is outside the vocabulary of " +
                                      std::to_string(info.n_vocab));
            }
        }
    } else {
        tokens = impl.tok.tokenize(r.prompt, true, true);
    }
    if (tokens.empty())
        throw field_error(param, "is empty (no tokens)");
    const int32_t limit = impl.opts.max_prompt_tokens;
    if (limit > 0 && tokens.size() > static_cast<size_t>(limit)) {
        throw RequestError(ErrorCode::kOutOfRange, param, "prompt_too_long",
                           "the prompt has " + std::to_string(tokens.size()) +
                               " tokens; this server accepts at most " + std::to_string(limit) +
                               " (--max-prompt-tokens)");
    }
    if (tokens.size() >= info.n_ctx_seq) {
        throw RequestError(ErrorCode::kOutOfRange, param, "context_length_exceeded",
                           "the prompt has " + std::to_string(tokens.size()) +
                               " tokens; a sequence's context holds " +
                               std::to_string(info.n_ctx_seq) + " positions, so at most " +
                               std::to_string(info.n_ctx_seq - 1) + " prompt tokens fit");
    }
    return tokens;
}

/// Waits for the whole answer; cancels if the client disconnects meanwhile.
void respond_whole(uint64_t id, const std::shared_ptr<GenerationStream> &stream, RequestKind kind,
                   const ResponseIds &ids, const httplib::Request &req, httplib::Response &res) {
    std::string text;
    GenerationStream::Update u;
    while (!u.finished) {
        u = stream->next(kPollInterval);
        text += u.text;
        if (!u.finished && req.is_connection_closed && req.is_connection_closed()) {
            COLONY_LOG_DEBUG("api: client of request %llu went away; cancelling",
                             static_cast<unsigned long long>(id));
            stream->abandon();
            res.status = 499;  // nginx's "client closed request"; never reaches anyone
            return;
        }
    }
    if (u.error) {
        send_error(res, *u.error);
        return;
    }
    const Usage usage{stream->prompt_tokens(), stream->completion_tokens()};
    const Timings timings{stream->ttft_us() / 1000.0, stream->elapsed_us() / 1000.0};
    res.set_content(completion_body(kind, ids, text, u.finish_reason, usage, &timings),
                    "application/json");
}

/// State of one SSE response, shared by the content provider and its releaser.
struct SseState {
    std::shared_ptr<GenerationStream> stream;
    RequestKind kind = RequestKind::kChat;
    ResponseIds ids;
    bool include_usage = false;
    bool started = false;
    bool finished = false;
};

bool write(httplib::DataSink &sink, const std::string &event) {
    return sink.write(event.data(), event.size());
}

/// One call of the chunked content provider: the first event (chat: the
/// assistant role), then whatever text arrived within kPollInterval, then
/// the end (finish_reason, usage, [DONE]). false: the client is gone.
bool provide_sse(SseState &st, httplib::DataSink &sink) {
    const bool usage_field = st.include_usage;
    if (!st.started) {
        st.started = true;
        if (st.kind == RequestKind::kChat) {
            const std::string role = "assistant", empty;
            if (!write(sink,
                       sse_event(chunk_body(st.kind, st.ids, &role, &empty, "", usage_field))))
                return false;
        }
    }
    const GenerationStream::Update u = st.stream->next(kPollInterval);
    if (!u.text.empty()) {
        if (!write(sink, sse_event(chunk_body(st.kind, st.ids, nullptr, &u.text, "", usage_field))))
            return false;
    }
    if (!u.finished)
        return true;
    st.finished = true;
    if (u.error) {
        if (!write(sink, sse_event(error_body(*u.error))))
            return false;
    } else {
        if (!write(sink, sse_event(chunk_body(st.kind, st.ids, nullptr, nullptr, u.finish_reason,
                                              usage_field)))) {
            return false;
        }
        if (st.include_usage) {
            const Usage usage{st.stream->prompt_tokens(), st.stream->completion_tokens()};
            if (!write(sink, sse_event(usage_chunk_body(st.kind, st.ids, usage))))
                return false;
        }
    }
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

    GenerationRequest g;
    g.prompt = tokenize_request(impl, r, info);
    g.max_tokens = r.max_tokens > 0
                       ? r.max_tokens
                       : (kind == RequestKind::kChat ? impl.opts.max_tokens_limit
                                                     : impl.opts.default_completion_tokens);
    g.sampling = r.sampling;
    g.ignore_eos = r.ignore_eos;
    const int32_t n_prompt = static_cast<int32_t>(g.prompt.size());

    auto stream = std::make_shared<GenerationStream>(impl.tok, r.stop, t_received, impl.metrics);
    stream->set_prompt_tokens(n_prompt);
    const uint64_t id = impl.backend.submit(std::move(g), GenerationStream::callbacks(stream));
    InferenceBackend *backend = &impl.backend;
    stream->set_cancel([backend, id] { backend->cancel(id); });

    ResponseIds ids;
    ids.id = impl.next_id(kind == RequestKind::kChat ? "chatcmpl" : "cmpl");
    // The backend's id is the one every node's log lines and the wire header
    // carry (docs/request-path.md): this line ties it to the response id.
    COLONY_LOG_DEBUG("api: %s %s is request %llu: %d prompt tokens%s", req.path.c_str(),
                     ids.id.c_str(), static_cast<unsigned long long>(id), n_prompt,
                     r.stream ? ", streaming" : "");
    ids.created = unix_now();
    ids.model = info.id;
    if (!r.stream) {
        respond_whole(id, stream, kind, ids, req, res);
        return;
    }
    auto st = std::make_shared<SseState>();
    st->stream = stream;
    st->kind = kind;
    st->ids = ids;
    st->include_usage = r.include_usage;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink &sink) { return provide_sse(*st, sink); },
        [st](bool) {
            if (!st->finished) {
                COLONY_LOG_DEBUG("api: client of %s went away; cancelling", st->ids.id.c_str());
                st->stream->abandon();
            }
        });
}

}  // namespace colony
