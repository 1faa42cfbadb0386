// The HTTP API end to end on stories260K (and a synthetic qwen2 with a chat
// template): error statuses and bodies, SSE framing, continuous batching over
// HTTP, cancellation on disconnect, auth, TLS, health/metrics/cluster.
#include <gtest/gtest.h>

#include <cpp-httplib/httplib.h>

#include <cstdlib>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api/local_backend.h"
#include "api/openai/openai_server.h"
#include "api_test_support.h"
#include "runtime/tokenizer.h"

namespace colony {
namespace {

using apitest::backend_options;
using apitest::eventually;
using apitest::metric_value;
using apitest::sixteen_stream_requests;
using apitest::sse_payloads;
using apitest::stories_path;
using apitest::stream_completion;
using apitest::StreamedCompletion;
using nlohmann::json;

constexpr size_t kBodyLimit = 64 * 1024;
constexpr int32_t kPromptLimit = 200;
constexpr int32_t kMaxTokensLimit = 512;

OpenAiServerOptions server_options() {
    OpenAiServerOptions o;
    o.port = 0;
    o.max_body_bytes = kBodyLimit;
    o.max_prompt_tokens = kPromptLimit;
    o.max_tokens_limit = kMaxTokensLimit;
    return o;
}

/// One server on stories260K for the whole suite (8 slots).
class HttpApi : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        backend_ =
            std::make_unique<LocalBackend>(backend_options(stories_path(), 8, 8 * 512)).release();
        backend_->wait_ready();
        server_ = std::make_unique<OpenAiServer>(*backend_, backend_->tokenizer(), server_options())
                      .release();
    }
    static void TearDownTestSuite() {
        delete server_;   // NOLINT: suite-lifetime fixture
        delete backend_;  // NOLINT
        server_ = nullptr;
        backend_ = nullptr;
    }
    static httplib::Client client() {
        httplib::Client c("127.0.0.1", server_->port());
        c.set_read_timeout(60, 0);
        return c;
    }
    static json post_json(const std::string &path, const json &body, int expect_status) {
        auto c = client();
        auto res = c.Post(path, body.dump(), "application/json");
        EXPECT_TRUE(res) << httplib::to_string(res.error());
        if (!res)
            return json();
        EXPECT_EQ(res->status, expect_status) << res->body;
        EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
        return json::parse(res->body, nullptr, false);
    }
    /// An error response's "error" object, checked for OpenAI's shape.
    static json expect_error(const httplib::Result &res, int status) {
        EXPECT_TRUE(res);
        if (!res)
            return json();
        EXPECT_EQ(res->status, status) << res->body;
        const json j = json::parse(res->body, nullptr, false);
        EXPECT_TRUE(j.is_object() && j.contains("error")) << res->body;
        if (!j.is_object() || !j.contains("error"))
            return json();
        const json &e = j["error"];
        EXPECT_TRUE(e["message"].is_string());
        EXPECT_TRUE(e["type"].is_string());
        EXPECT_TRUE(e.contains("param") && e.contains("code"));
        return e;
    }
    static void expect_still_serving() {
        auto c = client();
        auto res = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":2,"temperature":0})",
                          "application/json");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << res->body;
    }
    static LocalBackend *backend_;
    static OpenAiServer *server_;
};
LocalBackend *HttpApi::backend_ = nullptr;
OpenAiServer *HttpApi::server_ = nullptr;

// ---- bad input ---------------------------------------------------------------

TEST_F(HttpApi, MalformedJsonIs400AndTheServerKeepsServing) {
    auto c = client();
    for (const char *body :
         {"{\"prompt\": \"x\"", "not json at all", "[1,2,3]", "", "{\"prompt\":\"\\ud800\"}"}) {
        const json e = expect_error(c.Post("/v1/completions", body, "application/json"), 400);
        EXPECT_EQ(e["type"], "invalid_request_error") << body;
    }
    expect_error(c.Post("/v1/chat/completions", "{{{", "application/json"), 400);
    expect_still_serving();
}

