#include "net/message_fence.h"

#include <random>

namespace colony {

const char *fence_reason_name(FenceReason reason) {
    switch (reason) {
        case FenceReason::kAccepted:
            return "accepted";
        case FenceReason::kStaleEpoch:
            return "stale_epoch";
        case FenceReason::kFutureEpoch:
            return "future_epoch";
        case FenceReason::kReplayed:
            return "replayed";
        case FenceReason::kUnknownRequest:
            return "unknown_request";
    }
    return "invalid";
}

uint64_t FenceCounts::of(FenceReason reason) const {
    switch (reason) {
        case FenceReason::kStaleEpoch:
            return stale_epoch;
        case FenceReason::kFutureEpoch:
            return future_epoch;
        case FenceReason::kReplayed:
            return replayed;
        case FenceReason::kUnknownRequest:
            return unknown_request;
        case FenceReason::kAccepted:
            break;
    }
    return 0;
}

FenceCounts &FenceCounts::operator+=(const FenceCounts &o) {
    stale_epoch += o.stale_epoch;
    future_epoch += o.future_epoch;
    replayed += o.replayed;
    unknown_request += o.unknown_request;
    return *this;
}

MessageFence::MessageFence(size_t max_sessions) : max_sessions_(max_sessions ? max_sessions : 1) {}

FenceReason MessageFence::admit(std::string_view sender, uint32_t session, uint32_t sequence) {
    Key key{std::string(sender), session};
    auto it = sessions_.find(key);
    if (it != sessions_.end()) {
        if (sequence <= it->second.last_sequence) {
            count(FenceReason::kReplayed);
            return FenceReason::kReplayed;
        }
        it->second.last_sequence = sequence;
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return FenceReason::kAccepted;
    }
    if (sessions_.size() >= max_sessions_) {
        sessions_.erase(lru_.back());
        lru_.pop_back();
    }
    lru_.push_front(key);
    sessions_.emplace(std::move(key), Entry{sequence, lru_.begin()});
    return FenceReason::kAccepted;
}

FenceReason MessageFence::admit(std::string_view sender, uint32_t session, uint32_t sequence,
                                uint64_t epoch, uint64_t current, EpochRule rule) {
    FenceReason r = FenceReason::kAccepted;
    if (epoch < current)
        r = FenceReason::kStaleEpoch;
    else if (epoch > current && rule == EpochRule::kEqual)
        r = FenceReason::kFutureEpoch;
    if (r != FenceReason::kAccepted) {
        count(r);
        return r;
    }
    return admit(sender, session, sequence);
}

void MessageFence::count(FenceReason reason) {
    if (reason != FenceReason::kAccepted)
        counts_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

FenceCounts MessageFence::counts() const {
    auto at = [&](FenceReason r) {
        return counts_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
    };
    FenceCounts c;
    c.stale_epoch = at(FenceReason::kStaleEpoch);
    c.future_epoch = at(FenceReason::kFutureEpoch);
    c.replayed = at(FenceReason::kReplayed);
    c.unknown_request = at(FenceReason::kUnknownRequest);
    return c;
}

WireSender::WireSender() {
    renew();
}

std::pair<uint32_t, uint32_t> WireSender::next() {
    if (sequence_ == UINT32_MAX)
        renew();
    return {session_, ++sequence_};
}

void WireSender::renew() {
    std::random_device rd;
    const uint32_t old = session_;
    do {
        session_ = static_cast<uint32_t>(rd());
    } while (session_ == 0 || session_ == old);
    sequence_ = 0;
}

}  // namespace colony
