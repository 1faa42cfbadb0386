// LocalBackend on stories260K: continuous batching gives every sequence the
// tokens it gets alone (and that colony::generate gets), cancellation frees
// the KV cache, the queue is bounded, bad requests are refused.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "api/local_backend.h"
#include "api_test_support.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/generate.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"

namespace colony {
namespace {

using apitest::backend_options;
using apitest::stories_path;

/// Collects one request's tokens and result.
class Collector {
  public:
    GenerationCallbacks callbacks(std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
        GenerationCallbacks cb;
        cb.on_token = [this, delay](const SampledToken &t) {
            if (delay.count())
                std::this_thread::sleep_for(delay);
            std::lock_guard<std::mutex> lock(mu_);
            tokens_.push_back(t.token);
            cv_.notify_all();
        };
        cb.on_done = [this](const GenerationResult &r) {
            std::lock_guard<std::mutex> lock(mu_);
            EXPECT_FALSE(result_.has_value()) << "on_done called twice";
            result_ = r;
            cv_.notify_all();
        };
        return cb;
    }
    GenerationResult wait() {
        std::unique_lock<std::mutex> lock(mu_);
        EXPECT_TRUE(
            cv_.wait_for(lock, std::chrono::seconds(60), [&] { return result_.has_value(); }));
        return result_.value_or(GenerationResult{});
    }
    void wait_tokens(size_t n) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(30),
                     [&] { return tokens_.size() >= n || result_.has_value(); });
    }
    std::vector<int32_t> tokens() {
        std::lock_guard<std::mutex> lock(mu_);
        return tokens_;
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<int32_t> tokens_;
    std::optional<GenerationResult> result_;
};

GenerationRequest greedy(std::vector<int32_t> prompt, int32_t max_tokens) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
}

std::vector<std::vector<int32_t>> test_prompts(const Tokenizer &tok, size_t n) {
    const char *starts[] = {"Once upon a time", "The little dog", "Lily and Tom went",
                            "One day, a bird",  "The sun was",    "Mom said",
                            "There was a big",  "Tim liked to"};
    std::vector<std::vector<int32_t>> out;
    for (size_t i = 0; i < n; ++i) {
        std::string text = starts[i % 8];
        for (size_t k = 0; k < i / 8; ++k)
            text += " and then";  // distinct prompts of varied length
        out.push_back(tok.tokenize(text, true, false));
    }
    return out;
}

TEST(LocalBackend, SixteenConcurrentGreedySequencesMatchEachAloneAndGenerate) {
    LocalBackend backend(backend_options(stories_path(), 8, 8 * 256));
    backend.wait_ready();
    const auto prompts = test_prompts(backend.tokenizer(), 16);
    const int32_t n_gen = 40;

    // alone: one request at a time
    std::vector<std::vector<int32_t>> alone;
    for (const auto &p : prompts) {
        Collector c;
        backend.submit(greedy(p, n_gen), c.callbacks());
        const GenerationResult r = c.wait();
        EXPECT_NE(r.finish, FinishReason::kError) << r.error_message;
        alone.push_back(c.tokens());
        ASSERT_FALSE(alone.back().empty());
    }
    // reference: colony::generate on a stage of its own (one sequence)
    {
        auto file = std::shared_ptr<const GgufFile>(GgufFile::open(stories_path()));
        const ModelHparams hp = ModelHparams::from_gguf(*file);
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = 256;
        cfg.n_threads = 2;
        Stage stage(file, hp, cfg);
        for (size_t i = 0; i < 3; ++i) {
            std::vector<int32_t> ref;
            GenerateOptions go;
            go.n_predict = n_gen;
            go.sampling.temperature = 0;
            generate(stage, backend.tokenizer(), prompts[i], go,
                     [&](int32_t t, const std::string &) {
                         if (t >= 0)
                             ref.push_back(t);
                         return true;
                     });
            stage.seq_rm(0);
            EXPECT_EQ(ref, alone[i]) << "prompt " << i;
        }
    }
    // together: all 16 at once (8 run, 8 queue and join as others finish)
    std::vector<std::unique_ptr<Collector>> cs;
    for (const auto &p : prompts) {
        cs.push_back(std::make_unique<Collector>());
        backend.submit(greedy(p, n_gen), cs.back()->callbacks());
    }
    for (size_t i = 0; i < cs.size(); ++i) {
        const GenerationResult r = cs[i]->wait();
        EXPECT_NE(r.finish, FinishReason::kError) << r.error_message;
        EXPECT_EQ(cs[i]->tokens(), alone[i]) << "prompt " << i;
        EXPECT_EQ(r.n_prompt, static_cast<int32_t>(prompts[i].size()));
        EXPECT_EQ(r.n_generated, static_cast<int32_t>(alone[i].size()));
    }
    EXPECT_EQ(backend.stats().stages.at(0).kv_used_cells, 0u);
    EXPECT_EQ(backend.stats().n_running, 0u);
}