TEST_F(HttpApi, WrongTypesAndValuesAre400NamingTheField) {
    auto c = client();
    const std::pair<const char *, const char *> cases[] = {
        {R"({"prompt":"x","max_tokens":"ten"})", "max_tokens"},
        {R"({"prompt":"x","temperature":"hot"})", "temperature"},
        {R"({"prompt":"x","top_p":7})", "top_p"},
        {R"({"prompt":["a","b"]})", "prompt"},
        {R"({"prompt":"x","stop":{"a":1}})", "stop"},
        {R"({"prompt":"x","stream":1})", "stream"},
        {R"({"prompt":[1,99999]})", "prompt[1]"},
    };
    for (const auto &[body, param] : cases) {
        const json e = expect_error(c.Post("/v1/completions", body, "application/json"), 400);
        EXPECT_EQ(e["param"], param) << body;
        EXPECT_NE(e["message"].get<std::string>().find(param), std::string::npos) << e.dump();
    }
    const json n =
        expect_error(c.Post("/v1/completions", R"({"prompt":"x","n":9})", "application/json"), 400);
    EXPECT_EQ(n["param"], "n");
    const json mt = expect_error(
        c.Post("/v1/completions", R"({"prompt":"x","max_tokens":513})", "application/json"), 400);
    EXPECT_EQ(mt["param"], "max_tokens");
    expect_still_serving();
}

TEST_F(HttpApi, HugeBodyIs413) {
    auto c = client();
    const std::string big = json{{"prompt", std::string(kBodyLimit + 1000, 'a')}}.dump();
    const json e = expect_error(c.Post("/v1/completions", big, "application/json"), 413);
    EXPECT_EQ(e["code"], "request_too_large");
    expect_still_serving();
}

TEST_F(HttpApi, PromptOverTheTokenLimitIs413) {
    auto c = client();
    std::string text;
    for (int i = 0; i < kPromptLimit; ++i)
        text += "the cat ";
    const json e = expect_error(
        c.Post("/v1/completions", json{{"prompt", text}}.dump(), "application/json"), 413);
    EXPECT_EQ(e["param"], "prompt");
    EXPECT_EQ(e["code"], "prompt_too_long");
    expect_still_serving();
}

