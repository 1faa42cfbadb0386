// Embeddings: POST /v1/embeddings (OpenAI: input a string, an array of
// strings, an array of token ids or of such arrays; encoding_format float or
// base64) and Ollama's POST /api/embed and legacy /api/embeddings. Each input
// runs through the pipeline as a prompt whose final hidden states (after the
// output norm) the last stage pools (mean, cls or last, as --pooling or the
// model's <arch>.pooling_type says) and L2-normalizes (llama-server's
// embd_normalize = 2); only the pooled vector travels back.
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>

#include "api/openai/generation_job.h"
#include "api/openai/request_fields.h"
#include "api/openai/response_json.h"
#include "api/openai/server_impl.h"
#include "base64.hpp"
#include "llama.h"
#include "runtime/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

namespace colony {

namespace {

using nlohmann::json;

constexpr size_t kMaxInputs = 256;  // inputs per request

Pooling pooling_of(const OpenAiServer::Impl &impl, const BackendModelInfo &info) {
    std::string p = impl.opts.pooling;
    if (p.empty()) {
        char buf[16] = {0};
        const std::string key = info.arch + ".pooling_type";
        if (llama_model_meta_val_str(impl.tok.model(), key.c_str(), buf, sizeof buf) > 0) {
            const int v = std::atoi(buf);
            if (v >= 1 && v <= 3)
                return static_cast<Pooling>(v);
        }
        return Pooling::kMean;
    }
    return p == "cls" ? Pooling::kCls : p == "last" ? Pooling::kLast : Pooling::kMean;
}

/// The inputs as token lists (strings are tokenized with BOS as the model asks).
std::vector<std::vector<int32_t>> tokenize_inputs(const OpenAiServer::Impl &impl, const json &input,
                                                  const BackendModelInfo &info, const char *param) {
    std::vector<json> items;
    if (input.is_string()) {
        items.push_back(input);
    } else if (input.is_array() && !input.empty() && input[0].is_number_integer()) {
        items.push_back(input);  // one list of token ids
    } else if (input.is_array()) {
        for (const json &i : input)
            items.push_back(i);
    } else {
        throw field_error(param, "must be a string, an array of strings or of token ids");
    }
    if (items.empty() || items.size() > kMaxInputs)
        throw field_error(param, "must hold 1 to " + std::to_string(kMaxInputs) + " inputs");
    std::vector<std::vector<int32_t>> out;
    for (size_t k = 0; k < items.size(); ++k) {
        const std::string p = std::string(param) + "[" + std::to_string(k) + "]";
        std::vector<int32_t> toks;
        if (items[k].is_string()) {
            toks = impl.tok.tokenize(items[k].get<std::string>(), true, false);
        } else if (items[k].is_array()) {
            for (const json &t : items[k]) {
                if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
                    t.get<int64_t>() >= static_cast<int64_t>(info.n_vocab))
                    throw field_error(p, "token ids must be in [0, n_vocab)");
                toks.push_back(t.get<int32_t>());
            }
        } else {
            throw field_error(p, "must be a string or an array of token ids");
        }
        if (toks.empty())
            throw field_error(p, "is empty (no tokens)");
        if (toks.size() >= info.n_ctx_seq) {
            throw RequestError(ErrorCode::kOutOfRange, p, "context_length_exceeded",
                               p + " has " + std::to_string(toks.size()) + " tokens; at most " +
                                   std::to_string(info.n_ctx_seq - 1) + " fit a sequence");
        }
        out.push_back(std::move(toks));
    }
    return out;
}

/// Every input's embedding, in order, computed concurrently on the backend.
class EmbeddingBatch {
  public:
    EmbeddingBatch(OpenAiServer::Impl &impl, const std::vector<std::vector<int32_t>> &inputs,
                   Pooling pooling)
        : impl_(impl) {
        for (size_t i = 0; i < inputs.size(); ++i) {
            GenerationRequest g;
            g.prompt = inputs[i];
            g.max_tokens = 1;
            g.sampling.temperature = 0.0f;
            g.options.pooling = pooling;
            GenerationCallbacks cb;
            auto self = state_;
            cb.on_token = [](const SampledToken &) {};
            cb.on_embedding = [self, i](std::vector<float> v) {
                std::lock_guard<std::mutex> lock(self->mu);
                self->vectors[i] = std::move(v);
            };
            cb.on_done = [self](const GenerationResult &r) {
                std::lock_guard<std::mutex> lock(self->mu);
                if (r.finish == FinishReason::kError && !self->error)
                    self->error = http_error_from(Error(r.error_code, r.error_message));
                ++self->n_done;
                self->cv.notify_all();
            };
            state_->vectors.resize(inputs.size());
            try {
                ids_.push_back(impl.backend.submit(std::move(g), std::move(cb)));
            } catch (...) {
                cancel();
                throw;
            }
        }
    }
    ~EmbeddingBatch() { cancel(); }