TEST(LocalBackend, LongPromptIsPrefilledInChunksAlongsideDecoding) {
    LocalBackendOptions o = backend_options(stories_path(), 2, 2 * 512);
    o.n_ubatch = 16;  // a 150-token prompt needs ~10 ubatches
    LocalBackend backend(o);
    backend.wait_ready();
    const Tokenizer &tok = backend.tokenizer();
    std::string long_text;
    for (int i = 0; i < 15; ++i)
        long_text += "The cat sat on the mat. ";
    const auto long_prompt = tok.tokenize(long_text, true, false);
    ASSERT_GT(long_prompt.size(), 100u);
    const auto short_prompt = tok.tokenize("Once upon a time", true, false);
    // the short request decodes for far longer than the long prompt's prefill
    GenerationRequest short_req = greedy(short_prompt, 60);
    short_req.ignore_eos = true;

    Collector alone_long, alone_short;
    backend.submit(greedy(long_prompt, 20), alone_long.callbacks());
    alone_long.wait();
    backend.submit(short_req, alone_short.callbacks());
    alone_short.wait();
    ASSERT_EQ(alone_short.tokens().size(), 60u);
    EXPECT_EQ(backend.mixed_ubatches(), 0u) << "one request at a time: nothing to mix";

    // The short sequence is decoding when the long prompt arrives: the
    // scheduler holds in its third token's callback until the long request
    // is queued (with a deadline, so a failed test never hangs the backend).
    Collector s, l;
    std::promise<void> long_queued;
    GenerationCallbacks short_cb = s.callbacks();
    short_cb.on_token = [inner = short_cb.on_token, queued = long_queued.get_future().share(),
                         n = 0](const SampledToken &t) mutable {
        inner(t);
        if (++n == 3)
            queued.wait_for(std::chrono::seconds(60));
    };
    backend.submit(short_req, std::move(short_cb));
    s.wait_tokens(3);
    EXPECT_EQ(s.tokens().size(), 3u);
    backend.submit(greedy(long_prompt, 20), l.callbacks());
    long_queued.set_value();
    s.wait();
    l.wait();
    EXPECT_EQ(s.tokens(), alone_short.tokens());
    EXPECT_EQ(l.tokens(), alone_long.tokens());
    // Every chunk of the long prompt shared its ubatch with the short
    // sequence's decode row: n_ubatch - 1 prompt rows each.
    const uint64_t chunks = (long_prompt.size() + o.n_ubatch - 2) / (o.n_ubatch - 1);
    EXPECT_EQ(backend.mixed_ubatches(), chunks)
        << long_prompt.size() << " prompt tokens, " << o.n_ubatch << " rows per ubatch";
}

TEST(LocalBackend, CancelEndsTheSequenceAndFreesItsKvCells) {
    LocalBackend backend(backend_options(stories_path(), 2, 2 * 1024));
    backend.wait_ready();
    const auto prompt = backend.tokenizer().tokenize("Once upon a time", true, false);
    GenerationRequest req = greedy(prompt, 100000);
    req.ignore_eos = true;
    Collector c;
    const uint64_t id = backend.submit(req, c.callbacks(std::chrono::milliseconds(5)));
    c.wait_tokens(5);
    EXPECT_GT(backend.stats().stages.at(0).kv_used_cells, prompt.size());
    backend.cancel(id);
    const GenerationResult r = c.wait();
    EXPECT_EQ(r.finish, FinishReason::kCancelled);
    EXPECT_EQ(backend.stats().stages.at(0).kv_used_cells, 0u);
    backend.cancel(id);  // again: ignored
    backend.cancel(12345);
    // the backend still serves
    Collector after;
    backend.submit(greedy(prompt, 5), after.callbacks());
    EXPECT_EQ(after.wait().finish, FinishReason::kLength);
    EXPECT_EQ(after.tokens().size(), 5u);
}

