// Unit tests of the API layer's pieces that need no model: stop sequences,
// ubatch planning, request validation, error mapping, metrics text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/openai/api_error.h"
#include "api/openai/metrics.h"
#include "api/openai/request_parse.h"
#include "api/openai/response_json.h"
#include "api/openai/stop_matcher.h"
#include "api_test_support.h"
#include "runtime/ubatch_builder.h"

namespace colony {
namespace {

using nlohmann::json;

// ---- StopMatcher -----------------------------------------------------------

TEST(StopMatcher, HoldsBackAPossibleStartAndCutsBeforeTheStop) {
    StopMatcher m({"</end>"});
    EXPECT_EQ(m.push("Hello </"), "Hello ");  // "</" may start "</end>"
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.push("e"), "");
    EXPECT_EQ(m.push("nd> and more"), "");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.push("ignored"), "");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, ReleasesHeldTextWhenItCannotBeAStop) {
    StopMatcher m({"STOP"});
    EXPECT_EQ(m.push("a ST"), "a ");
    EXPECT_EQ(m.push("ART"), "START");
    EXPECT_EQ(m.push("x S"), "x ");
    EXPECT_EQ(m.flush(), "S");
    EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, EarliestOfSeveralStopsWinsAndStopInsideOneChunk) {
    StopMatcher m({"world", "lo w"});
    EXPECT_EQ(m.push("hello world"), "hel");
    EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, WithoutStopsEverythingPassesAtOnce) {
    StopMatcher m({"", ""});
    EXPECT_EQ(m.push("abc"), "abc");
    EXPECT_EQ(m.flush(), "");
}

// ---- ubatch planning -------------------------------------------------------

TEST(UbatchBuilder, DecodeRowsComeFirstThenPrefillChunksUpToTheBudget) {
    const std::vector<int32_t> p0 = {1, 2, 3}, p1 = {10, 11, 12, 13, 14, 15, 16, 17}, p2 = {20, 21};
    std::vector<BatchSeqView> views = {
        {0, &p0, 3, 5, 99},  // generating: one decode row at position 5
        {1, &p1, 2, 2, -1},  // prefilling: 6 prompt tokens left, from position 2
        {2, &p2, 0, 0, -1},  // not started
    };
    const UbatchPlan plan = build_ubatch(views, 5);
    ASSERT_EQ(plan.tokens.size(), 5u);
    EXPECT_EQ(plan.tokens, (std::vector<int32_t>{99, 12, 13, 14, 15}));
    EXPECT_EQ(plan.pos, (std::vector<int32_t>{5, 2, 3, 4, 5}));
    EXPECT_EQ(plan.seq_id, (std::vector<int32_t>{0, 1, 1, 1, 1}));
    // only the decode row wants logits: sequence 1's prompt does not end here
    EXPECT_EQ(plan.out_ids, (std::vector<int32_t>{0}));
    EXPECT_EQ(plan.out_seq_index, (std::vector<size_t>{0}));
    EXPECT_EQ(plan.n_prompt_taken, (std::vector<uint32_t>{0, 4, 0}));
}

TEST(UbatchBuilder, PromptEndGetsAnOutputRowAndLaterSequencesShareTheRest) {
    const std::vector<int32_t> p0 = {1, 2}, p1 = {5, 6, 7};
    std::vector<BatchSeqView> views = {{3, &p0, 0, 0, -1}, {1, &p1, 1, 1, -1}};
    const UbatchPlan plan = build_ubatch(views, 16);
    EXPECT_EQ(plan.tokens, (std::vector<int32_t>{1, 2, 6, 7}));
    EXPECT_EQ(plan.pos, (std::vector<int32_t>{0, 1, 1, 2}));
    EXPECT_EQ(plan.out_ids, (std::vector<int32_t>{1, 3}));
    EXPECT_EQ(plan.out_seq_index, (std::vector<size_t>{0, 1}));
}

