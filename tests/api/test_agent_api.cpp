// The API features agents and apps use, end to end on a LocalBackend over
// real weights (stories260K): grammar-constrained output, JSON schemas,
// logprobs against the model's own distribution, n choices, embeddings
// against libllama's pooled embeddings, and the Ollama, Responses and
// Anthropic endpoints' shapes. The real clients (openai, ai, langchain,
// ollama npm packages) test the same through a cluster in agents.test.mjs.
#include <gtest/gtest.h>

#include <cpp-httplib/httplib.h>
#include <cmath>
#include <nlohmann/json.hpp>

#include "api/local_backend.h"
#include "api/openai/openai_server.h"
#include "api_test_support.h"
#include "llama.h"

namespace colony {
namespace {

using apitest::backend_options;
using apitest::stories_path;
using nlohmann::json;

class AgentApi : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        backend_ = new LocalBackend(backend_options(stories_path(), 4, 4 * 512));  // NOLINT
        backend_->wait_ready();
        OpenAiServerOptions o;
        o.port = 0;
        server_ = new OpenAiServer(*backend_, backend_->tokenizer(), o);  // NOLINT
    }
    static void TearDownTestSuite() {
        delete server_;   // NOLINT: suite-lifetime fixture
        delete backend_;  // NOLINT
    }
    static json post(const std::string &path, const json &body, int expect = 200) {
        httplib::Client c("127.0.0.1", server_->port());
        c.set_read_timeout(120, 0);
        auto res = c.Post(path, body.dump(), "application/json");
        EXPECT_TRUE(res);
        if (!res)
            return json();
        EXPECT_EQ(res->status, expect) << res->body;
        return json::parse(res->body, nullptr, false);
    }
    static inline LocalBackend *backend_ = nullptr;
    static inline OpenAiServer *server_ = nullptr;
};

TEST_F(AgentApi, GrammarConstrainsEveryChoiceToTheLanguage) {
    const json r = post("/v1/completions", {{"prompt", "Once upon a time"},
                                            {"grammar", R"(root ::= ("yes" | "no") ".")"},
                                            {"max_tokens", 20},
                                            {"n", 3},
                                            {"temperature", 1.0},
                                            {"seed", 7}});
    ASSERT_EQ(r["choices"].size(), 3u);
    for (const json &c : r["choices"]) {
        const std::string t = c["text"];
        EXPECT_TRUE(t == "yes." || t == "no.") << t;
        EXPECT_EQ(c["finish_reason"], "stop");  // the grammar is complete: only EOS is left
    }
}

