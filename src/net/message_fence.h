// MessageFence: the receiver's check against stale and replayed messages
// (docs/security.md, "Fencing"). CurveZMQ stops replay inside one connection
// only; an authenticated peer can still resend a message it once sent or
// received, or a stage that comes back from a partition can send messages of
// a plan that has ended. Every receiver of colony messages runs each decoded
// message through a fence before acting on it:
//
//   epoch     a message that carries a plan epoch must belong to the receiver's
//             plan (EpochRule): older is "stale_epoch", newer where the
//             receiver must already know the plan is "future_epoch".
//   sequence  the header's `sequence` must be strictly greater than the last
//             one accepted from the same (sender, session): otherwise
//             "replayed". `sender` is what the receiver authenticated (the
//             ZAP User-Id of the peer's CURVE key, or a ROUTER's routing id);
//             `session` is the header's session id, drawn at random by each
//             sending link (WireSender), so a restarted or re-connected sender
//             starts a new session and its counter may start again at 1.
//   request   the receiver's own knowledge of live request ids
//             (count(kUnknownRequest)): a message for a request that is not
//             running.
//
// What the fence remembers is bounded: the last sequence of at most
// max_sessions (sender, session) pairs; the pair used least recently is
// forgotten first, and a forgotten session is accepted again as a new one
// (its messages still meet the epoch check).
//
// Pure: no I/O, no clock. admit() is not thread-safe (one receiving
// thread owns a fence); count() and counts() may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace colony {

/// Why a message was dropped, or kAccepted. The values index FenceCounts.
enum class FenceReason : uint8_t {
    kAccepted = 0,
    kStaleEpoch = 1,      // the message's plan epoch is older than the receiver's
    kFutureEpoch = 2,     // newer than the receiver's, where it must know the plan
    kReplayed = 3,        // sequence not above the last one of its (sender, session)
    kUnknownRequest = 4,  // request id of no running request (receiver's check)
};
constexpr size_t kFenceReasonCount = 5;

/// "accepted", "stale_epoch", "future_epoch", "replayed", "unknown_request"
/// (the Prometheus label values and the STATUS/JSON keys).
const char *fence_reason_name(FenceReason reason);

/// How a message's plan epoch must relate to the receiver's current one.
enum class EpochRule : uint8_t {
    kEqual,     // exactly the receiver's plan (ACTIVATIONS, TOKENS, SEQ_RELEASE, READY)
    kNotOlder,  // the receiver's plan or a newer one (ASSIGN: it starts the newer plan)
};

/// Messages dropped by a fence, per reason. Plain numbers (a snapshot).
struct FenceCounts {
    uint64_t stale_epoch = 0;
    uint64_t future_epoch = 0;
    uint64_t replayed = 0;
    uint64_t unknown_request = 0;

    uint64_t dropped() const { return stale_epoch + future_epoch + replayed + unknown_request; }
    /// The count for `reason` (0 for kAccepted).
    uint64_t of(FenceReason reason) const;
    FenceCounts &operator+=(const FenceCounts &o);
    friend bool operator==(const FenceCounts &, const FenceCounts &) = default;
};

class MessageFence {
  public:
    static constexpr size_t kDefaultMaxSessions = 1024;

    /// max_sessions >= 1: (sender, session) pairs remembered at once.
    explicit MessageFence(size_t max_sessions = kDefaultMaxSessions);
    MessageFence(const MessageFence &) = delete;
    MessageFence &operator=(const MessageFence &) = delete;

    /// Sequence check only (messages without a plan epoch: HEARTBEAT, STATUS,
    /// SHARD_*, ERROR, JOIN...). Returns kAccepted and records `sequence`
    /// for (sender, session), or kReplayed (counted) when `sequence` is not
    /// above the last one accepted there.
    FenceReason admit(std::string_view sender, uint32_t session, uint32_t sequence);

    /// Epoch check, then the sequence check: `epoch` is the message's plan
    /// epoch, `current` the receiver's. Returns kAccepted (the sequence is
    /// recorded), or kStaleEpoch / kFutureEpoch / kReplayed, counted; a
    /// message dropped for its epoch does not move the session's sequence.
    FenceReason admit(std::string_view sender, uint32_t session, uint32_t sequence, uint64_t epoch,
                      uint64_t current, EpochRule rule);

    /// Counts a drop that the receiver decided itself (kUnknownRequest, or
    /// an epoch check it does elsewhere). kAccepted is ignored.
    void count(FenceReason reason);

    /// Drops so far, per reason. Thread-safe.
    FenceCounts counts() const;
    /// (sender, session) pairs remembered now.
    size_t n_sessions() const { return sessions_.size(); }

  private:
    using Key = std::pair<std::string, uint32_t>;  // (sender, session)
    struct Entry {
        uint32_t last_sequence = 0;
        std::list<Key>::iterator lru;  // position in lru_ (front: most recent)
    };

    size_t max_sessions_;
    std::map<Key, Entry> sessions_;
    std::list<Key> lru_;
    std::array<std::atomic<uint64_t>, kFenceReasonCount> counts_{};
};

/// The sending side of one link: a random session id (never 0) drawn when the
/// link is made, and the sequence of its messages, 1, 2, 3... A counter that
/// would wrap draws a new session and starts again at 1, so a receiver's
/// strictly-increasing check never sees it go back. Not thread-safe.
class WireSender {
  public:
    /// Draws the session id from std::random_device.
    WireSender();
    /// The (session, sequence) for the next message.
    std::pair<uint32_t, uint32_t> next();
    /// A new session id (a new link, a new connection); the sequence starts again.
    void renew();
    uint32_t session() const { return session_; }

  private:
    uint32_t session_ = 0;
    uint32_t sequence_ = 0;  // of the last message sent
};

}  // namespace colony
