// MessageFence and WireSender: stale epochs, replayed sequences, restarted
// senders, the bounded session table and the counters.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "net/message_fence.h"
#include "net/wire.h"

namespace colony {
namespace {

constexpr FenceReason kOk = FenceReason::kAccepted;

TEST(MessageFence, AcceptsIncreasingSequencesAndDropsRepeats) {
    MessageFence f;
    EXPECT_EQ(f.admit("w1", 7, 1), kOk);
    EXPECT_EQ(f.admit("w1", 7, 2), kOk);
    EXPECT_EQ(f.admit("w1", 7, 5), kOk);  // gaps are fine: a send that timed out
    EXPECT_EQ(f.admit("w1", 7, 5), FenceReason::kReplayed);
    EXPECT_EQ(f.admit("w1", 7, 2), FenceReason::kReplayed);
    EXPECT_EQ(f.admit("w1", 7, 6), kOk);  // the next real message still passes
    EXPECT_EQ(f.counts().replayed, 2u);
    EXPECT_EQ(f.counts().dropped(), 2u);
}

TEST(MessageFence, SendersAndSessionsAreSeparate) {
    MessageFence f;
    EXPECT_EQ(f.admit("w1", 7, 10), kOk);
    EXPECT_EQ(f.admit("w2", 7, 1), kOk);  // another sender, same session id
    EXPECT_EQ(f.admit("w1", 8, 1), kOk);  // w1 restarted: new session, counter from 1
    EXPECT_EQ(f.admit("w1", 8, 2), kOk);
    // the old session's messages still arrive in order (another link of w1)
    EXPECT_EQ(f.admit("w1", 7, 11), kOk);
    // and a replay in either session is caught
    EXPECT_EQ(f.admit("w1", 7, 10), FenceReason::kReplayed);
    EXPECT_EQ(f.admit("w1", 8, 1), FenceReason::kReplayed);
    EXPECT_EQ(f.n_sessions(), 3u);
}

TEST(MessageFence, EpochRules) {
    MessageFence f;
    EXPECT_EQ(f.admit("s", 1, 1, 5, 5, EpochRule::kEqual), kOk);
    EXPECT_EQ(f.admit("s", 1, 2, 4, 5, EpochRule::kEqual), FenceReason::kStaleEpoch);
    EXPECT_EQ(f.admit("s", 1, 3, 6, 5, EpochRule::kEqual), FenceReason::kFutureEpoch);
    EXPECT_EQ(f.admit("s", 1, 4, 4, 5, EpochRule::kNotOlder), FenceReason::kStaleEpoch);
    EXPECT_EQ(f.admit("s", 1, 5, 9, 5, EpochRule::kNotOlder), kOk);  // ASSIGN of a newer plan
    const FenceCounts c = f.counts();
    EXPECT_EQ(c.stale_epoch, 2u);
    EXPECT_EQ(c.future_epoch, 1u);
    EXPECT_EQ(c.replayed, 0u);
}

TEST(MessageFence, AnEpochDropDoesNotMoveTheSequence) {
    MessageFence f;
    EXPECT_EQ(f.admit("s", 1, 1, 3, 3, EpochRule::kEqual), kOk);
    EXPECT_EQ(f.admit("s", 1, 9, 2, 3, EpochRule::kEqual), FenceReason::kStaleEpoch);
    EXPECT_EQ(f.admit("s", 1, 2, 3, 3, EpochRule::kEqual), kOk);  // 9 was not recorded
}

TEST(MessageFence, AReplayOfAStaleFrameIsStaleAgain) {
    // A re-plan: epoch 3 -> 4. A frame of plan 3 sent again is dropped for its
    // epoch; the new plan's messages (a recovery's retransmits, new session)
    // are accepted.
    MessageFence f;
    EXPECT_EQ(f.admit("prev", 11, 40, 3, 3, EpochRule::kEqual), kOk);
    EXPECT_EQ(f.admit("prev", 11, 40, 3, 4, EpochRule::kEqual), FenceReason::kStaleEpoch);
    EXPECT_EQ(f.admit("prev", 12, 1, 4, 4, EpochRule::kEqual), kOk);
    EXPECT_EQ(f.admit("prev", 12, 2, 4, 4, EpochRule::kEqual), kOk);
    EXPECT_EQ(f.counts().stale_epoch, 1u);
}

TEST(MessageFence, CountsTheReceiversOwnDrops) {
    MessageFence f;
    f.count(FenceReason::kUnknownRequest);
    f.count(FenceReason::kAccepted);  // ignored
    f.count(FenceReason::kUnknownRequest);
    EXPECT_EQ(f.counts().unknown_request, 2u);
    EXPECT_EQ(f.counts().of(FenceReason::kUnknownRequest), 2u);
    EXPECT_EQ(f.counts().dropped(), 2u);
}

TEST(MessageFence, RemembersAtMostMaxSessionsLeastRecentlyUsedFirst) {
    MessageFence f(2);
    EXPECT_EQ(f.admit("a", 1, 5), kOk);
    EXPECT_EQ(f.admit("b", 1, 5), kOk);
    EXPECT_EQ(f.admit("a", 1, 6), kOk);  // a is now the most recent
    EXPECT_EQ(f.admit("c", 1, 5), kOk);  // b is forgotten
    EXPECT_EQ(f.n_sessions(), 2u);
    EXPECT_EQ(f.admit("a", 1, 6), FenceReason::kReplayed);
    EXPECT_EQ(f.admit("c", 1, 5), FenceReason::kReplayed);
    // the documented limit: a forgotten session is taken for a new one
    EXPECT_EQ(f.admit("b", 1, 5), kOk);
}

TEST(MessageFence, ReasonNamesArePinned) {
    EXPECT_STREQ(fence_reason_name(FenceReason::kAccepted), "accepted");
    EXPECT_STREQ(fence_reason_name(FenceReason::kStaleEpoch), "stale_epoch");
    EXPECT_STREQ(fence_reason_name(FenceReason::kFutureEpoch), "future_epoch");
    EXPECT_STREQ(fence_reason_name(FenceReason::kReplayed), "replayed");
    EXPECT_STREQ(fence_reason_name(FenceReason::kUnknownRequest), "unknown_request");
}

TEST(MessageFence, CountsAreReadableFromAnotherThread) {
    MessageFence f;
    std::thread t([&] {
        for (uint32_t i = 0; i < 1000; ++i)
            (void)f.admit("s", 1, 1);  // the first accepted, the rest replays
    });
    uint64_t seen = 0;
    while (seen < 999)
        seen = f.counts().replayed;
    t.join();
    EXPECT_EQ(f.counts().replayed, 999u);
}

TEST(WireSender, SequencesStartAtOneAndSessionsAreRandomAndNonZero) {
    WireSender a, b;
    EXPECT_NE(a.session(), 0u);
    EXPECT_NE(a.session(), b.session());  // 1 in 2^32 to fail
    EXPECT_EQ(a.next(), std::make_pair(a.session(), 1u));
    EXPECT_EQ(a.next().second, 2u);
    const uint32_t old = a.session();
    a.renew();
    EXPECT_NE(a.session(), old);
    EXPECT_EQ(a.next().second, 1u);
}

TEST(WireSender, AFenceAcceptsEverythingASenderSendsAcrossRestarts) {
    MessageFence f;
    WireSender s;
    for (int i = 0; i < 100; ++i) {
        const auto [session, seq] = s.next();
        ASSERT_EQ(f.admit("peer", session, seq), kOk);
        if (i == 50)
            s.renew();  // the sender re-connects
    }
    EXPECT_EQ(f.counts().dropped(), 0u);
}

TEST(WireSender, AFramesSessionAndSequenceSurviveTheWire) {
    WireSender s;
    WireMessage m;
    std::tie(m.session, m.sequence) = s.next();
    m.body = WireSeqRelease{2, 0, 9};
    const std::vector<uint8_t> frame = wire_encode(m);
    const WireMessage back = wire_decode(frame);
    EXPECT_EQ(back.session, s.session());
    EXPECT_EQ(back.sequence, 1u);
    EXPECT_EQ(std::get<WireSeqRelease>(back.body).plan_epoch, 9u);
    MessageFence f;
    EXPECT_EQ(f.admit("x", back.session, back.sequence, 9, 9, EpochRule::kEqual), kOk);
    // the same bytes again: a replay
    const WireMessage again = wire_decode(frame);
    EXPECT_EQ(f.admit("x", again.session, again.sequence, 9, 9, EpochRule::kEqual),
              FenceReason::kReplayed);
}

}  // namespace
}  // namespace colony