TEST_F(HttpApi, UnknownModelIs404AndUnknownRouteIs404) {
    auto c = client();
    const json e = expect_error(
        c.Post("/v1/completions", R"({"model":"gpt-4o","prompt":"x"})", "application/json"), 404);
    EXPECT_EQ(e["code"], "model_not_found");
    EXPECT_EQ(e["param"], "model");
    expect_error(c.Get("/v1/models/gpt-4o"), 404);
    const json r = expect_error(c.Get("/v1/nothing"), 404);
    EXPECT_EQ(r["code"], "not_found");
    expect_error(c.Post("/v1/audio/speech", "{}", "application/json"), 404);
    // the right name works
    auto ok = c.Post(
        "/v1/completions",
        json{{"model", backend_->model_info().id}, {"prompt", "x"}, {"max_tokens", 1}}.dump(),
        "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
}

TEST_F(HttpApi, ChatWithoutTemplateIs400WhileCompletionsWork) {
    auto c = client();
    const json e =
        expect_error(c.Post("/v1/chat/completions",
                            R"({"messages":[{"role":"user","content":"hi"}]})", "application/json"),
                     400);
    EXPECT_EQ(e["code"], "no_chat_template");
    EXPECT_NE(e["message"].get<std::string>().find("/v1/completions"), std::string::npos);
    const json ok =
        post_json("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 8}}, 200);
    EXPECT_EQ(ok["object"], "text_completion");
}

// ---- responses -----------------------------------------------------------------

TEST_F(HttpApi, CompletionHasOpenAiShapeAndUsage) {
    const json j = post_json("/v1/completions",
                             {{"prompt", "Once upon a time"},
                              {"max_tokens", 12},
                              {"temperature", 0},
                              {"ignore_eos", true}},
                             200);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_TRUE(j["id"].get<std::string>().rfind("cmpl-", 0) == 0);
    EXPECT_EQ(j["model"], backend_->model_info().id);
    EXPECT_TRUE(j["created"].is_number_integer());
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["index"], 0);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_FALSE(j["choices"][0]["text"].get<std::string>().empty());
    const auto prompt_tokens =
        backend_->tokenizer().tokenize("Once upon a time", true, true).size();
    EXPECT_EQ(j["usage"]["prompt_tokens"], prompt_tokens);
    EXPECT_EQ(j["usage"]["completion_tokens"], 12);
    EXPECT_EQ(j["usage"]["total_tokens"], prompt_tokens + 12);
    // default max_tokens for completions is 16
    const json d = post_json("/v1/completions",
                             {{"prompt", "Once"}, {"temperature", 0}, {"ignore_eos", true}}, 200);
    EXPECT_EQ(d["usage"]["completion_tokens"], 16);
}

TEST_F(HttpApi, CompletionSseFramingIsExactAndMatchesTheWholeAnswer) {
    const json req = {{"prompt", "Once upon a time"},
                      {"max_tokens", 20},
                      {"temperature", 0},
                      {"ignore_eos", true}};
    const json whole = post_json("/v1/completions", req, 200);

    json sreq = req;
    sreq["stream"] = true;
    sreq["stream_options"] = {{"include_usage", true}};
    auto c = client();
    auto res = c.Post("/v1/completions", sreq.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
    EXPECT_EQ(res->get_header_value("Cache-Control"), "no-cache");
    const auto events = sse_payloads(res->body);
    ASSERT_GE(events.size(), 4u);
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text;
    std::string id;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        const json ev = json::parse(events[i]);
        EXPECT_EQ(ev["object"], "text_completion");
        if (id.empty())
            id = ev["id"];
        EXPECT_EQ(ev["id"], id) << "one id for the whole stream";
        if (i + 2 == events.size()) {  // usage chunk
            EXPECT_TRUE(ev["choices"].empty());
            EXPECT_EQ(ev["usage"]["completion_tokens"], 20);
            EXPECT_EQ(ev["usage"], whole["usage"]);
            continue;
        }
        EXPECT_TRUE(ev.contains("usage") && ev["usage"].is_null()) << events[i];
        text += ev["choices"][0]["text"].get<std::string>();
        const bool last = i + 3 == events.size();
        if (last) {
            EXPECT_EQ(ev["choices"][0]["finish_reason"], "length");
        } else {
            EXPECT_TRUE(ev["choices"][0]["finish_reason"].is_null()) << events[i];
        }
    }
    EXPECT_EQ(text, whole["choices"][0]["text"]);

    // without include_usage: no usage field, no usage chunk
    sreq.erase("stream_options");
    auto plain = c.Post("/v1/completions", sreq.dump(), "application/json");
    ASSERT_TRUE(plain);
    const auto ev2 = sse_payloads(plain->body);
    ASSERT_GE(ev2.size(), 2u);
    for (size_t i = 0; i + 1 < ev2.size(); ++i) {
        const json ev = json::parse(ev2[i]);
        EXPECT_FALSE(ev.contains("usage"));
        EXPECT_EQ(ev["choices"].size(), 1u);
    }
}

TEST_F(HttpApi, StopSequenceEndsTheTextBeforeIt) {
    const json req = {{"prompt", "Once upon a time"},
                      {"max_tokens", 60},
                      {"temperature", 0},
                      {"ignore_eos", true}};
    const std::string full = post_json("/v1/completions", req, 200)["choices"][0]["text"];
    ASSERT_GT(full.size(), 40u);
    // a stop sequence that first occurs in the middle of the text
    std::string stop;
    size_t at = std::string::npos;
    for (size_t start = 20; start + 4 < full.size(); ++start) {
        stop = full.substr(start, 4);
        at = full.find(stop);
        if (at >= 10)
            break;
    }
    ASSERT_NE(at, std::string::npos);
    json sreq = req;
    sreq["stop"] = json::array({"zzzz-never", stop});
    const json j = post_json("/v1/completions", sreq, 200);
    EXPECT_EQ(j["choices"][0]["text"], full.substr(0, at));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 60);
    // streaming gives the same text
    sreq["stream"] = true;
    auto c = client();
    auto res = c.Post("/v1/completions", sreq.dump(), "application/json");
    ASSERT_TRUE(res);
    std::string text;
    std::string finish;
    for (const auto &p : sse_payloads(res->body)) {
        if (p == "[DONE]")
            break;
        const json ev = json::parse(p);
        text += ev["choices"][0]["text"].get<std::string>();
        if (!ev["choices"][0]["finish_reason"].is_null())
            finish = ev["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, full.substr(0, at));
    EXPECT_EQ(finish, "stop");
}

TEST_F(HttpApi, SixteenSimultaneousStreamsMatchWhatEachGetsAlone) {
    const std::vector<json> reqs = sixteen_stream_requests(32);
    const uint16_t port = server_->port();
    std::vector<StreamedCompletion> alone;
    std::set<std::string> distinct;
    for (size_t i = 0; i < reqs.size(); ++i) {
        alone.push_back(stream_completion(port, reqs[i]));
        ASSERT_TRUE(alone[i].ok()) << "request " << i << " alone: " << alone[i].describe();
        ASSERT_FALSE(alone[i].text.empty()) << "request " << i;
        distinct.insert(alone[i].text);
    }
    // 16 prompts, 16 continuations: a server that answered every prompt the
    // same way would otherwise pass
    EXPECT_EQ(distinct.size(), reqs.size());
    std::vector<std::future<StreamedCompletion>> together;
    for (const auto &r : reqs)
        together.push_back(std::async(std::launch::async, stream_completion, port, r, 120));
    for (size_t i = 0; i < reqs.size(); ++i) {
        const StreamedCompletion got = together[i].get();
        ASSERT_TRUE(got.ok()) << "request " << i << " together: " << got.describe();
        EXPECT_EQ(got.text, alone[i].text) << "request " << i;
        EXPECT_EQ(got.finish_reason, alone[i].finish_reason) << "request " << i;
    }
    EXPECT_EQ(backend_->stats().stages.at(0).kv_used_cells, 0u);
}

TEST_F(HttpApi, ModelsHealthClusterAndMetrics) {
    auto c = client();
    auto models = c.Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 200);
    const json m = json::parse(models->body);
    EXPECT_EQ(m["object"], "list");
    ASSERT_EQ(m["data"].size(), 1u);
    EXPECT_EQ(m["data"][0]["id"], backend_->model_info().id);
    EXPECT_EQ(m["data"][0]["object"], "model");
    EXPECT_EQ(m["data"][0]["chat_template"], false);
    auto one = c.Get("/v1/models/" + backend_->model_info().id);
    ASSERT_TRUE(one);
    EXPECT_EQ(json::parse(one->body)["id"], backend_->model_info().id);

    auto health = c.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(json::parse(health->body)["status"], "ok");

    auto cluster = c.Get("/v1/cluster");
    ASSERT_TRUE(cluster);
    const json cj = json::parse(cluster->body);
    ASSERT_EQ(cj["nodes"].size(), 1u);
    EXPECT_EQ(cj["nodes"][0]["layers"]["first"], 0);
    EXPECT_EQ(cj["nodes"][0]["layers"]["last"], backend_->model_info().n_layer);
    EXPECT_EQ(cj["nodes"][0]["state"], "ready");
    EXPECT_EQ(cj["model"]["n_layer"], backend_->model_info().n_layer);

    post_json("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 3}}, 200);
    auto metrics = c.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_EQ(metrics->get_header_value("Content-Type"),
              "text/plain; version=0.0.4; charset=utf-8");
    const std::string &t = metrics->body;
    EXPECT_GE(
        metric_value(t, "colony_http_requests_total", R"(endpoint="/v1/completions",status="200")"),
        1);
    EXPECT_GT(metric_value(t, "colony_generated_tokens_total"), 0);
    EXPECT_GT(metric_value(t, "colony_prompt_tokens_total"), 0);
    EXPECT_GE(metric_value(t, "colony_time_to_first_token_seconds_count"), 1);
    EXPECT_GE(metric_value(t, "colony_time_per_output_token_seconds_count"), 1);
    EXPECT_EQ(metric_value(t, "colony_requests_queued"), 0);
    EXPECT_EQ(metric_value(t, "colony_sequence_slots"), 8);
    const std::string stage = "stage=\"0\",node=\"local\",layers=\"0-" +
                              std::to_string(backend_->model_info().n_layer) + "\"";
    EXPECT_GT(metric_value(t, "colony_stage_compute_seconds_total", stage), 0);
    EXPECT_EQ(metric_value(t, "colony_kv_cache_used_cells", stage), 0);
    EXPECT_EQ(metric_value(t, "colony_kv_cache_size_cells", stage), 8 * 512);
    EXPECT_EQ(metric_value(t, "colony_backend_ready", "status=\"ok\""), 1);

    auto page = c.Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_NE(page->body.find("<title>colony</title>"), std::string::npos);
    auto js = c.Get("/app.js");
    ASSERT_TRUE(js);
    EXPECT_EQ(js->status, 200);
    EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
}

// ---- cancellation, queueing ------------------------------------------------------

/// A server over a slowed-down backend: generations last long enough to interrupt.
class SlowServer {
  public:
    explicit SlowServer(uint32_t n_parallel, size_t max_queue, std::chrono::milliseconds delay) {
        LocalBackendOptions o = backend_options(stories_path(), n_parallel, n_parallel * 2048);
        o.max_queue = max_queue;
        local_ = std::make_unique<LocalBackend>(o);
        local_->wait_ready();
        slow_ = std::make_unique<apitest::SlowBackend>(*local_, delay);
        OpenAiServerOptions so = server_options();
        so.max_tokens_limit = 100000;
        server_ = std::make_unique<OpenAiServer>(*slow_, local_->tokenizer(), so);
    }
    uint16_t port() const { return server_->port(); }
    LocalBackend &local() { return *local_; }
    std::string metrics() {
        httplib::Client c("127.0.0.1", port());
        auto r = c.Get("/metrics");
        return r ? r->body : std::string();
    }

  private:
    std::unique_ptr<LocalBackend> local_;
    std::unique_ptr<apitest::SlowBackend> slow_;
    std::unique_ptr<OpenAiServer> server_;
};

const char *kLongStream =
    R"({"prompt":"Once upon a time","max_tokens":5000,"ignore_eos":true,"stream":true})";
const char *kLongWhole = R"({"prompt":"Once upon a time","max_tokens":5000,"ignore_eos":true})";

TEST(HttpApiCancel, ClientThatDisconnectsMidStreamFreesItsKvCache) {
    SlowServer s(2, 4, std::chrono::milliseconds(10));
    const std::string labels = "stage=\"0\",node=\"local\",layers=\"0-" +
                               std::to_string(s.local().model_info().n_layer) + "\"";
    // read the first few events, then hang up
    const apitest::RawResponse r =
        apitest::raw_http(s.port(), apitest::raw_post("/v1/completions", kLongStream),
                          [](const apitest::RawResponse &p) { return p.body.size() >= 300; });
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("data: "), std::string::npos);
    EXPECT_GT(s.local().stats().n_running, 0u)
        << "the generation was still running when the client left";
    EXPECT_TRUE(eventually([&] {
        const std::string t = s.metrics();
        return metric_value(t, "colony_kv_cache_used_cells", labels) == 0 &&
               metric_value(t, "colony_requests_running") == 0 &&
               metric_value(t, "colony_client_disconnects_total") == 1;
    })) << s.metrics();
    // a non-streaming client that gives up while its answer is generated is noticed too
    apitest::raw_http(s.port(), apitest::raw_post("/v1/completions", kLongWhole),
                      [&](const apitest::RawResponse &) {
                          return s.local().stats().stages.at(0).kv_used_cells > 0;
                      });
    EXPECT_TRUE(eventually([&] {
        const std::string t = s.metrics();
        return metric_value(t, "colony_client_disconnects_total") == 2 &&
               metric_value(t, "colony_kv_cache_used_cells", labels) == 0 &&
               metric_value(t, "colony_requests_running") == 0;
    })) << s.metrics();
    EXPECT_EQ(s.local().stats().n_running, 0u) << s.metrics();
}

TEST(HttpApiCancel, FullQueueIs429) {
    SlowServer s(1, 1, std::chrono::milliseconds(10));
    std::atomic<bool> release{false};
    std::vector<std::future<apitest::RawResponse>> held;
    // one runs, one waits in the queue; both stay connected until released
    for (int i = 0; i < 2; ++i) {
        held.push_back(std::async(std::launch::async, [&] {
            return apitest::raw_http(s.port(), apitest::raw_post("/v1/completions", kLongStream),
                                     [&](const apitest::RawResponse &) { return release.load(); });
        }));
        ASSERT_TRUE(eventually([&] {
            const BackendStats st = s.local().stats();
            return st.n_running + st.n_queued == static_cast<size_t>(i + 1);
        }));
    }
    httplib::Client c("127.0.0.1", s.port());
    auto res = c.Post("/v1/completions", R"({"prompt":"x","max_tokens":2})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 429);
    const json e = json::parse(res->body)["error"];
    EXPECT_EQ(e["type"], "rate_limit_error");
    EXPECT_EQ(e["code"], "queue_full");
    EXPECT_EQ(metric_value(s.metrics(), "colony_requests_queued"), 1);
    release = true;
    for (auto &f : held)
        EXPECT_EQ(f.get().status, 200);
    // after the held clients hang up, the server accepts again
    EXPECT_TRUE(
        eventually([&] { return s.local().stats().n_running + s.local().stats().n_queued == 0; }));
    auto again = c.Post("/v1/completions", R"({"prompt":"x","max_tokens":2})", "application/json");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200);
}

// ---- auth, TLS, not ready -----------------------------------------------------------

TEST(HttpApiAuth, ApiKeyIsRequiredOnApiRoutes) {
    LocalBackend backend(backend_options(stories_path(), 2, 512));
    backend.wait_ready();
    OpenAiServerOptions o = server_options();
    o.api_key = "s3cret-key";
    OpenAiServer server(backend, backend.tokenizer(), o);
    httplib::Client c("127.0.0.1", server.port());
    const char *body = R"({"prompt":"Once","max_tokens":2})";

    auto none = c.Post("/v1/completions", body, "application/json");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401);
    EXPECT_EQ(json::parse(none->body)["error"]["code"], "missing_api_key");
    EXPECT_EQ(json::parse(none->body)["error"]["type"], "authentication_error");

    httplib::Headers wrong = {{"Authorization", "Bearer s3cret-kex"}};
    auto bad = c.Post("/v1/completions", wrong, body, "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 401);
    EXPECT_EQ(json::parse(bad->body)["error"]["code"], "invalid_api_key");
    for (const char *path : {"/v1/models", "/v1/cluster", "/metrics"}) {
        auto r = c.Get(path);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 401) << path;
    }

    httplib::Headers right = {{"Authorization", "Bearer s3cret-key"}};
    auto ok = c.Post("/v1/completions", right, body, "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
    auto models = c.Get("/v1/models", right);
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 200);
    // health and the dashboard page stay public
    auto health = c.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto page = c.Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
}

