// Tells a lost ubatch from a slow one. The pipeline is FIFO: every stage
// handles ubatches in the order stage 0 sent them, so when the answer to
// ubatch k comes back, every ubatch sent before k is done too. A ubatch is
// overdue when the pipeline has made no progress for longer than
//   base_timeout_ms + kSlack x ms_per_token x (tokens in flight),
// where ms_per_token is learned from the answers (and from hints such as
// stage 0's own compute time). kSlack covers what the estimate misses: a
// time per token from decode steps or a 64-token probe is not an upper bound
// for a long prompt (on stories260K a 211-token prompt cost 3x the probe's
// time per token), and a device can slow down while it works. Failing a
// request that was only slow is worse than noticing a lost ubatch late, so
// the slack is large. So 8 prompts of 512 tokens on a cluster of
// phones get minutes, and a lost decode step on a fast cluster is noticed
// after about base_timeout_ms. A worker that disappears is noticed earlier by
// its missing heartbeats; this is the backstop for a message that never
// comes back.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

namespace colony {

class StallWatch {
  public:
    using clock = std::chrono::steady_clock;
    static constexpr double kSlack = 10.0;

    /// base_timeout_ms: the allowance with no tokens in flight (>= 0).
    explicit StallWatch(int64_t base_timeout_ms) : base_ms_(base_timeout_ms) {}

    /// A ubatch of n_tokens entered the pipeline at `at`; returns its id
    /// (increasing).
    uint64_t sent(uint32_t n_tokens, clock::time_point at);
    /// The answer to ubatch `id` arrived at `at`: it and every older ubatch
    /// are done. Learns the time per token from the interval. Unknown or
    /// already finished ids are ignored.
    void answered(uint64_t id, clock::time_point at);
    /// A lower bound for the time per token, ms (e.g. stage 0's compute time
    /// per token scaled to the whole model).
    void hint_ms_per_token(double ms);
    /// Nothing awaits an answer at `now` (e.g. only prefill chunks without
    /// outputs are in flight, or their sequence was cancelled): the waiting
    /// clock starts again from `now`. Keeps the ubatches, which the next
    /// answer clears.
    void idle(clock::time_point now) { idle_from_ = now; }
    /// Forgets every ubatch in flight (a new plan, failed requests).
    void clear();

    /// How long the oldest unfinished ubatch has waited without progress, ms;
    /// nullopt when nothing is in flight.
    std::optional<int64_t> waited_ms(clock::time_point now) const;
    /// The allowance for the ubatches in flight now, ms.
    int64_t allowance_ms() const;
    bool overdue(clock::time_point now) const {
        const std::optional<int64_t> w = waited_ms(now);
        return w && *w > allowance_ms();
    }
    uint64_t tokens_in_flight() const { return tokens_in_flight_; }
    double ms_per_token() const { return ms_per_token_; }

  private:
    struct InFlight {
        uint64_t id;
        uint32_t n_tokens;
        clock::time_point sent_at;
    };
    int64_t base_ms_;
    std::deque<InFlight> in_flight_;  // oldest first
    uint64_t next_id_ = 1;
    uint64_t tokens_in_flight_ = 0;
    double ms_per_token_ = 0;
    std::optional<clock::time_point> last_progress_;  // the last answer
    std::optional<clock::time_point> idle_from_;      // the last idle() call
};

}  // namespace colony
