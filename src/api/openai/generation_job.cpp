#include "api/openai/generation_job.h"

#include <algorithm>

#include "api/openai/inference_backend.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

struct GenerationJob::Choice {
    size_t index = 0;
    uint64_t backend_id = 0;
    std::shared_ptr<GenerationStream> stream;
    std::unique_ptr<ChatOutput> chat;  // chat requests only
    std::string text;                  // everything generated so far
    bool finished = false;
};

namespace {

/// What the prompt becomes before it is submitted.
struct Prepared {
    std::vector<int32_t> tokens;
    SequenceOptions options;
    std::vector<std::string> stops;
    std::set<int32_t> preserved;
    std::optional<ChatPrompt> chat;  // chat requests rendered by the common/ chat layer
};

void check_prompt_size(const OpenAiServer::Impl &impl, const std::vector<int32_t> &tokens,
                       const char *param, const BackendModelInfo &info) {
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
}

/// Chat: the common/ chat layer when the template parses, else libllama's
/// built-in templates (no tools then).
void prepare_chat(const OpenAiServer::Impl &impl, const ApiRequest &r, const BackendModelInfo &info,
                  Prepared &p) {
    if (impl.chat.available()) {
        ChatPrompt cp = impl.chat.render(r.chat);
        p.tokens = impl.tok.tokenize(cp.prompt, true, true);
        p.options.constraint = cp.constraint;
        p.stops = cp.stops;
        p.preserved = cp.preserved_tokens;
        p.chat = std::move(cp);
        return;
    }
    if (!impl.tok.has_chat_template()) {
        throw RequestError(ErrorCode::kUnsupported, "messages", "no_chat_template",
                           "the model '" + info.id +
                               "' has no chat template, so /v1/chat/completions cannot render "
                               "messages; use /v1/completions with a plain prompt");
    }
    if (!r.chat.tools.empty() && r.chat.tool_choice != "none") {
        throw RequestError(ErrorCode::kUnsupported, "tools", "unsupported_parameter",
                           "tools: " + impl.chat.problem() + ", so tool calls cannot be rendered");
    }
    p.tokens = impl.tok.tokenize(impl.tok.apply_chat_template(r.messages), true, true);
    p.options.constraint.grammar = !r.chat.json_schema.is_null()
                                       ? json_schema_grammar(r.chat.json_schema, "response_format")
                                       : r.chat.grammar;
}

void prepare_completion(const OpenAiServer::Impl &impl, const ApiRequest &r,
                        const BackendModelInfo &info, Prepared &p) {
    if (!r.prompt_tokens.empty()) {
        p.tokens = r.prompt_tokens;
        for (size_t i = 0; i < p.tokens.size(); ++i) {
            if (static_cast<uint32_t>(p.tokens[i]) >= info.n_vocab) {
                throw field_error("prompt[" + std::to_string(i) + "]",
                                  "token id " + std::to_string(p.tokens[i]) +
                                      " is outside the vocabulary of " +
                                      std::to_string(info.n_vocab));
            }
        }
    } else {
        p.tokens = impl.tok.tokenize(r.prompt, true, true);
    }
    p.options.constraint.grammar = !r.chat.json_schema.is_null()
                                       ? json_schema_grammar(r.chat.json_schema, "json_schema")
                                       : r.chat.grammar;
}

Prepared prepare(const OpenAiServer::Impl &impl, const ApiRequest &r,
                 const BackendModelInfo &info) {
    Prepared p;
    if (r.kind == RequestKind::kChat)
        prepare_chat(impl, r, info, p);
    else
        prepare_completion(impl, r, info, p);
    check_prompt_size(impl, p.tokens, r.kind == RequestKind::kChat ? "messages" : "prompt", info);
    p.options.n_probs = std::max(r.logprobs, 0);
    if (r.logprobs >= 0 && p.options.n_probs == 0)
        p.options.n_probs = 1;  // the sampled token's own logprob rides with the top list
    p.stops.insert(p.stops.begin(), r.stop.begin(), r.stop.end());
    if (!p.options.constraint.empty()) {
        // the grammar parses and its prefill fits, here, before any stage sees it
        try {
            Sampler check(r.sampling, impl.tok.n_vocab(), p.options, impl.tok.vocab());
        } catch (const Error &e) {
            const char *param = !r.chat.json_schema.is_null() ? "response_format"
                                : !r.chat.grammar.empty()     ? "grammar"
                                                              : "tools";
            throw field_error(param, e.what());
        }
    }
    return p;
}

std::string piece_of(const Tokenizer &tok, const std::set<int32_t> &preserved, int32_t token) {
    return preserved.count(token) ? tok.special_piece(token) : tok.piece(token);
}

}  // namespace

BackendModelInfo check_servable(OpenAiServer::Impl &impl, const std::string &model) {
    const BackendModelInfo info = impl.backend.model_info();
    if (!model.empty() && model != info.id && model != info.id + ":latest") {
        throw RequestError(
            ErrorCode::kNotFound, "model", "model_not_found",
            "the model '" + model + "' does not exist; this server serves '" + info.id + "'");
    }
    const BackendHealth health = impl.backend.health();
    if (!health.ready)
        throw Error(ErrorCode::kUnavailable, "not ready (" + health.status + "): " + health.reason);
    return info;
}

