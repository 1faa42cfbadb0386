// One API request's generation, whatever the endpoint (OpenAI chat and
// completions, Responses, Ollama, Anthropic Messages): the prompt rendered
// and tokenized, the grammar and logprobs options, n choices submitted to the
// backend, and what comes back turned into per-choice updates (text or
// parsed chat deltas: content, reasoning, tool calls; logprobs with token
// text). Endpoints only format what a job yields.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/openai/api_error.h"
#include "api/openai/chat_format.h"
#include "api/openai/choice.h"
#include "api/openai/generation_stream.h"
#include "api/openai/request_parse.h"
#include "api/openai/server_impl.h"

namespace colony {

/// The served model's info when `model` names it (or is empty; "name:latest"
/// as Ollama clients send it is accepted too) and the backend is ready.
/// Errors: RequestError kNotFound ("model_not_found"), Error kUnavailable.
BackendModelInfo check_servable(OpenAiServer::Impl &impl, const std::string &model);

class GenerationJob {
  public:
    /// Validates, renders and tokenizes `r`, and submits its n choices.
    /// `t_received_us`: when the HTTP request arrived. Errors: RequestError
    /// / Error as the backend's submit and the chat layer throw (nothing is
    /// left running then).
    static std::shared_ptr<GenerationJob> start(OpenAiServer::Impl &impl, const ApiRequest &r,
                                                int64_t t_received_us);
    ~GenerationJob();

    /// Waits up to `timeout` for news and returns the updates of every
    /// choice that has some. Called from one thread at a time.
    std::vector<ChoiceUpdate> next(std::chrono::milliseconds timeout);
    /// Every choice has finished (or failed).
    bool finished() const;
    /// Waits for every choice; false (and every choice cancelled) when
    /// `client_gone` says the client went away meanwhile.
    bool wait_all(const std::function<bool()> &client_gone);
    /// The client went away: cancels what still runs.
    void abandon();

    /// After finished(): each choice's answer, and the first error if any.
    const std::vector<ChoiceResult> &results() const { return results_; }
    const std::optional<HttpError> &error() const { return error_; }

    int32_t prompt_tokens() const { return n_prompt_; }
    int32_t completion_tokens() const;
    double ttft_ms() const;
    double elapsed_ms() const;
    /// Speculative decoding over every choice: drafts verified, accepted.
    std::pair<int64_t, int64_t> drafts() const;
    size_t n_choices() const { return choices_.size(); }
    const std::string &backend_ids() const { return backend_ids_; }

  private:
    struct Choice;
    GenerationJob() = default;
    ChoiceUpdate poll(Choice &c, std::chrono::milliseconds timeout);

    const Tokenizer *tok_ = nullptr;
    RequestKind kind_ = RequestKind::kChat;
    std::vector<std::unique_ptr<Choice>> choices_;
    std::vector<ChoiceResult> results_;
    std::optional<HttpError> error_;
    int32_t n_prompt_ = 0;
    std::string backend_ids_;
    std::set<int32_t> preserved_;  // tokens rendered with their special text
    bool want_logprobs_ = false;
    int32_t n_top_ = 0;  // top alternatives per token to report
};

}  // namespace colony