TEST(LocalBackend, ContextEndFinishesWithLength) {
    LocalBackend backend(backend_options(stories_path(), 1, 32));  // 32 positions per sequence
    backend.wait_ready();
    const auto prompt = backend.tokenizer().tokenize("Once upon a time", true, false);
    GenerationRequest req = greedy(prompt, 1000);
    req.ignore_eos = true;
    Collector c;
    backend.submit(req, c.callbacks());
    const GenerationResult r = c.wait();
    EXPECT_EQ(r.finish, FinishReason::kLength);
    EXPECT_EQ(static_cast<size_t>(r.n_generated), 32 - prompt.size() + 1);
}

TEST(LocalBackend, FullQueueRefusesWithResourceError) {
    LocalBackendOptions o = backend_options(stories_path(), 1, 1024);
    o.max_queue = 1;
    LocalBackend backend(o);
    backend.wait_ready();
    const auto prompt = backend.tokenizer().tokenize("Once", true, false);
    GenerationRequest slow = greedy(prompt, 100000);
    slow.ignore_eos = true;
    Collector running, queued;
    const uint64_t a = backend.submit(slow, running.callbacks(std::chrono::milliseconds(5)));
    running.wait_tokens(1);
    const uint64_t b = backend.submit(greedy(prompt, 3), queued.callbacks());
    EXPECT_EQ(backend.stats().n_queued, 1u);
    try {
        Collector refused;
        backend.submit(greedy(prompt, 3), refused.callbacks());
        ADD_FAILURE() << "a third request was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kResource);
    }
    backend.cancel(b);  // a queued request can be cancelled too
    EXPECT_EQ(queued.wait().finish, FinishReason::kCancelled);
    backend.cancel(a);
    EXPECT_EQ(running.wait().finish, FinishReason::kCancelled);
}

TEST(LocalBackend, BadRequestsAreRefusedAtSubmit) {
    LocalBackend backend(backend_options(stories_path(), 2, 64));
    backend.wait_ready();
    Collector c;
    auto code_of = [&](GenerationRequest r) {
        try {
            backend.submit(std::move(r), c.callbacks());
        } catch (const Error &e) {
            return e.code();
        }
        return ErrorCode::kInternal;
    };
    EXPECT_EQ(code_of(greedy({}, 5)), ErrorCode::kInvalidArgument);
    EXPECT_EQ(code_of(greedy({1, 2}, 0)), ErrorCode::kInvalidArgument);
    EXPECT_EQ(code_of(greedy({1, 100000}, 5)), ErrorCode::kInvalidArgument);
    EXPECT_EQ(code_of(greedy(std::vector<int32_t>(32, 1), 5)),
              ErrorCode::kOutOfRange);  // 32 positions per sequence
    GenerationRequest bad = greedy({1}, 5);
    bad.sampling.top_p = 2;
    EXPECT_EQ(code_of(bad), ErrorCode::kInvalidArgument);
}

TEST(LocalBackend, ReportsLoadFailureAndClusterJson) {
    EXPECT_THROW(LocalBackend(backend_options("/nonexistent.gguf")), Error);
    LocalBackendOptions o = backend_options(stories_path(), 3, 3 * 64);
    LocalBackend backend(o);
    backend.wait_ready();
    EXPECT_TRUE(backend.health().ready);
    const BackendModelInfo info = backend.model_info();
    EXPECT_EQ(info.id, "stories260K-f32");
    EXPECT_EQ(info.n_ctx_seq, 64u);
    const std::string cj = backend.cluster_json();
    EXPECT_NE(cj.find("\"state\":\"ready\""), std::string::npos) << cj;
    EXPECT_NE(cj.find("\"layers\":{\"first\":0,\"last\":" + std::to_string(info.n_layer) + "}"),
              std::string::npos)
        << cj;
}

}  // namespace
}  // namespace colony