// Speculative decoding: drafts follow their own decode row (a sequence's rows
// stay together), each an output, and leave room for the other sequences'
// decode rows; prompts get what is left.
TEST(UbatchBuilder, DraftsFollowTheirDecodeRowAndLeaveRoomForOtherDecodes) {
    const std::vector<int32_t> p = {1, 2, 3}, q = {7, 8, 9, 10};
    const std::vector<int32_t> d0 = {40, 41, 42, 43, 44}, d1 = {50};
    std::vector<BatchSeqView> views = {{0, &p, 3, 5, 30}, {1, &p, 3, 8, 31}, {2, &q, 0, 0, -1}};
    views[0].drafts = &d0;
    views[1].drafts = &d1;
    UbatchPlan plan = build_ubatch(views, 6);  // 2 decode rows + 4 for drafts
    EXPECT_EQ(plan.tokens, (std::vector<int32_t>{30, 40, 41, 42, 43, 31}));
    EXPECT_EQ(plan.pos, (std::vector<int32_t>{5, 6, 7, 8, 9, 8}));
    EXPECT_EQ(plan.seq_id, (std::vector<int32_t>{0, 0, 0, 0, 0, 1}));
    EXPECT_EQ(plan.out_ids, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(plan.out_seq_index, (std::vector<size_t>{0, 1}));  // one answer per sequence
    EXPECT_EQ(plan.n_draft_taken, (std::vector<uint32_t>{4, 0, 0}));
    plan = build_ubatch(views, 12);
    EXPECT_EQ(plan.n_draft_taken, (std::vector<uint32_t>{5, 1, 0}));
    EXPECT_EQ(plan.tokens, (std::vector<int32_t>{30, 40, 41, 42, 43, 44, 31, 50, 7, 8, 9, 10}));
    EXPECT_EQ(plan.n_prompt_taken, (std::vector<uint32_t>{0, 0, 4}));
}

TEST(UbatchBuilder, NothingToDoGivesAnEmptyPlan) {
    const std::vector<int32_t> p = {1};
    EXPECT_TRUE(build_ubatch({{0, &p, 1, 1, -1}}, 8).empty());
}

// ---- request validation ----------------------------------------------------

/// The RequestError of parsing `body`, checked to be a 400 naming `param`.
void expect_field_error(const std::string &body, const std::string &param, bool chat = true) {
    try {
        if (chat) {
            parse_chat_request(body, ApiLimits{});
        } else {
            parse_completion_request(body, ApiLimits{});
        }
        ADD_FAILURE() << "accepted: " << body;
    } catch (const RequestError &e) {
        EXPECT_EQ(e.param(), param) << body << " -> " << e.what();
        EXPECT_EQ(http_error_from(e).status, 400) << body;
        if (!param.empty()) {
            EXPECT_NE(std::string(e.what()).find(param), std::string::npos) << e.what();
        }
    }
}

const char *kMsgs = R"("messages":[{"role":"user","content":"hi"}])";

TEST(RequestParse, ChatFieldsAreReadWithDefaultsForTheRest) {
    const ApiRequest r = parse_chat_request(
        std::string("{") + kMsgs +
            R"(,"model":"m","max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"seed":42,
               "stop":"\n","presence_penalty":0.5,"frequency_penalty":-1,"stream":true,
               "stream_options":{"include_usage":true},"n":1,"user":"ignored"})",
        ApiLimits{});
    EXPECT_EQ(r.kind, RequestKind::kChat);
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(r.messages[0].role, "user");
    EXPECT_EQ(r.messages[0].content, "hi");
    EXPECT_EQ(r.model, "m");
    EXPECT_EQ(r.max_tokens, 7);
    EXPECT_EQ(r.sampling.temperature, 0.0f);
    EXPECT_EQ(r.sampling.top_p, 0.5f);
    EXPECT_EQ(r.sampling.top_k, 3);
    EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
    EXPECT_EQ(r.sampling.seed, 42u);
    EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
    EXPECT_EQ(r.sampling.presence_penalty, 0.5f);
    EXPECT_EQ(r.sampling.frequency_penalty, -1.0f);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);

    const ApiRequest d = parse_chat_request(std::string("{") + kMsgs + "}", ApiLimits{});
    EXPECT_EQ(d.max_tokens, -1);
    EXPECT_EQ(d.sampling.seed, SamplingParams{}.seed);
    EXPECT_FALSE(d.stream);
}

TEST(RequestParse, MaxCompletionTokensWinsAndContentPartsAreJoined) {
    const ApiRequest r = parse_chat_request(
        R"({"max_tokens":9,"max_completion_tokens":3,"messages":[{"role":"developer","content":"be brief"},
           {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
           {"role":"assistant","content":null}]})",
        ApiLimits{});
    EXPECT_EQ(r.max_tokens, 3);
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "ab");
    EXPECT_EQ(r.messages[2].content, "");
}

TEST(RequestParse, MalformedJsonAndNonObjectsAreRefused) {
    expect_field_error("{\"messages\": [", "");
    expect_field_error("", "");
    expect_field_error("[1,2]", "");
    expect_field_error("\"text\"", "");
}