TEST(HttpApiTls, ServesHttpsWithACertificateAndRefusesBadFiles) {
    test::TempDir dir;
    const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " +
                            cert + " -days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
    LocalBackend backend(backend_options(stories_path(), 1, 256));
    backend.wait_ready();
    OpenAiServerOptions o = server_options();
    o.ssl_cert = cert;
    o.ssl_key = key;
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    ASSERT_TRUE(openai_server_has_tls());
    OpenAiServer server(backend, backend.tokenizer(), o);
    EXPECT_TRUE(server.tls());
    httplib::SSLClient c("127.0.0.1", server.port());
    c.enable_server_certificate_verification(false);
    auto res = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":3})", "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["object"], "text_completion");
    // plain HTTP to the TLS port gets no HTTP answer
    httplib::Client plain("127.0.0.1", server.port());
    plain.set_read_timeout(2, 0);
    auto p = plain.Get("/health");
    EXPECT_TRUE(!p || p->status != 200);

    OpenAiServerOptions bad = server_options();
    bad.ssl_cert = cert;
    EXPECT_THROW(OpenAiServer(backend, backend.tokenizer(), bad), Error);  // no key
    bad.ssl_key = cert;                                                    // not a key
    EXPECT_THROW(OpenAiServer(backend, backend.tokenizer(), bad), Error);
#else
    EXPECT_FALSE(openai_server_has_tls());
    try {
        OpenAiServer server(backend, backend.tokenizer(), o);
        ADD_FAILURE() << "a build without TLS accepted --ssl-cert";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    }
    ADD_FAILURE()
        << "cpp-httplib was built without OpenSSL (LLAMA_OPENSSL OFF in cmake/llama.cmake): "
           "colony cannot serve HTTPS";
#endif
}

