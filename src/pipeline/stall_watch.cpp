#include "pipeline/stall_watch.h"

#include <algorithm>

namespace colony {

namespace {
double ms_between(StallWatch::clock::time_point a, StallWatch::clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

uint64_t StallWatch::sent(uint32_t n_tokens, clock::time_point at) {
    in_flight_.push_back({next_id_, n_tokens, at});
    tokens_in_flight_ += n_tokens;
    return next_id_++;
}

void StallWatch::answered(uint64_t id, clock::time_point at) {
    if (in_flight_.empty() || id < in_flight_.front().id)
        return;
    clock::time_point start = in_flight_.front().sent_at;
    if (last_progress_ && *last_progress_ > start)
        start = *last_progress_;
    uint64_t done = 0;
    while (!in_flight_.empty() && in_flight_.front().id <= id) {
        done += in_flight_.front().n_tokens;
        tokens_in_flight_ -= in_flight_.front().n_tokens;
        in_flight_.pop_front();
    }
    last_progress_ = at;
    if (done == 0)
        return;
    // A slow phase (a throttled phone) fades out slowly; a slower sample counts at once.
    const double sample = std::max(0.0, ms_between(start, at)) / static_cast<double>(done);
    ms_per_token_ = std::max(sample, 0.9 * ms_per_token_ + 0.1 * sample);
}

void StallWatch::hint_ms_per_token(double ms) {
    if (ms > ms_per_token_)
        ms_per_token_ = ms;
}

void StallWatch::clear() {
    in_flight_.clear();
    tokens_in_flight_ = 0;
    last_progress_.reset();
    idle_from_.reset();
}

std::optional<int64_t> StallWatch::waited_ms(clock::time_point now) const {
    if (in_flight_.empty())
        return std::nullopt;
    clock::time_point start = in_flight_.front().sent_at;
    if (last_progress_ && *last_progress_ > start)
        start = *last_progress_;
    if (idle_from_ && *idle_from_ > start)
        start = *idle_from_;
    return static_cast<int64_t>(ms_between(start, now));
}

int64_t StallWatch::allowance_ms() const {
    return base_ms_ +
           static_cast<int64_t>(kSlack * ms_per_token_ * static_cast<double>(tokens_in_flight_));
}

}  // namespace colony