TEST(RequestParse, WrongTypesAndRangesNameTheField) {
    const std::string m = std::string("{") + kMsgs + ",";
    expect_field_error(m + R"("max_tokens":"ten"})", "max_tokens");
    expect_field_error(m + R"("max_tokens":0})", "max_tokens");
    expect_field_error(m + R"("max_tokens":1.5})", "max_tokens");
    expect_field_error(m + R"("max_tokens":100000000})", "max_tokens");
    expect_field_error(m + R"("temperature":"hot"})", "temperature");
    expect_field_error(m + R"("temperature":2.5})", "temperature");
    expect_field_error(m + R"("top_p":-0.1})", "top_p");
    expect_field_error(m + R"("top_k":-1})", "top_k");
    expect_field_error(m + R"("seed":"x"})", "seed");
    expect_field_error(m + R"("stop":5})", "stop");
    expect_field_error(m + R"("stop":["a",1]})", "stop[1]");
    expect_field_error(m + R"("stream":"yes"})", "stream");
    expect_field_error(m + R"("stream_options":{"include_usage":1}})",
                       "stream_options.include_usage");
    expect_field_error(m + R"("model":5})", "model");
    expect_field_error(m + R"("presence_penalty":3})", "presence_penalty");
    expect_field_error(R"({"messages":"hi"})", "messages");
    expect_field_error(R"({"messages":[]})", "messages");
    expect_field_error(R"({})", "messages");
    expect_field_error(R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role");
    expect_field_error(R"({"messages":[{"role":"user","content":7}]})", "messages[0].content");
    expect_field_error(R"({"messages":[{"role":"user"}]})", "messages[0].content");
    expect_field_error(R"({"prompt":5})", "prompt", false);
    expect_field_error(R"({"prompt":["a","b"]})", "prompt", false);
    expect_field_error(R"({"prompt":[1,-2]})", "prompt[1]", false);
    expect_field_error(R"({})", "prompt", false);
}

TEST(RequestParse, OptionsColonyCannotHonourAreRefused) {
    const std::string m = std::string("{") + kMsgs + ",";
    expect_field_error(m + R"("n":9})", "n");
    expect_field_error(m + R"("logprobs":1})", "logprobs");
    expect_field_error(m + R"("top_logprobs":3})", "top_logprobs");  // without logprobs
    expect_field_error(m + R"("logprobs":true,"top_logprobs":21})", "top_logprobs");
    expect_field_error(m + R"("tools":[{"type":"function"}]})", "tools[0].function");
    expect_field_error(m + R"("tools":[{"function":{"name":""}}]})", "tools[0].function.name");
    expect_field_error(m + R"("tool_choice":"required"})", "tool_choice");  // no tools
    expect_field_error(m + R"("tool_choice":"sometimes","tools":[{"function":{"name":"f"}}]})",
                       "tool_choice");
    expect_field_error(m + R"("functions":[{"name":"f"}]})", "functions");
    expect_field_error(m + R"("response_format":{"type":"yaml"}})", "response_format.type");
    expect_field_error(m + R"("grammar":"root ::= \"a\"","json_schema":{}})", "grammar");
    expect_field_error(m + R"("logit_bias":{"5":1}})", "logit_bias");
    expect_field_error(
        R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
        "messages");
    expect_field_error(R"({"prompt":"x","echo":true})", "echo", false);
    expect_field_error(R"({"prompt":"x","best_of":3})", "best_of", false);
    // accepted as no-ops
    EXPECT_NO_THROW(parse_chat_request(
        m + R"("n":1,"logprobs":false,"tools":[],"response_format":{"type":"text"}})",
        ApiLimits{}));
}

