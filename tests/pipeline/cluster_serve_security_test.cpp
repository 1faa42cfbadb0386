// The API's key and TLS through the real commands: `colony serve` (with a
// worker) and `colony run`, with --api-key or COLONY_API_KEY, and
// --ssl-cert/--ssl-key with a self-signed certificate made by openssl.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <cpp-httplib/httplib.h>

#include "cluster_harness.h"
#include "common/test_env.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";
constexpr int kTokens = 16;

/// The coordinator's API, plain or TLS.
struct Api {
    uint16_t port = 0;
    bool tls = false;
};

std::unique_ptr<httplib::Client> client(const Api &api) {
    // A server may close the connection while this client still writes (a
    // 401 answered before the body is read, a TLS port dropping a plain
    // request): like any client, the test must not die of SIGPIPE for it.
    // The servers ignore SIGPIPE themselves (cli/signals.cpp, httplib::Server).
    std::signal(SIGPIPE, SIG_IGN);
    const std::string base =
        std::string(api.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(api.port);
    auto c = std::make_unique<httplib::Client>(base);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    c->enable_server_certificate_verification(false);  // self-signed, made by the test
#endif
    c->set_connection_timeout(5);
    c->set_read_timeout(120);
    return c;
}

HttpReply reply_of(const httplib::Result &res) {
    HttpReply r;
    if (!res)
        return r;
    r.status = res->status;
    r.body = nlohmann::json::parse(res->body, nullptr, false);
    return r;
}

/// POST /v1/completions, greedy; `key` empty: no Authorization header.
HttpReply complete(const Api &api, const std::string &key) {
    auto c = client(api);
    if (!key.empty())
        c->set_bearer_token_auth(key);
    const nlohmann::json body = {{"prompt", kPrompt}, {"max_tokens", kTokens}, {"temperature", 0}};
    return reply_of(c->Post("/v1/completions", body.dump(), "application/json"));
}

bool wait_ok(const Api &api) {
    return eventually(
        [&] {
            const HttpReply r = reply_of(client(api)->Get("/health"));
            return r.status == 200 && r.body.is_object() && r.body.value("status", "") == "ok";
        },
        90000);
}

/// Checks the 401 answers and the keyed answer of an API that requires `key`.
void expect_key_required(const Api &api, const std::string &key, const std::string &ref) {
    for (const std::string &wrong : {std::string(), std::string("not-") + key}) {
        const HttpReply r = complete(api, wrong);
        EXPECT_EQ(r.status, 401) << "key '" << wrong << "': " << r.body.dump();
        ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.body.dump();
        const auto &e = r.body["error"];
        EXPECT_EQ(e.value("type", ""), "authentication_error") << e.dump();
        EXPECT_EQ(e.value("code", ""), wrong.empty() ? "missing_api_key" : "invalid_api_key")
            << e.dump();
        EXPECT_TRUE(e.contains("message") && e["message"].is_string()) << e.dump();
        EXPECT_TRUE(e.contains("param")) << e.dump();
    }
    const HttpReply ok = complete(api, key);
    ASSERT_EQ(ok.status, 200) << ok.body.dump();
    EXPECT_EQ(kPrompt + ok.body["choices"][0].value("text", "") + "\n", ref);
    // /v1/models needs the key too
    auto c = client(api);
    EXPECT_EQ(reply_of(c->Get("/v1/models")).status, 401);
    c->set_bearer_token_auth(key);
    EXPECT_EQ(reply_of(c->Get("/v1/models")).status, 200);
}

/// A self-signed certificate and key for 127.0.0.1 under dir.
std::pair<std::string, std::string> make_certificate(const TempDir &dir) {
    const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " +
                            cert + " -days 2 -subj /CN=127.0.0.1 2>" + dir.file("openssl.err");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << read_text(dir.file("openssl.err"));
    return {cert, key};
}

/// A plain-HTTP request to a TLS port gets no HTTP answer, and the server
/// keeps serving HTTPS after it.
void expect_plain_http_refused(uint16_t port) {
    const HttpReply plain = reply_of(client({port, false})->Get("/health"));
    EXPECT_EQ(plain.status, 0) << "plain HTTP answered on the TLS port: " << plain.body.dump();
    EXPECT_EQ(reply_of(client({port, true})->Get("/health")).status, 200);
}

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
TEST(PipelineServeSecurity, HttpsIsBuilt) {
    FAIL() << "cpp-httplib was built without OpenSSL (LLAMA_OPENSSL in cmake/llama.cmake): "
              "colony cannot serve HTTPS";
}
#else

TEST(PipelineServeSecurity, ServeWithApiKeyFlagAndTls) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    const auto [cert, key_file] = make_certificate(dir);
    const std::string key = "flag-key-0123456789";
    ServeProcess serve(
        dir.file("coordinator"), model, 1,
        {"--split", "0:2,2:5", "--api-key", key, "--ssl-cert", cert, "--ssl-key", key_file});
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    const Api api{serve.api_port(), true};
    ASSERT_TRUE(wait_ok(api)) << serve.log() << w.log();
    expect_key_required(api, key, ref);
    expect_plain_http_refused(serve.api_port());
    // the coordinator does not write the key to its log
    EXPECT_EQ(serve.log().find(key), std::string::npos);
}

TEST(PipelineServeSecurity, ServeWithApiKeyFromTheEnvironment) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    const std::string key = "env-key-9876543210";
    ServeProcess serve(dir.file("coordinator"), model, 1, {"--split", "0:2,2:5"},
                       {"/usr/bin/env", "COLONY_API_KEY=" + key});
    JoinProcess w(dir.file("w1"), serve.coordinator(), serve.token());
    const Api api{serve.api_port(), false};
    ASSERT_TRUE(wait_ok(api)) << serve.log() << w.log();
    expect_key_required(api, key, ref);
}

TEST(PipelineServeSecurity, RunWithApiKeyFlagAndTls) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    const auto [cert, key_file] = make_certificate(dir);
    const std::string key = "run-key-0123456789";
    RunProcess run(dir.file("run"), model,
                   {"--workers", "1", "--api-port", "0", "-t", "1", "--api-key", key, "--ssl-cert",
                    cert, "--ssl-key", key_file},
                   dir.file("tmp"));
    EXPECT_EQ(run.url().rfind("https://", 0), 0u) << run.output();
    const Api api{run.api_port(), true};
    ASSERT_TRUE(wait_ok(api)) << run.output();
    expect_key_required(api, key, ref);
    expect_plain_http_refused(run.api_port());
    // no process of the cluster has the key on its command line
    std::vector<int> pids = child_pids(run.process().pid());
    ASSERT_FALSE(pids.empty());
    for (int pid : pids) {
        for (const std::string &a : process_cmdline(pid))
            EXPECT_EQ(a.find(key), std::string::npos) << "pid " << pid << ": " << a;
    }
}

TEST(PipelineServeSecurity, RunWithApiKeyFromTheEnvironment) {
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, kTokens);
    TempDir dir;
    const std::string key = "run-env-key-42";
    RunProcess run(dir.file("run"), model, {"--workers", "1", "--api-port", "0", "-t", "1"},
                   dir.file("tmp"), {"COLONY_API_KEY=" + key});
    EXPECT_EQ(run.url().rfind("http://", 0), 0u) << run.output();
    const Api api{run.api_port(), false};
    ASSERT_TRUE(wait_ok(api)) << run.output();
    expect_key_required(api, key, ref);
}

#endif

}  // namespace
}  // namespace colony::test