TEST(HttpApiHealth, BackendDetailsAreMergedAndNeedTheKeyWhenOneIsSet) {
    /// A not-ready backend with details, as the pipeline coordinator has.
    class DetailBackend : public apitest::NotReadyBackend {
      public:
        using NotReadyBackend::NotReadyBackend;
        std::string health_detail_json() const override {
            return R"({"workers":[{"address":"10.0.0.2"}],"status":"overridden"})";
        }
    };
    Tokenizer tok(stories_path());
    BackendModelInfo info;
    info.id = "m";
    info.n_ctx_seq = 256;
    info.n_vocab = static_cast<uint32_t>(tok.n_vocab());
    DetailBackend backend(info, "no workers", "waiting for 1 worker");
    {
        OpenAiServer open(backend, tok, server_options());
        httplib::Client c("127.0.0.1", open.port());
        auto h = c.Get("/health");
        ASSERT_TRUE(h);
        EXPECT_EQ(h->status, 503);
        const json j = json::parse(h->body);
        EXPECT_EQ(j["status"], "no workers");  // health() wins over the details
        EXPECT_EQ(j["reason"], "waiting for 1 worker");
        EXPECT_EQ(j["workers"][0]["address"], "10.0.0.2");
    }
    OpenAiServerOptions so = server_options();
    so.api_key = "k-1";
    OpenAiServer keyed(backend, tok, so);
    httplib::Client c("127.0.0.1", keyed.port());
    auto anonymous = c.Get("/health");
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status, 503);
    const json a = json::parse(anonymous->body);
    EXPECT_EQ(a["status"], "no workers");
    EXPECT_FALSE(a.contains("workers")) << "addresses only for holders of the key";
    auto with_key = c.Get("/health", httplib::Headers{{"Authorization", "Bearer k-1"}});
    ASSERT_TRUE(with_key);
    EXPECT_EQ(json::parse(with_key->body)["workers"][0]["address"], "10.0.0.2");
}

