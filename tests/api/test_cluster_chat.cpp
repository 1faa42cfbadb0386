// /v1/chat/completions through a real multi-process cluster (`colony serve`
// with a `colony join` worker: two stages over CURVE) serving the tiny qwen2
// model with Qwen2's ChatML template (api_test_support.h). The reference is
// libllama alone: llama_chat_apply_template with the model's template, its
// tokenizer, its greedy decode (test_env.h) and its detokenizer. Then a stop
// string taken from that reference cuts the text exactly before it, with
// finish_reason "stop", streamed and not.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <cpp-httplib/httplib.h>
#include <nlohmann/json.hpp>

#include "api_test_support.h"
#include "cluster_harness.h"
#include "common/llama_text.h"
#include "common/test_env.h"

namespace colony {
namespace {

using nlohmann::json;

constexpr int kMaxTokens = 24;
const std::vector<std::pair<std::string, std::string>> kMessages = {
    {"system", "You are a helpful assistant."}, {"user", "Tell me a story about a cat."}};

json chat_request(const std::string &stop, bool stream) {
    json messages = json::array();
    for (const auto &[role, content] : kMessages)
        messages.push_back({{"role", role}, {"content", content}});
    json req = {
        {"messages", messages}, {"max_tokens", kMaxTokens}, {"temperature", 0}, {"stream", stream}};
    if (!stop.empty())
        req["stop"] = json::array({stop});
    return req;
}

/// libllama's answer: prompt ids, greedy ids up to the first end of
/// generation, the visible text, and the finish reason colony should give.
struct Reference {
    std::string prompt_text;
    std::vector<int32_t> prompt;
    std::vector<int32_t> greedy;
    std::string text;
    std::string finish_reason;
};

Reference libllama_chat(const std::string &model) {
    const test::LlamaText lt(model);
    Reference r;
    r.prompt_text = lt.chat_prompt(kMessages);
    r.prompt = lt.tokenize(r.prompt_text, true, true);
    r.greedy = lt.until_eog(test::llama_reference(model, r.prompt, kMaxTokens).greedy);
    std::vector<int32_t> visible = r.greedy;
    r.finish_reason = "length";
    if (!visible.empty() && lt.is_eog(visible.back())) {
        visible.pop_back();
        r.finish_reason = "stop";
    }
    r.text = test::utf8_replace_invalid(lt.detokenize(visible));
    return r;
}

class ClusterChat : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = std::make_unique<test::TempDir>();
        try {
            model_ = apitest::tiny_qwen2_path(dir_->path());
            // The tiny model has 2 blocks: one per stage.
            serve_ = std::make_unique<test::ServeProcess>(
                dir_->file("coordinator"), model_, 1,
                std::vector<std::string>{"--split", "0:1,1:2", "--wire-type", "f32"});
            join_ = std::make_unique<test::JoinProcess>(dir_->file("w1"), serve_->coordinator(),
                                                        serve_->token());
            if (!test::wait_health(serve_->api_port(), "ok", 90000)) {
                setup_error_ = "the cluster did not become healthy\ncoordinator:\n" +
                               serve_->log() + "\nworker:\n" + join_->log();
            }
        } catch (const std::exception &e) {
            setup_error_ = std::string("the cluster did not start: ") + e.what();
        }
    }
    static void TearDownTestSuite() {
        join_.reset();
        serve_.reset();
        dir_.reset();
    }
    void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
    static json post(const json &req) {
        const test::HttpReply r = test::http_post(serve_->api_port(), "/v1/chat/completions", req);
        EXPECT_EQ(r.status, 200) << r.body.dump();
        return r.body;
    }
    /// Content and finish reason of a streamed chat completion.
    static std::pair<std::string, std::string> post_stream(const json &req) {
        httplib::Client c("127.0.0.1", serve_->api_port());
        c.set_read_timeout(120);
        auto res = c.Post("/v1/chat/completions", req.dump(), "application/json");
        if (!res || res->status != 200) {
            ADD_FAILURE() << "streamed chat: HTTP " << (res ? res->status : 0) << " "
                          << (res ? res->body : "");
            return {};
        }
        std::string text, finish;
        bool done = false;
        for (const std::string &p : apitest::sse_payloads(res->body)) {
            if (p == "[DONE]") {
                done = true;
                continue;
            }
            EXPECT_FALSE(done) << "an event after [DONE]";
            const json chunk = json::parse(p);
            const json &choice = chunk["choices"][0];
            text += choice["delta"].value("content", "");
            if (!choice["finish_reason"].is_null())
                finish = choice["finish_reason"];
        }
        EXPECT_TRUE(done) << "the stream ends with [DONE]";
        return {text, finish};
    }

