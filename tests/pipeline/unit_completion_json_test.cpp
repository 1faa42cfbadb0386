// OpenAI completions request parsing and response shape.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/completion_json.h"
#include "util/error.h"

namespace colony {
namespace {

TEST(CompletionJson, ParsesTheOpenAiFields) {
    const CompletionParams p = parse_completion_request(
        R"({"model":"x","prompt":"Hi","max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,
            "min_p":0.1,"seed":42,"presence_penalty":0.5,"frequency_penalty":-0.5,
            "stop":["\n","END"],"ignore_eos":true,"stream":false,"n":1})");
    EXPECT_EQ(p.prompt, "Hi");
    EXPECT_EQ(p.max_tokens, 7);
    EXPECT_EQ(p.sampling.temperature, 0.0f);
    EXPECT_EQ(p.sampling.top_p, 0.5f);
    EXPECT_EQ(p.sampling.top_k, 3);
    EXPECT_FLOAT_EQ(p.sampling.min_p, 0.1f);
    EXPECT_EQ(p.sampling.seed, 42u);
    EXPECT_EQ(p.sampling.presence_penalty, 0.5f);
    EXPECT_EQ(p.sampling.frequency_penalty, -0.5f);
    EXPECT_EQ(p.stop, (std::vector<std::string>{"\n", "END"}));
    EXPECT_TRUE(p.ignore_eos);
    EXPECT_EQ(parse_completion_request(R"({"prompt":["one"],"stop":"x"})").stop,
              (std::vector<std::string>{"x"}));
    EXPECT_EQ(parse_completion_request(R"({"prompt":"a"})").max_tokens, 16);
}

TEST(CompletionJson, BadRequestsNameTheField) {
    const std::pair<const char *, const char *> cases[] = {
        {"not json", "not valid JSON"},
        {"[1]", "JSON object"},
        {"{}", "'prompt' is required"},
        {R"({"prompt":""})", "'prompt' is empty"},
        {R"({"prompt":7})", "'prompt' must be"},
        {R"({"prompt":"a","max_tokens":0})", "'max_tokens'"},
        {R"({"prompt":"a","max_tokens":"5"})", "'max_tokens' must be an integer"},
        {R"({"prompt":"a","temperature":-1})", "'temperature'"},
        {R"({"prompt":"a","top_p":2})", "'top_p'"},
        {R"({"prompt":"a","stream":true})", "not supported"},
        {R"({"prompt":"a","n":2})", "'n'"},
        {R"({"prompt":"a","stop":[1]})", "'stop'"},
        {R"({"prompt":"a","stop":["a","b","c","d","e"]})", "'stop'"},
    };
    for (const auto &[body, expect] : cases) {
        try {
            parse_completion_request(body);
            ADD_FAILURE() << body << " was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            EXPECT_NE(std::string(e.what()).find(expect), std::string::npos)
                << body << " -> " << e.what();
        }
    }
}

TEST(CompletionJson, ResponseHasTheOpenAiShape) {
    CompletionResult r;
    r.text = "hello";
    r.finish_reason = "length";
    r.prompt_tokens = 3;
    r.completion_tokens = 2;
    const auto j = nlohmann::json::parse(completion_response_json(r, "m.gguf", "cmpl-1", 1700));
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["id"], "cmpl-1");
    EXPECT_EQ(j["created"], 1700);
    EXPECT_EQ(j["model"], "m.gguf");
    EXPECT_EQ(j["choices"][0]["text"], "hello");
    EXPECT_EQ(j["choices"][0]["index"], 0);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["total_tokens"], 5);
    const auto e = nlohmann::json::parse(error_json("boom", "unavailable_error", 503));
    EXPECT_EQ(e["error"]["message"], "boom");
    EXPECT_EQ(e["error"]["code"], 503);
    EXPECT_EQ(http_status_for(ErrorCode::kUnavailable), 503);
    EXPECT_EQ(http_status_for(ErrorCode::kOutOfRange), 400);
    EXPECT_EQ(http_status_for(ErrorCode::kInternal), 500);
}

}  // namespace
}  // namespace colony