TEST(RequestParse, AgentFieldsAreRead) {
    const std::string m = std::string("{") + kMsgs + ",";
    const ApiRequest a =
        parse_chat_request(m + R"("n":3,"logprobs":true,"top_logprobs":4,"parallel_tool_calls":true,
               "tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object"}}}],
               "tool_choice":{"type":"function","function":{"name":"get"}}})",
                           ApiLimits{});
    EXPECT_EQ(a.n, 3);
    EXPECT_EQ(a.logprobs, 4);
    EXPECT_EQ(a.chat.tools.size(), 1u);
    EXPECT_EQ(a.chat.tool_choice, "required");
    EXPECT_EQ(a.chat.tool_name, "get");
    EXPECT_TRUE(a.chat.parallel_tool_calls);
    EXPECT_EQ(parse_chat_request(m + R"("logprobs":true})", ApiLimits{}).logprobs, 0);
    EXPECT_EQ(parse_chat_request(m + R"("n":1})", ApiLimits{}).logprobs, -1);
    const ApiRequest s = parse_chat_request(
        m + R"("response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,
               "schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}})",
        ApiLimits{});
    EXPECT_EQ(s.chat.json_schema["properties"]["a"]["type"], "integer");
    EXPECT_TRUE(parse_chat_request(m + R"("response_format":{"type":"json_object"}})", ApiLimits{})
                    .chat.json_schema.is_object());
    const ApiRequest c = parse_completion_request(
        R"({"prompt":"x","logprobs":2,"grammar":"root ::= \"a\""})", ApiLimits{});
    EXPECT_EQ(c.logprobs, 2);
    EXPECT_EQ(c.chat.grammar, "root ::= \"a\"");
    // a tool-call history: assistant tool_calls without content, then the tool's answer
    const ApiRequest h = parse_chat_request(
        R"({"messages":[{"role":"user","content":"w?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
              "function":{"name":"get","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"}]})",
        ApiLimits{});
    EXPECT_EQ(h.messages.size(), 3u);
    EXPECT_EQ(h.chat.messages.size(), 3u);
}

TEST(RequestParse, CompletionPromptForms) {
    EXPECT_EQ(parse_completion_request(R"({"prompt":"Once"})", ApiLimits{}).prompt, "Once");
    EXPECT_EQ(parse_completion_request(R"({"prompt":["Once"]})", ApiLimits{}).prompt, "Once");
    EXPECT_EQ(parse_completion_request(R"({"prompt":[1,5,9]})", ApiLimits{}).prompt_tokens,
              (std::vector<int32_t>{1, 5, 9}));
    ApiLimits tight;
    tight.max_tokens_limit = 8;
    EXPECT_EQ(parse_completion_request(R"({"prompt":"x","max_tokens":8})", tight).max_tokens, 8);
    EXPECT_THROW(parse_completion_request(R"({"prompt":"x","max_tokens":9})", tight), RequestError);
}

// ---- error mapping -----------------------------------------------------------

TEST(ApiError, EveryErrorCodeHasOneStatus) {
    const std::pair<ErrorCode, int> cases[] = {
        {ErrorCode::kInvalidArgument, 400}, {ErrorCode::kUnsupported, 400},
        {ErrorCode::kUnauthorized, 401},    {ErrorCode::kNotFound, 404},
        {ErrorCode::kOutOfRange, 413},      {ErrorCode::kResource, 429},
        {ErrorCode::kUnavailable, 503},     {ErrorCode::kCancelled, 503},
        {ErrorCode::kInternal, 500},        {ErrorCode::kCorrupt, 500},
        {ErrorCode::kProtocol, 500},
    };
    for (const auto &[code, status] : cases) {
        const HttpError e = http_error_from(Error(code, "m"));
        EXPECT_EQ(e.status, status) << error_code_name(code);
        EXPECT_EQ(e.type, error_type_for_status(status));
    }
    EXPECT_EQ(http_error_from(std::runtime_error("x")).status, 500);
    const HttpError f = http_error_from(field_error("top_p", "must be between 0 and 1"));
    EXPECT_EQ(f.param, "top_p");
    EXPECT_EQ(f.code, "invalid_value");
}

TEST(ApiError, EveryErrorCodeHasOneNextStep) {
    // retry: refused now, may succeed unchanged later (HTTP 429); re-plan: the
    // pipeline broke (a peer gone or lying); fail: only this request fails.
    const std::pair<ErrorCode, ErrorAction> cases[] = {
        {ErrorCode::kResource, ErrorAction::kRetry},
        {ErrorCode::kUnavailable, ErrorAction::kReplan},
        {ErrorCode::kProtocol, ErrorAction::kReplan},
        {ErrorCode::kInvalidArgument, ErrorAction::kFail},
        {ErrorCode::kNotFound, ErrorAction::kFail},
        {ErrorCode::kCorrupt, ErrorAction::kFail},
        {ErrorCode::kUnsupported, ErrorAction::kFail},
        {ErrorCode::kOutOfRange, ErrorAction::kFail},
        {ErrorCode::kUnauthorized, ErrorAction::kFail},
        {ErrorCode::kCancelled, ErrorAction::kFail},
        {ErrorCode::kInternal, ErrorAction::kFail},
    };
    for (const auto &[code, action] : cases) {
        EXPECT_EQ(error_action(code), action) << error_code_name(code);
        const Status st(code, "m");
        EXPECT_FALSE(st.ok());
        EXPECT_EQ(st.action(), action) << error_code_name(code);
        if (action == ErrorAction::kRetry) {
            EXPECT_EQ(http_error_from(Error(code, "m")).status, 429) << error_code_name(code);
        }
    }
    EXPECT_STREQ(error_action_name(ErrorAction::kReplan), "replan");
    EXPECT_TRUE(Status().ok());
    Result<int> r = Status(ErrorCode::kNotFound, "no such tensor");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
    try {
        (void)r.value();
        ADD_FAILURE() << "value() of an error returned";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kNotFound);
        EXPECT_STREQ(e.what(), "no such tensor");
    }
    Result<int> v = 7;
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.value(), 7);
}

