// Layer splits (--split, proportional) and endpoint handling.
#include <gtest/gtest.h>

#include "pipeline/cached_assignment.h"
#include "pipeline/endpoint.h"
#include "cluster/layer_split.h"
#include "util/error.h"

namespace colony {
namespace {

TEST(LayerSplit, ParsesContiguousRanges) {
    const auto r = parse_layer_split("0:3,3:4,4:5", 5);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0], (LayerRange{0, 3}));
    EXPECT_EQ(r[1], (LayerRange{3, 4}));
    EXPECT_EQ(r[2], (LayerRange{4, 5}));
    EXPECT_EQ(format_layer_split(r), "0:3,3:4,4:5");
}

TEST(LayerSplit, RejectsGapsOverlapsAndShortSplits) {
    for (const char *bad :
         {"0:3,4:5", "0:3,2:5", "0:3", "1:5", "0:0,0:5", "0:3,3:x", "03,3:5", "", "0:3,", "0:6"}) {
        EXPECT_THROW(parse_layer_split(bad, 5), Error) << bad;
    }
}

TEST(LayerSplit, ProportionalGivesEveryNodeALayerAndCoversTheModel) {
    auto r = proportional_layer_split(5, {1, 1});
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0], (LayerRange{0, 3}));
    EXPECT_EQ(r[1], (LayerRange{3, 5}));
    r = proportional_layer_split(28, {3, 1});
    EXPECT_EQ(r[0].size(), 21u);
    EXPECT_EQ(r[1], (LayerRange{21, 28}));
    r = proportional_layer_split(4, {100, 0, 0, 0});  // each still gets one
    for (const LayerRange &x : r)
        EXPECT_EQ(x.size(), 1u);
    EXPECT_THROW(proportional_layer_split(2, {1, 1, 1}), Error);
    EXPECT_THROW(proportional_layer_split(2, {}), Error);
}

TEST(CachedAssignment, WorkersGetTheRangesTheyHold) {
    // coordinator on [0,2); workers 0, 1, 2 joined in that order, but each
    // holds the range of another one from an earlier run
    const std::vector<LayerRange> ranges = {{0, 2}, {2, 4}, {4, 6}, {6, 8}};
    const std::vector<LayerRange> held = {{6, 8}, {2, 4}, {4, 6}};  // by member
    std::vector<int> members = {-1, 2, 0, 1};
    int asked = 0;
    prefer_cached_ranges(
        members, ranges, [&](int m, LayerRange r) { return held[m] == r; },
        [&](const std::vector<int> &) { return ++asked, true; });
    EXPECT_EQ(members, (std::vector<int>{-1, 1, 2, 0}));
    EXPECT_GE(asked, 2);
}

TEST(CachedAssignment, RefusedTradesAreUndoneAndUncachedMembersStay) {
    const std::vector<LayerRange> ranges = {{0, 2}, {2, 4}, {4, 6}};
    std::vector<int> members = {-1, 0, 1};
    // member 1 holds [2,4) but the trade is refused: nothing moves
    auto holds = [](int m, LayerRange r) { return m == 1 && r == LayerRange{2, 4}; };
    prefer_cached_ranges(members, ranges, holds, [](const std::vector<int> &) { return false; });
    EXPECT_EQ(members, (std::vector<int>{-1, 0, 1}));
    // accepted: member 1 takes [2,4); member 0 (holding nothing) takes what is left
    prefer_cached_ranges(members, ranges, holds, [](const std::vector<int> &) { return true; });
    EXPECT_EQ(members, (std::vector<int>{-1, 1, 0}));
    // nobody holds anything: the order is kept
    std::vector<int> none = {-1, 0, 1};
    prefer_cached_ranges(
        none, ranges, [](int, LayerRange) { return false; },
        [](const std::vector<int> &) { return true; });
    EXPECT_EQ(none, (std::vector<int>{-1, 0, 1}));
}

TEST(Endpoint, ParsesHostPort) {
    HostPort hp = parse_host_port("192.168.1.20:7411", 1);
    EXPECT_EQ(hp.host, "192.168.1.20");
    EXPECT_EQ(hp.port, 7411);
    hp = parse_host_port("laptop", 7411);
    EXPECT_EQ(hp.host, "laptop");
    EXPECT_EQ(hp.port, 7411);
    hp = parse_host_port("[::1]:9000", 1);
    EXPECT_EQ(hp.host, "::1");
    EXPECT_EQ(hp.port, 9000);
    EXPECT_THROW(parse_host_port(":7411", 1), Error);
    EXPECT_THROW(parse_host_port("h:0", 1), Error);
    EXPECT_THROW(parse_host_port("h:70000", 1), Error);
}

TEST(Endpoint, WildcardHostIsReplacedByThePeerAddress) {
    EXPECT_EQ(announced_endpoint("tcp://0.0.0.0:4000"), "tcp://*:4000");
    EXPECT_EQ(announced_endpoint("tcp://127.0.0.1:4000"), "tcp://127.0.0.1:4000");
    EXPECT_EQ(resolve_endpoint("tcp://*:4000", "10.0.0.7"), "tcp://10.0.0.7:4000");
    EXPECT_EQ(resolve_endpoint("tcp://10.0.0.8:4000", "10.0.0.7"), "tcp://10.0.0.8:4000");
    EXPECT_EQ(tcp_endpoint("::1", 5), "tcp://[::1]:5");
    EXPECT_EQ(tcp_endpoint("127.0.0.1", 0), "tcp://127.0.0.1:*");
    EXPECT_THROW(resolve_endpoint("ipc:///tmp/x", "h"), Error);
    EXPECT_THROW(parse_tcp_endpoint("tcp://host"), Error);
}

}  // namespace
}  // namespace colony