    /// Waits for all; false when the client went away (everything cancelled).
    bool wait(const httplib::Request &req) {
        std::unique_lock<std::mutex> lock(state_->mu);
        while (state_->n_done < ids_.size()) {
            state_->cv.wait_for(lock, std::chrono::milliseconds(100));
            if (state_->n_done < ids_.size() && req.is_connection_closed &&
                req.is_connection_closed()) {
                lock.unlock();
                cancel();
                return false;
            }
        }
        done_ = true;
        return true;
    }
    const std::optional<HttpError> &error() const { return state_->error; }
    const std::vector<std::vector<float>> &vectors() const { return state_->vectors; }

  private:
    void cancel() {
        if (done_)
            return;
        for (uint64_t id : ids_)
            impl_.backend.cancel(id);
    }
    struct State {
        std::mutex mu;
        std::condition_variable cv;
        std::vector<std::vector<float>> vectors;
        size_t n_done = 0;
        std::optional<HttpError> error;
    };
    OpenAiServer::Impl &impl_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
    std::vector<uint64_t> ids_;
    bool done_ = false;
};

std::string base64_of(const std::vector<float> &v) {
    std::string bytes(v.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), v.data(), bytes.size());
    return base64::encode(bytes);
}

/// Runs `inputs`; false: nothing more to send (client gone or error sent).
bool run(OpenAiServer::Impl &impl, const std::vector<std::vector<int32_t>> &inputs,
         const BackendModelInfo &info, const httplib::Request &req, httplib::Response &res,
         std::vector<std::vector<float>> &out, bool ollama) {
    EmbeddingBatch batch(impl, inputs, pooling_of(impl, info));
    if (!batch.wait(req)) {
        res.status = 499;
        return false;
    }
    if (batch.error()) {
        (ollama ? send_ollama_error : send_error)(res, *batch.error());
        return false;
    }
    out = batch.vectors();
    return true;
}

size_t count_tokens(const std::vector<std::vector<int32_t>> &inputs) {
    size_t n = 0;
    for (const auto &i : inputs)
        n += i.size();
    return n;
}

}  // namespace

void register_embeddings_routes(httplib::Server &s, OpenAiServer::Impl &impl) {
    s.Post("/v1/embeddings", guarded([&impl](const httplib::Request &req, httplib::Response &res) {
               const json body = parse_object(req.body);
               const BackendModelInfo info = check_servable(impl, body.value("model", ""));
               refuse_if(field(body, "dimensions") != nullptr, "dimensions",
                         "is not supported (embeddings have the model's n_embd)");
               const std::string format = body.value("encoding_format", "float");
               if (format != "float" && format != "base64")
                   throw field_error("encoding_format", "must be float or base64");
               const json *input = field(body, "input");
               if (!input)
                   throw field_error("input", "is required");
               const auto inputs = tokenize_inputs(impl, *input, info, "input");
               std::vector<std::vector<float>> vectors;
               if (!run(impl, inputs, info, req, res, vectors, false))
                   return;
               json data = json::array();
               for (size_t i = 0; i < vectors.size(); ++i) {
                   data.push_back({{"object", "embedding"},
                                   {"index", i},
                                   {"embedding", format == "base64" ? json(base64_of(vectors[i]))
                                                                    : json(vectors[i])}});
               }
               const size_t n = count_tokens(inputs);
               res.set_content(json_text({{"object", "list"},
                                          {"data", data},
                                          {"model", info.id},
                                          {"usage", {{"prompt_tokens", n}, {"total_tokens", n}}}}),
                               "application/json");
           }));
    auto ollama = [&impl](bool legacy) {
        return guarded(
            [&impl, legacy](const httplib::Request &req, httplib::Response &res) {
                const int64_t t0 = now_us();
                const json body = parse_object(req.body);
                const BackendModelInfo info = check_servable(impl, body.value("model", ""));
                const char *param = legacy ? "prompt" : "input";
                const json *input = field(body, param);
                if (!input)
                    throw field_error(param, "is required");
                const auto inputs = tokenize_inputs(impl, *input, info, param);
                std::vector<std::vector<float>> vectors;
                if (!run(impl, inputs, info, req, res, vectors, true))
                    return;
                json out;
                if (legacy) {
                    out = {{"embedding", vectors.at(0)}};
                } else {
                    out = {{"model", body.value("model", info.id)},
                           {"embeddings", vectors},
                           {"total_duration", (now_us() - t0) * 1000},
                           {"load_duration", 0},
                           {"prompt_eval_count", count_tokens(inputs)}};
                }
                res.set_content(json_text(out), "application/json");
            },
            send_ollama_error);
    };
    s.Post("/api/embed", ollama(false));
    s.Post("/api/embeddings", ollama(true));
}

}  // namespace colony