TEST(ApiError, BodyHasOpenAiShapeAndSurvivesInvalidUtf8) {
    const json j =
        json::parse(error_body(http_error(404, "no \xff model", "model_not_found", "model")));
    ASSERT_TRUE(j.contains("error"));
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["code"], "model_not_found");
    EXPECT_EQ(j["error"]["param"], "model");
    EXPECT_TRUE(j["error"]["message"].is_string());
    const json n = json::parse(error_body(http_error(500, "x")));
    EXPECT_TRUE(n["error"]["param"].is_null());
    EXPECT_TRUE(n["error"]["code"].is_null());
}

// ---- response shapes and metrics ---------------------------------------------

TEST(ResponseJson, ChunksFollowOpenAiStreamingShapes) {
    const ResponseIds ids{"chatcmpl-1", 1700000000, "m"};
    const std::string role = "assistant";
    ChoiceUpdate hi;
    hi.text = "Hi";
    const json first = json::parse(chunk_body(RequestKind::kChat, ids, hi, &role, false, 0, true));
    EXPECT_EQ(first["object"], "chat.completion.chunk");
    EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(first["choices"][0]["delta"]["content"], "Hi");
    EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
    EXPECT_TRUE(first.contains("usage") && first["usage"].is_null());
    ChoiceUpdate end;
    end.finished = true;
    end.finish_reason = "length";
    const json last =
        json::parse(chunk_body(RequestKind::kChat, ids, end, nullptr, false, 0, false));
    EXPECT_TRUE(last["choices"][0]["delta"].is_object() && last["choices"][0]["delta"].empty());
    EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
    EXPECT_FALSE(last.contains("usage"));
    const json usage = json::parse(usage_chunk_body(RequestKind::kCompletion, ids, Usage{3, 4}));
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["total_tokens"], 7);
    EXPECT_EQ(sse_event("{}"), "data: {}\n\n");
}

TEST(Metrics, PrometheusTextHasCountersHistogramsAndStageGauges) {
    ApiMetrics m;
    m.count_request("/v1/completions", 200);
    m.count_request("/v1/completions", 200);
    m.count_request("/nope", 404);
    m.add_tokens(5, 7);
    m.observe_ttft(0.02);
    m.observe_ttft(3.0);
    BackendStats st;
    st.n_queued = 2;
    st.n_running = 3;
    StageStats s;
    s.node_id = "n\"1";
    s.layers = {0, 5};
    s.kv_used_cells = 10;
    s.kv_size_cells = 40;
    st.stages.push_back(s);
    const std::string t = m.render(st, BackendHealth{true, "ok", ""});
    using apitest::metric_value;
    EXPECT_EQ(
        metric_value(t, "colony_http_requests_total", R"(endpoint="/v1/completions",status="200")"),
        2);
    EXPECT_EQ(metric_value(t, "colony_http_requests_total", R"(endpoint="other",status="404")"), 1);
    EXPECT_EQ(metric_value(t, "colony_prompt_tokens_total"), 5);
    EXPECT_EQ(metric_value(t, "colony_generated_tokens_total"), 7);
    EXPECT_EQ(metric_value(t, "colony_time_to_first_token_seconds_bucket", R"(le="0.025")"), 1);
    EXPECT_EQ(metric_value(t, "colony_time_to_first_token_seconds_bucket", R"(le="+Inf")"), 2);
    EXPECT_EQ(metric_value(t, "colony_time_to_first_token_seconds_count"), 2);
    EXPECT_EQ(metric_value(t, "colony_requests_queued"), 2);
    EXPECT_EQ(metric_value(t, "colony_requests_running"), 3);
    EXPECT_EQ(
        metric_value(t, "colony_kv_cache_used_cells", R"(stage="0",node="n\"1",layers="0-5")"), 10);
    EXPECT_NE(t.find("# TYPE colony_time_per_output_token_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace colony
