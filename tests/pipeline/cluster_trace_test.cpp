// `--trace FILE` through `colony run`: one Chrome/Perfetto trace holding every
// process's events, each stage's forward passes with its own layer range,
// sampling on the last stage only, one sample per generated token, and the
// first token's forward passes in pipeline order.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/test_env.h"
#include "util/trace.h"

namespace colony::test {
namespace {

using nlohmann::json;

constexpr int kTokens = 8;

TEST(PipelineTrace, RunWritesOneTraceWithEveryStageInPipelineOrder) {
    const std::string model = model_path("stories260K-f32.gguf");
    TempDir dir;
    const std::string trace = dir.file("run.trace.json");
    int rc = -1;
    std::string err;
    const std::string out = run_colony(
        {"run", "-m", model, "--workers", "2", "--split", "0:2,2:4,4:5", "-p", "Once upon a time",
         "-n", std::to_string(kTokens), "--temp", "0", "-t", "1", "--trace", trace},
        &rc, &err);
    (void)out;
    ASSERT_EQ(rc, 0) << err;
    const json events = json::parse(read_text(trace));
    ASSERT_TRUE(events.is_array());

    std::map<int, std::string> process;  // pid -> name
    for (const json &e : events) {
        if (e.at("name") == "process_name")
            process[e.at("pid").get<int>()] = e.at("args").at("name").get<std::string>();
    }
    ASSERT_EQ(process.size(), 3u) << events.dump(1).substr(0, 2000);
    std::map<std::string, std::set<std::string>> ranges;  // process -> forward layer ranges
    std::map<std::string, int> samples;                   // process -> sample events
    std::map<std::string, std::vector<int64_t>> forward_ts;
    int waits = 0, queues = 0;
    std::set<uint64_t> requests;  // request ids on the wire headers of every hop
    for (const json &e : events) {
        if (e.at("ph") != "X")
            continue;
        EXPECT_GT(e.at("ts").get<int64_t>(), 0);
        EXPECT_GE(e.at("dur").get<int64_t>(), 0);
        const std::string &who = process.at(e.at("pid").get<int>());
        const std::string name = e.at("name");
        if (name == "forward") {
            ranges[who].insert(e.at("args").at("layers").get<std::string>());
            forward_ts[who].push_back(e.at("ts").get<int64_t>());
        }
        samples[who] += name == "sample";
        if (name == "send" || name == "receive") {
            // One request at a time: every hop names it in the wire header.
            ASSERT_TRUE(e.contains("args")) << e.dump();
            requests.insert(e.at("args").value("request", uint64_t{0}));
        }
        waits += name == "wait";
        queues += name == "queue";
    }
    // The workers join concurrently, so either may hold either range: name the
    // stages by the layers their forward passes ran.
    std::map<std::string, std::string> stage;  // layer range -> process
    for (const auto &[who, rs] : ranges) {
        ASSERT_EQ(rs.size(), 1u) << who << " ran forward passes of several ranges";
        stage[*rs.begin()] = who;
    }
    ASSERT_EQ(stage.size(), 3u);
    ASSERT_EQ(stage.count("[0,2)") + stage.count("[2,4)") + stage.count("[4,5)"), 3u);
    EXPECT_EQ(stage["[0,2)"], "coordinator");
    EXPECT_NE(stage["[2,4)"].rfind("worker ", 0), std::string::npos);
    EXPECT_NE(stage["[4,5)"].rfind("worker ", 0), std::string::npos);
    const std::string last = stage["[4,5)"];
    // Only the last stage samples: one output row per ubatch here (one
    // request), so one sample event per generated token (EOG may end early).
    EXPECT_EQ(samples[stage["[0,2)"]] + samples[stage["[2,4)"]], 0);
    EXPECT_GE(samples[last], 1);
    EXPECT_LE(samples[last], kTokens);
    EXPECT_EQ(waits, samples[last]) << "one pipeline wait per token that came back";
    EXPECT_EQ(queues, 1);
    EXPECT_EQ(requests, std::set<uint64_t>{1}) << "the request id travels on every hop";
    // The prompt's ubatch goes through the stages in order.
    const auto first = [&](const std::string &range) {
        const std::vector<int64_t> &ts = forward_ts[stage[range]];
        return *std::min_element(ts.begin(), ts.end());
    };
    EXPECT_LT(first("[0,2)"), first("[2,4)"));
    EXPECT_LT(first("[2,4)"), first("[4,5)"));
}

TEST(PipelineTrace, MergeKeepsWholeEventsOfAFileCutShort) {
    TempDir dir;
    const std::string a = dir.file("a.json"), b = dir.file("b.json"), out = dir.file("out.json");
    std::ofstream(a) << "[\n{\"name\":\"x\",\"ph\":\"X\",\"ts\":1,\"dur\":2,\"pid\":1,\"tid\":1},\n"
                        "{\"name\":\"y\",\"ph\":\"X\",\"ts\":3,\"dur\":1,\"pid\":1,\"tid\":1},\n";
    std::ofstream(b) << "[\n{\"name\":\"z\",\"ph\":\"X\",\"ts\":2,\"dur\":1,\"pid\":2,\"tid\":1},\n"
                        "{\"name\":\"cut\",\"ph\":\"X\",\"ts\":";  // killed mid-line
    merge_trace_files({a, b}, out);
    const json events = json::parse(read_text(out));
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].at("name"), "x");
    EXPECT_EQ(events[1].at("name"), "y");
    EXPECT_EQ(events[2].at("name"), "z");
}

}  // namespace
}  // namespace colony::test
