#include "api/openai/generation_stream.h"

#include "api/openai/metrics.h"
#include "util/clock.h"

namespace colony {

GenerationStream::GenerationStream(const Tokenizer &tok, std::vector<std::string> stops,
                                   int64_t t_received_us, ApiMetrics &metrics)
    : tok_(tok),
      detok_(tok),
      stops_(std::move(stops)),
      metrics_(metrics),
      t_received_us_(t_received_us) {}

void GenerationStream::set_preserved_tokens(std::set<int32_t> tokens) {
    preserved_ = std::move(tokens);
}

GenerationCallbacks GenerationStream::callbacks(const std::shared_ptr<GenerationStream> &self) {
    GenerationCallbacks cb;
    cb.on_token = [self](const SampledToken &token) { self->on_token(token); };
    cb.on_done = [self](const GenerationResult &r) { self->on_done(r); };
    return cb;
}

void GenerationStream::set_cancel(std::function<void()> cancel) {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_ = std::move(cancel);
}

void GenerationStream::on_token(const SampledToken &token) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        tokens_.emplace_back(token, now_us());
    }
    cv_.notify_all();
}

void GenerationStream::on_done(const GenerationResult &result) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        result_ = result;
    }
    cv_.notify_all();
}

void GenerationStream::cancel_backend() {
    std::function<void()> cancel;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        cancel.swap(cancel_);
    }
    if (cancel)
        cancel();
}

GenerationStream::Update GenerationStream::next(std::chrono::milliseconds timeout) {
    Update u;
    if (finished_) {
        u.finished = true;
        return u;
    }
    std::vector<std::pair<SampledToken, int64_t>> tokens;
    std::optional<GenerationResult> result;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, timeout, [&] { return !tokens_.empty() || result_.has_value(); });
        tokens.swap(tokens_);
        result = result_;
    }
    for (const auto &[token, t] : tokens) {
        ++n_completion_;
        if (t_last_token_us_ == 0) {
            t_first_token_us_ = t;
            metrics_.observe_ttft((t - t_received_us_) / 1e6);
        } else {
            metrics_.observe_tpot((t - t_last_token_us_) / 1e6);
        }
        t_last_token_us_ = t;
        // a preserved token (a tool-call tag) keeps its text for the chat parser
        const std::string text = preserved_.count(token.token)
                                     ? detok_.flush() + tok_.special_piece(token.token)
                                     : detok_.push(token.token);
        u.text += stops_.push(text);
        u.tokens.push_back(token);
        if (stops_.stopped()) {
            u.finished = true;
            u.finish_reason = "stop";
            finished_ = true;
            cancel_backend();
            finish_metrics();
            return u;
        }
    }
    if (!result)
        return u;

    // every token delivered before on_done is in `tokens` (same lock, same order)
    u.finished = true;
    finished_ = true;
    if (result->finish == FinishReason::kError) {
        u.error = http_error_from(Error(result->error_code, result->error_message));
    } else {
        u.text += stops_.push(detok_.flush());
        if (!stops_.stopped())
            u.text += stops_.flush();
        u.finish_reason =
            result->finish == FinishReason::kLength && !stops_.stopped() ? "length" : "stop";
    }
    finish_metrics();
    return u;
}

std::pair<int64_t, int64_t> GenerationStream::drafts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!result_)
        return {0, 0};
    return {result_->draft_n, result_->draft_n_accepted};
}

int64_t GenerationStream::elapsed_us() const {
    return now_us() - t_received_us_;
}

void GenerationStream::abandon() {
    if (finished_)
        return;
    finished_ = true;
    cancel_backend();
    metrics_.count_client_disconnect();
    finish_metrics();
}

void GenerationStream::finish_metrics() {
    metrics_.add_tokens(n_prompt_, n_completion_);
    const auto [drafted, accepted] = drafts();
    metrics_.add_drafts(drafted, accepted);
    metrics_.observe_duration((now_us() - t_received_us_) / 1e6);
}

}  // namespace colony
