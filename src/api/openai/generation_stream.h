// The API side of one generation. The backend pushes tokens into it from its
// own thread (callbacks()); the HTTP thread that serves the request pulls text
// out of it (next()), which runs the detokenizer and the stop matcher and
// records the request's metrics (TTFT, time per output token, tokens).
//
// A stop sequence or an abandoned request (client gone) cancels the backend's
// sequence through the cancel function given to set_cancel().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/openai/api_error.h"
#include "api/openai/inference_backend.h"
#include "api/openai/stop_matcher.h"
#include "runtime/tokenizer.h"

namespace colony {

class ApiMetrics;

class GenerationStream {
  public:
    /// `t_received_us`: when the HTTP request arrived (now_us()), the start of
    /// TTFT. tok and metrics must outlive the stream.
    GenerationStream(const Tokenizer &tok, std::vector<std::string> stops, int64_t t_received_us,
                     ApiMetrics &metrics);

    /// Callbacks for InferenceBackend::submit; they keep `self` alive until on_done.
    static GenerationCallbacks callbacks(const std::shared_ptr<GenerationStream> &self);
    /// How to cancel the backend's sequence (called at most once).
    void set_cancel(std::function<void()> cancel);
    /// Tokens whose text is kept although they are control tokens (the chat
    /// template's tool-call tags, common_chat_params::preserved_tokens).
    /// Before the first next().
    void set_preserved_tokens(std::set<int32_t> tokens);

    struct Update {
        std::string text;                  // new text to send (may be empty)
        std::vector<SampledToken> tokens;  // the tokens consumed (logprobs, if asked for)
        bool finished = false;             // nothing follows
        std::string finish_reason;         // when finished without error: "stop" or "length"
        std::optional<HttpError> error;    // when finished with an error
    };
    /// Waits up to `timeout` for tokens or the end, then returns what arrived.
    /// Called from one thread at a time.
    Update next(std::chrono::milliseconds timeout);

    /// The client went away before the end: cancels the sequence and counts
    /// the disconnect. Does nothing once finished.
    void abandon();

    int32_t prompt_tokens() const { return n_prompt_; }
    void set_prompt_tokens(int32_t n) { n_prompt_ = n; }
    /// Tokens turned into text so far (up to and including a stop sequence's last token).
    int32_t completion_tokens() const { return n_completion_; }
    /// From the request's arrival to the first token pulled by next(), us; 0: none yet.
    int64_t ttft_us() const { return t_first_token_us_ ? t_first_token_us_ - t_received_us_ : 0; }
    /// From the request's arrival to now, us.
    int64_t elapsed_us() const;
    /// Speculative decoding's drafts verified and accepted (after the end; 0 before).
    std::pair<int64_t, int64_t> drafts() const;

  private:
    void on_token(const SampledToken &token);
    void on_done(const GenerationResult &result);
    void finish_metrics();
    void cancel_backend();

    const Tokenizer &tok_;
    Detokenizer detok_;
    std::set<int32_t> preserved_;
    StopMatcher stops_;
    ApiMetrics &metrics_;
    int64_t t_received_us_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<SampledToken, int64_t>>
        tokens_;                              // guarded by mutex_: (token, arrival us)
    std::optional<GenerationResult> result_;  // guarded by mutex_
    std::function<void()> cancel_;            // guarded by mutex_

    // HTTP thread only.
    int32_t n_prompt_ = 0;
    int32_t n_completion_ = 0;
    int64_t t_last_token_us_ = 0;
    int64_t t_first_token_us_ = 0;
    bool finished_ = false;
};

}  // namespace colony
