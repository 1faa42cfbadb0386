// Unit tests of the emulated switch (tools/netlab/switch.h) and its control
// requests (tools/netlab/control.h), with a recording sink instead of sockets.
#include "switch.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "control.h"
#include "util/error.h"

namespace colony::netlab {
namespace {

constexpr int64_t kMs = 1000000;

// Records every frame sent: (port index, first payload byte).
class RecordingSink : public FrameSink {
  public:
    bool send(size_t port, const Frame &frame) override {
        sent.emplace_back(port, frame.ether()[14]);
        return true;
    }
    std::vector<std::pair<size_t, int>> sent;
};

std::array<uint8_t, 6> mac_of(int host) {
    return {0x02, 0xc0, 0x10, 0x00, 0x00, static_cast<uint8_t>(host)};
}

// A 60-byte Ethernet frame from `src` to `dst` whose first payload byte is `tag`.
Frame make_frame(std::array<uint8_t, 6> dst, std::array<uint8_t, 6> src, uint8_t tag) {
    Frame f;
    f.bytes.assign(kVnetHeaderBytes + 60, 0);
    uint8_t *eth = f.bytes.data() + kVnetHeaderBytes;
    std::copy(dst.begin(), dst.end(), eth);
    std::copy(src.begin(), src.end(), eth + 6);
    eth[12] = 0x08;  // IPv4
    eth[14] = tag;
    return f;
}

constexpr std::array<uint8_t, 6> kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

TEST(Switch, FloodsUnknownThenForwardsToLearnedPort) {
    Switch sw({1, 2, 3}, 1);
    RecordingSink sink;
    sw.on_frame(0, make_frame(kBroadcast, mac_of(1), 1), 0, sink);  // flood: ports 1 and 2
    ASSERT_EQ(sink.sent.size(), 2u);
    sw.on_frame(1, make_frame(mac_of(1), mac_of(2), 2), 0, sink);  // host 1 learned: port 0 only
    ASSERT_EQ(sink.sent.size(), 3u);
    EXPECT_EQ(sink.sent[2], std::make_pair(size_t{0}, 2));
    sw.on_frame(0, make_frame(mac_of(2), mac_of(1), 3), 0, sink);  // host 2 learned: port 1 only
    ASSERT_EQ(sink.sent.size(), 4u);
    EXPECT_EQ(sink.sent[3], std::make_pair(size_t{1}, 3));
}

TEST(Switch, DelaysPerDirectionAndKeepsOrder) {
    Switch sw({1, 2}, 1);
    LinkParams no_loss = profile_by_name("wifi-poor");
    no_loss.loss = 0;
    sw.direction(0, 1).set_params(no_loss);
    RecordingSink sink;
    sw.on_frame(1, make_frame(kBroadcast, mac_of(2), 0), 0,
                sink);  // learn host 2 (direction 2->1: loopback)
    ASSERT_EQ(sink.sent.size(), 1u);
    for (int i = 0; i < 50; ++i)
        sw.on_frame(0, make_frame(mac_of(2), mac_of(1), static_cast<uint8_t>(i)), i * kMs / 10,
                    sink);
    EXPECT_EQ(sink.sent.size(), 1u);  // all held back by the 5..15 ms delay
    EXPECT_EQ(sw.queued(), 50u);
    const auto next = sw.run_due(4 * kMs, sink);
    EXPECT_EQ(sink.sent.size(), 1u);
    ASSERT_TRUE(next);
    EXPECT_GE(*next, 5 * kMs);
    EXPECT_FALSE(sw.run_due(100 * kMs, sink));
    ASSERT_EQ(sink.sent.size(), 51u);
    for (int i = 0; i < 50; ++i)
        EXPECT_EQ(sink.sent[1 + i].second, i);  // in order
}

TEST(Switch, CutDropsFramesAlreadyQueued) {
    Switch sw({1, 2}, 1);
    sw.direction(0, 1).set_params(profile_by_name("ethernet"));
    RecordingSink sink;
    sw.on_frame(0, make_frame(kBroadcast, mac_of(1), 0), 0, sink);
    sw.direction(0, 1).set_cut(true);
    sw.run_due(10 * kMs, sink);
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(sw.direction(0, 1).counters().dropped_cut, 1u);
}

TEST(Switch, RejectsBadPorts) {
    EXPECT_THROW(Switch({1}, 1), Error);
    EXPECT_THROW(Switch({1, 1}, 1), Error);
    Switch sw({1, 2}, 1);
    EXPECT_THROW(sw.port_index(3), Error);
    EXPECT_THROW(sw.direction(0, 0), Error);
}

TEST(Control, SetCutRestoreAndShow) {
    Switch sw({1, 2, 3}, 1);
    EXPECT_EQ(execute_control(sw, "set 1 2 profile=wifi loss_pct=2").text, "ok\n");
    EXPECT_EQ(sw.direction(0, 1).params().delay_ns, 3 * kMs);
    EXPECT_DOUBLE_EQ(sw.direction(0, 1).params().loss, 0.02);
    EXPECT_EQ(sw.direction(1, 0).params().delay_ns, 0);  // one direction only
    EXPECT_EQ(execute_control(sw, "set * * delay_ms=1").text, "ok\n");
    EXPECT_EQ(sw.direction(2, 1).params().delay_ns, 1 * kMs);
    EXPECT_EQ(execute_control(sw, "cut 1 3").text, "ok\n");
    EXPECT_TRUE(sw.direction(0, 2).cut());
    EXPECT_FALSE(sw.direction(2, 0).cut());
    EXPECT_EQ(execute_control(sw, "restore 1 3").text, "ok\n");
    EXPECT_FALSE(sw.direction(0, 2).cut());
    const std::string show = execute_control(sw, "show").text;
    EXPECT_NE(show.find("1->2 delay_ms=1"), std::string::npos);
    EXPECT_EQ(show.substr(show.size() - 3), "ok\n");
    EXPECT_TRUE(execute_control(sw, "quit").quit);
}

TEST(Control, BadRequestsAreErrorsAndChangeNothing) {
    Switch sw({1, 2}, 1);
    for (const char *bad :
         {"", "jump", "set 1 2", "set 1 9 delay_ms=1", "set 1 1 delay_ms=1", "set x 2 delay_ms=1",
          "set 1 2 delay_ms=1 jitter_ms=2", "cut 1", "set 1 2 delay_ms=1 color=red"}) {
        EXPECT_EQ(execute_control(sw, bad).text.rfind("error: ", 0), 0u) << bad;
    }
    EXPECT_EQ(sw.direction(0, 1).params().delay_ns, 0);
}

}  // namespace
}  // namespace colony::netlab