std::shared_ptr<GenerationJob> GenerationJob::start(OpenAiServer::Impl &impl, const ApiRequest &r,
                                                    int64_t t_received_us) {
    const BackendModelInfo info = impl.backend.model_info();
    Prepared p = prepare(impl, r, info);
    std::shared_ptr<GenerationJob> job(new GenerationJob());
    job->tok_ = &impl.tok;
    job->kind_ = r.kind;
    job->n_prompt_ = static_cast<int32_t>(p.tokens.size());
    for (int32_t i = 0; i < r.n; ++i) {
        GenerationRequest g;
        g.prompt = p.tokens;
        g.max_tokens = r.max_tokens > 0
                           ? r.max_tokens
                           : (r.kind == RequestKind::kChat ? impl.opts.max_tokens_limit
                                                           : impl.opts.default_completion_tokens);
        g.sampling = r.sampling;
        if (g.sampling.seed != LLAMA_DEFAULT_SEED)
            g.sampling.seed += static_cast<uint32_t>(i);  // n choices of one seed differ
        g.options = p.options;
        g.ignore_eos = r.ignore_eos;
        if (i > 0)  // the other choices copy the first one's prompt KV instead of prefilling
            g.share_prompt_of = job->choices_[0]->backend_id;
        auto c = std::make_unique<Choice>();
        c->index = static_cast<size_t>(i);
        c->stream =
            std::make_shared<GenerationStream>(impl.tok, p.stops, t_received_us, impl.metrics);
        c->stream->set_prompt_tokens(i == 0 ? job->n_prompt_ : 0);
        c->stream->set_preserved_tokens(p.preserved);
        if (p.chat)
            c->chat = std::make_unique<ChatOutput>(*p.chat);
        try {
            c->backend_id =
                impl.backend.submit(std::move(g), GenerationStream::callbacks(c->stream));
        } catch (...) {
            job->abandon();
            throw;
        }
        InferenceBackend *backend = &impl.backend;
        const uint64_t id = c->backend_id;
        c->stream->set_cancel([backend, id] { backend->cancel(id); });
        job->backend_ids_ += (job->backend_ids_.empty() ? "" : ",") + std::to_string(id);
        job->choices_.push_back(std::move(c));
        job->results_.emplace_back();
    }
    job->preserved_ = std::move(p.preserved);
    job->want_logprobs_ = r.logprobs >= 0;
    job->n_top_ = std::max(r.logprobs, 0);
    return job;
}

GenerationJob::~GenerationJob() {
    abandon();
}

ChoiceUpdate GenerationJob::poll(Choice &c, std::chrono::milliseconds timeout) {
    ChoiceUpdate u;
    u.index = c.index;
    if (c.finished)
        return u;
    GenerationStream::Update s = c.stream->next(timeout);
    ChoiceResult &res = results_[c.index];
    if (want_logprobs_) {
        for (const SampledToken &t : s.tokens) {
            if (!t.has_logprob)
                continue;
            LogprobEntry e;
            e.text = piece_of(*tok_, preserved_, t.token);
            e.logprob = t.logprob;
            for (size_t k = 0; k < t.top.size() && k < static_cast<size_t>(n_top_); ++k)
                e.top.emplace_back(piece_of(*tok_, preserved_, t.top[k].token), t.top[k].logprob);
            u.logprobs.push_back(e);
            res.logprobs.push_back(std::move(e));
        }
    }
    c.text += s.text;
    if (c.chat) {
        const ChatDelta d = c.chat->update(c.text, s.finished);
        u.text = d.content;
        u.reasoning = d.reasoning;
        u.tool_calls = d.tool_calls;
        res.text = c.chat->content();
        res.reasoning = c.chat->reasoning();
        res.tool_calls = c.chat->tool_calls();
    } else {
        u.text = s.text;
        res.text = c.text;
    }
    if (s.finished) {
        c.finished = true;
        u.finished = true;
        u.error = s.error;
        if (s.error && !error_)
            error_ = s.error;
        u.finish_reason = s.finish_reason;
        if (c.chat && !c.chat->tool_calls().empty() && s.finish_reason == "stop")
            u.finish_reason = "tool_calls";
        res.finish_reason = u.finish_reason;
    }
    return u;
}

std::vector<ChoiceUpdate> GenerationJob::next(std::chrono::milliseconds timeout) {
    std::vector<ChoiceUpdate> out;
    bool waited = false;
    for (auto &c : choices_) {
        if (c->finished)
            continue;
        // the first running choice waits; the others give what they have
        ChoiceUpdate u = poll(*c, waited ? std::chrono::milliseconds(0) : timeout);
        waited = true;
        if (!u.empty())
            out.push_back(std::move(u));
    }
    return out;
}

bool GenerationJob::finished() const {
    return std::all_of(choices_.begin(), choices_.end(), [](const auto &c) { return c->finished; });
}

bool GenerationJob::wait_all(const std::function<bool()> &client_gone) {
    while (!finished()) {
        next(std::chrono::milliseconds(100));
        if (!finished() && client_gone && client_gone()) {
            abandon();
            return false;
        }
    }
    return true;
}

void GenerationJob::abandon() {
    for (auto &c : choices_) {
        if (!c->finished) {
            c->finished = true;
            c->stream->abandon();
        }
    }
}

int32_t GenerationJob::completion_tokens() const {
    int32_t n = 0;
    for (const auto &c : choices_)
        n += c->stream->completion_tokens();
    return n;
}

std::pair<int64_t, int64_t> GenerationJob::drafts() const {
    std::pair<int64_t, int64_t> sum{0, 0};
    for (const auto &c : choices_) {
        const auto d = c->stream->drafts();
        sum.first += d.first;
        sum.second += d.second;
    }
    return sum;
}

double GenerationJob::ttft_ms() const {
    return choices_.empty() ? 0.0 : choices_[0]->stream->ttft_us() / 1000.0;
}

double GenerationJob::elapsed_ms() const {
    return choices_.empty() ? 0.0 : choices_[0]->stream->elapsed_us() / 1000.0;
}

}  // namespace colony