TEST_F(AgentApi, JsonSchemaGivesAParseableObjectOfTheSchema) {
    const json schema = {
        {"type", "object"},
        {"properties",
         {{"name", {{"type", "string"}, {"maxLength", 6}}}, {"age", {{"type", "integer"}}}}},
        {"required", {"name", "age"}},
        {"additionalProperties", false}};
    const json r =
        post("/v1/completions",
             {{"prompt", "Lily was"},
              {"response_format",
               {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", schema}}}}},
              {"max_tokens", 200},
              {"temperature", 0}});
    const json obj = json::parse(r["choices"][0]["text"].get<std::string>(), nullptr, false);
    ASSERT_TRUE(obj.is_object()) << r.dump();
    EXPECT_TRUE(obj["name"].is_string());
    EXPECT_LE(obj["name"].get<std::string>().size(), 6u);
    EXPECT_TRUE(obj["age"].is_number_integer());
    EXPECT_EQ(obj.size(), 2u);
}

TEST_F(AgentApi, BadGrammarIs400NamingTheField) {
    const json e =
        post("/v1/completions", {{"prompt", "x"}, {"grammar", "root ::= undefined-rule"}}, 400);
    EXPECT_EQ(e["error"]["param"], "grammar");
}

TEST_F(AgentApi, LogprobsAreTheModelsDistributionAndGreedyPicksTheTopOne) {
    const json r = post(
        "/v1/completions",
        {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}, {"logprobs", 3}});
    const json &lp = r["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 8u) << r.dump();
    std::string joined;
    for (size_t i = 0; i < 8; ++i) {
        const float chosen = lp["token_logprobs"][i];
        EXPECT_LE(chosen, 0.0f);
        const json &top = lp["top_logprobs"][i];
        ASSERT_EQ(top.size(), 3u);
        float best = -INFINITY, sum = 0.0f;
        for (const auto &[tok, v] : top.items()) {
            best = std::max(best, v.get<float>());
            sum += std::exp(v.get<float>());
        }
        EXPECT_FLOAT_EQ(chosen, best);  // greedy: the chosen token is the most likely
        EXPECT_LE(sum, 1.0f + 1e-4f);
        EXPECT_EQ(lp["text_offset"][i], joined.size());
        joined += lp["tokens"][i].get<std::string>();
    }
    EXPECT_EQ(joined, r["choices"][0]["text"]);
}

TEST_F(AgentApi, EmbeddingsEqualLibllamasMeanPooledEmbeddings) {
    const json r = post("/v1/embeddings", {{"input", {"Once upon a time", "The cat sat"}}});
    ASSERT_EQ(r["data"].size(), 2u) << r.dump();

    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(stories_path().c_str(), mp);
    ASSERT_NE(model, nullptr);
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    llama_context *ctx = llama_init_from_model(model, cp);
    ASSERT_NE(ctx, nullptr);
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const char *texts[] = {"Once upon a time", "The cat sat"};
    for (int k = 0; k < 2; ++k) {
        std::vector<llama_token> toks(64);
        const int n = llama_tokenize(vocab, texts[k], static_cast<int>(std::strlen(texts[k])),
                                     toks.data(), 64, true, false);
        toks.resize(n);
        llama_memory_clear(llama_get_memory(ctx), true);
        ASSERT_EQ(llama_decode(ctx, llama_batch_get_one(toks.data(), n)), 0);
        const float *e = llama_get_embeddings_seq(ctx, 0);
        ASSERT_NE(e, nullptr);
        const int n_embd = llama_model_n_embd(model);
        double norm = 0;
        for (int i = 0; i < n_embd; ++i)
            norm += double(e[i]) * e[i];
        norm = std::sqrt(norm);
        const json &mine = r["data"][k]["embedding"];
        ASSERT_EQ(mine.size(), static_cast<size_t>(n_embd));
        for (int i = 0; i < n_embd; ++i)
            EXPECT_NEAR(mine[i].get<float>(), e[i] / norm, 2e-3) << "input " << k << " dim " << i;
    }
    EXPECT_EQ(r["usage"]["prompt_tokens"].get<int>() > 0, true);
    llama_free(ctx);
    llama_model_free(model);
}

TEST_F(AgentApi, OllamaGenerateAndTags) {
    const json tags = [] {
        httplib::Client c("127.0.0.1", server_->port());
        auto res = c.Get("/api/tags");
        return res ? json::parse(res->body) : json();
    }();
    ASSERT_EQ(tags["models"].size(), 1u);
    const std::string name = tags["models"][0]["name"];
    const json g = post("/api/generate", {{"model", name},
                                          {"prompt", "Once upon a time"},
                                          {"stream", false},
                                          {"options", {{"num_predict", 6}, {"temperature", 0}}}});
    EXPECT_EQ(g["done"], true);
    EXPECT_EQ(g["eval_count"], 6);
    // the same text as /v1/completions with the same settings
    const json c = post("/v1/completions",
                        {{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}});
    EXPECT_EQ(g["response"], c["choices"][0]["text"]);
    const json e = post("/api/generate", {{"prompt", "x"}, {"options", {{"mirostat", 2}}}}, 400);
    EXPECT_NE(e["error"].get<std::string>().find("options.mirostat"), std::string::npos);
}

TEST_F(AgentApi, ChatEndpointsNeedATemplateAndSayWhy) {
    // stories260K has no chat template: every chat-shaped endpoint is a clear 400
    const json a =
        post("/v1/messages",
             {{"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}, 400);
    EXPECT_EQ(a["type"], "error");
    const json r = post("/v1/responses", {{"input", "hi"}}, 400);
    EXPECT_EQ(r["error"]["code"], "no_chat_template");
}

}  // namespace
}  // namespace colony

namespace colony {
namespace {

uint64_t shared_tokens(uint16_t port) {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Get("/metrics");
    const std::string key = "colony_prompt_tokens_shared_total ";
    const size_t at = res ? res->body.find("\n" + key) : std::string::npos;
    return at == std::string::npos ? 0 : std::stoull(res->body.substr(at + 1 + key.size()));
}

TEST_F(AgentApi, ChoicesCopyThePromptsKvAndGiveTheSameTextAsOneChoice) {
    const std::string prompt =
        "Once upon a time there was a little girl named Lily. She loved to play outside in the "
        "sun with her dog. One day";
    const json one =
        post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}});
    const uint64_t before = shared_tokens(server_->port());
    const json three = post("/v1/completions",
                            {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"n", 3}});
    ASSERT_EQ(three["choices"].size(), 3u);
    for (const json &c : three["choices"])  // a copied KV cache gives the prefilled one's text
        EXPECT_EQ(c["text"], one["choices"][0]["text"]);
    const int n_prompt = three["usage"]["prompt_tokens"];
    EXPECT_EQ(shared_tokens(server_->port()) - before, 2u * static_cast<uint64_t>(n_prompt - 1));
    // with a penalty the copy would miss the history the penalty looks at: no sharing
    const uint64_t mid = shared_tokens(server_->port());
    post("/v1/completions",
         {{"prompt", prompt}, {"max_tokens", 4}, {"n", 2}, {"frequency_penalty", 0.5}});
    EXPECT_EQ(shared_tokens(server_->port()), mid);
}

}  // namespace
}  // namespace colony