TEST(HttpApiNotReady, NoWorkersIs503WithTheReason) {
    Tokenizer tok(stories_path());
    BackendModelInfo info;
    info.id = "m";
    info.n_ctx_seq = 256;
    info.n_vocab = static_cast<uint32_t>(tok.n_vocab());
    apitest::NotReadyBackend backend(info, "no workers", "waiting for 2 workers to join");
    OpenAiServer server(backend, tok, server_options());
    httplib::Client c("127.0.0.1", server.port());
    auto h = c.Get("/health");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 503);
    EXPECT_EQ(json::parse(h->body)["status"], "no workers");
    EXPECT_EQ(json::parse(h->body)["reason"], "waiting for 2 workers to join");
    auto r = c.Post("/v1/completions", R"({"prompt":"Once"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    const json e = json::parse(r->body)["error"];
    EXPECT_EQ(e["type"], "unavailable_error");
    EXPECT_NE(e["message"].get<std::string>().find("waiting for 2 workers"), std::string::npos);
}

// ---- chat on a model with a template ------------------------------------------------------

TEST(HttpApiChat, ChatTemplateModelStreamsChatChunks) {
    test::TempDir dir;
    const std::string model = apitest::tiny_qwen2_path(dir.path());
    LocalBackend backend(backend_options(model, 2, 2 * 256));
    backend.wait_ready();
    ASSERT_TRUE(backend.tokenizer().has_chat_template());
    OpenAiServer server(backend, backend.tokenizer(), server_options());
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    auto models = c.Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(json::parse(models->body)["data"][0]["chat_template"], true);
    const json req = {{"messages",
                       {{{"role", "system"}, {"content", "You are terse."}},
                        {{"role", "user"}, {"content", "Hello!"}}}},
                      {"max_tokens", 10},
                      {"temperature", 0},
                      {"ignore_eos", true}};
    auto whole = c.Post("/v1/chat/completions", req.dump(), "application/json");
    ASSERT_TRUE(whole);
    ASSERT_EQ(whole->status, 200) << whole->body;
    const json w = json::parse(whole->body);
    EXPECT_EQ(w["object"], "chat.completion");
    EXPECT_TRUE(w["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
    EXPECT_EQ(w["choices"][0]["message"]["role"], "assistant");
    EXPECT_TRUE(w["choices"][0]["message"]["content"].is_string());
    EXPECT_EQ(w["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(w["usage"]["completion_tokens"], 10);
    // the prompt is the ChatML rendering
    const std::string rendered =
        backend.tokenizer().apply_chat_template({{"system", "You are terse."}, {"user", "Hello!"}});
    EXPECT_NE(rendered.find("<|im_start|>assistant"), std::string::npos);
    EXPECT_EQ(w["usage"]["prompt_tokens"],
              backend.tokenizer().tokenize(rendered, true, true).size());

    json sreq = req;
    sreq["stream"] = true;
    sreq["stream_options"] = {{"include_usage", true}};
    auto stream = c.Post("/v1/chat/completions", sreq.dump(), "application/json");
    ASSERT_TRUE(stream);
    const auto events = sse_payloads(stream->body);
    ASSERT_GE(events.size(), 4u);
    EXPECT_EQ(events.back(), "[DONE]");
    const json first = json::parse(events[0]);
    EXPECT_EQ(first["object"], "chat.completion.chunk");
    EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(first["choices"][0]["delta"]["content"], "");
    std::string content;
    for (size_t i = 1; i + 3 < events.size(); ++i) {
        const json ev = json::parse(events[i]);
        EXPECT_FALSE(ev["choices"][0]["delta"].contains("role"));
        EXPECT_TRUE(ev["choices"][0]["finish_reason"].is_null());
        content += ev["choices"][0]["delta"]["content"].get<std::string>();
    }
    const json fin = json::parse(events[events.size() - 3]);
    EXPECT_TRUE(fin["choices"][0]["delta"].empty());
    EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"], w["usage"]);
    EXPECT_EQ(content, w["choices"][0]["message"]["content"]);
}

}  // namespace
}  // namespace colony