    static std::unique_ptr<test::TempDir> dir_;
    static std::string model_;
    static std::unique_ptr<test::ServeProcess> serve_;
    static std::unique_ptr<test::JoinProcess> join_;
    static std::string setup_error_;  // "" when the cluster is up
};

std::unique_ptr<test::TempDir> ClusterChat::dir_;
std::string ClusterChat::model_;
std::unique_ptr<test::ServeProcess> ClusterChat::serve_;
std::unique_ptr<test::JoinProcess> ClusterChat::join_;
std::string ClusterChat::setup_error_;

TEST_F(ClusterChat, TemplateAndGreedyAnswerMatchLibllama) {
    const Reference ref = libllama_chat(model_);
    ASSERT_NE(ref.prompt_text.find("<|im_start|>assistant\n"), std::string::npos)
        << "ChatML: " << ref.prompt_text;
    const json body = post(chat_request("", false));
    EXPECT_EQ(body["usage"]["prompt_tokens"], ref.prompt.size())
        << "the cluster's prompt is not libllama's ChatML rendering of the messages";
    EXPECT_EQ(body["choices"][0]["message"]["content"], ref.text);
    EXPECT_EQ(body["choices"][0]["finish_reason"], ref.finish_reason);
    const auto [streamed, finish] = post_stream(chat_request("", true));
    EXPECT_EQ(streamed, ref.text);
    EXPECT_EQ(finish, ref.finish_reason);
}

TEST_F(ClusterChat, StopStringCutsTheAnswerExactlyThere) {
    const Reference ref = libllama_chat(model_);
    // The shortest stop string (1 to 4 characters) that first occurs at or
    // after the middle of the reference answer; the answer must end right
    // before it, even where it starts inside a token.
    const auto is_lead = [&](size_t i) {
        return (static_cast<unsigned char>(ref.text[i]) & 0xC0) != 0x80;
    };
    size_t at = 0;
    std::string stop;
    for (size_t i = ref.text.size() / 2; i < ref.text.size() && stop.empty(); ++i) {
        if (!is_lead(i))
            continue;
        size_t end = i;
        for (int chars = 1; chars <= 4 && end < ref.text.size(); ++chars) {
            do {
                ++end;
            } while (end < ref.text.size() && !is_lead(end));
            if (ref.text.find(ref.text.substr(i, end - i)) == i) {
                at = i;
                stop = ref.text.substr(i, end - i);
                break;
            }
        }
    }
    ASSERT_FALSE(stop.empty()) << "no stop string in the reference answer '" << ref.text << "'";
    ASSERT_EQ(stop.find("\xEF\xBF\xBD"), std::string::npos)
        << "a replacement character is not in the raw text the stop matcher sees";
    const std::string want = ref.text.substr(0, at);

    const json body = post(chat_request(stop, false));
    EXPECT_EQ(body["choices"][0]["message"]["content"], want) << "stop '" << stop << "'";
    EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
    const auto [streamed, finish] = post_stream(chat_request(stop, true));
    EXPECT_EQ(streamed, want) << "streamed, stop '" << stop << "'";
    EXPECT_EQ(finish, "stop");
}

}  // namespace
}  // namespace colony
