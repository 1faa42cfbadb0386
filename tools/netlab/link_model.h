// The model of one direction of an emulated link (host A -> host B): which
// frames are dropped and when each surviving frame leaves the switch. Pure
// logic, no sockets, so it is unit-tested on its own.
//
// Order of effects for a frame arriving at time t (all times CLOCK_MONOTONIC ns):
//   1. cut            -> dropped ("cut")
//   2. tail drop      -> dropped ("queue") when the serialization backlog
//                        would exceed queue_bytes
//   3. serialization  -> tx_end = max(t, end of previous frame) + bytes * 8 / rate
//   4. Bernoulli loss -> dropped ("loss"); the lost frame still used its airtime
//   5. propagation    -> departure = tx_end + delay + J, never before tx_end and
//                        never before the previous frame's departure on this
//                        direction (FIFO: no reordering). J ~ U(-jitter, +jitter)
//                        is drawn afresh for a frame that arrives jitter_hold or
//                        more after the last draw; frames arriving sooner reuse
//                        it, so the frames of one message (which reach the switch
//                        microseconds apart) share one delay, as on a radio link
//                        where a burst waits for the channel together.
// With jitter_hold = 0 this is the model of Linux netem with `delay D J rate R
// loss P` (uniform jitter, rate applied before delay), except that netem may
// reorder on jitter. Per-frame draws plus FIFO make a k-frame message wait for
// the largest of k draws, i.e. close to delay + jitter, hence the hold.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace colony::netlab {

/// The parameters of one direction of a link. Zero means "none": no delay, no
/// jitter, unlimited rate, no loss.
struct LinkParams {
    int64_t delay_ns = 0;   ///< one-way propagation delay, ns, >= 0
    int64_t jitter_ns = 0;  ///< half-width of the uniform delay variation, ns, <= delay_ns
    /// How long one jitter draw applies to later arriving frames, ns, >= 0
    /// (0 = a new draw per frame).
    int64_t jitter_hold_ns = 1000000;
    double rate_bps = 0;  ///< bandwidth cap in bit/s; 0 = unlimited
    double loss = 0;      ///< probability in [0, 1] that a frame is lost
    /// Tail-drop limit of the serialization backlog in bytes (frames waiting for
    /// the link, not frames in flight). Default: 1000 full Ethernet frames, the
    /// default limit of Linux netem and of a veth's txqueuelen.
    int64_t queue_bytes = 1000 * 1514;
};

/// A named link profile (docs/netlab.md): loopback, ethernet, wifi, wifi-poor, wan.
struct NamedProfile {
    const char *name;
    LinkParams params;
};

/// All named profiles, in the order of the documentation table.
const std::vector<NamedProfile> &named_profiles();

/// The profile called `name`. Throws colony::Error(kInvalidArgument) naming the
/// known profiles when there is none.
LinkParams profile_by_name(const std::string &name);

/// Applies one "key=value" setting to `params`. Keys: profile (replaces all
/// fields), delay_ms, jitter_ms, jitter_hold_ms, rate_mbit (1 Mbit = 1e6 bit),
/// loss_pct, queue_kb (1 kB = 1000 bytes). Throws colony::Error(kInvalidArgument) on an
/// unknown key, a malformed number or an out-of-range value.
void apply_setting(LinkParams &params, const std::string &key_value);

/// Checks the invariants documented on LinkParams; throws
/// colony::Error(kInvalidArgument) when one fails (e.g. jitter > delay).
void validate(const LinkParams &params);

/// One line, "delay_ms=3 jitter_ms=1 jitter_hold_ms=1 rate_mbit=200 loss_pct=0 queue_kb=1514".
std::string describe(const LinkParams &params);

/// Why a frame was dropped.
enum class DropReason { kCut, kQueue, kLoss, kSend };

/// Counters of one direction; bytes are frame bytes as counted for the rate.
struct LinkCounters {
    uint64_t frames_in = 0;
    uint64_t frames_out = 0;
    uint64_t bytes_out = 0;
    uint64_t dropped_cut = 0;
    uint64_t dropped_queue = 0;
    uint64_t dropped_loss = 0;
    uint64_t dropped_send = 0;  ///< the kernel refused the frame at departure (e.g. ENOBUFS)
};

/// The verdict on one arriving frame: a departure time or a drop reason.
struct Verdict {
    std::optional<int64_t> depart_ns;  ///< set when the frame is forwarded
    DropReason reason = DropReason::kCut;
};

/// One direction of a link. Not thread-safe; one event loop owns it.
class LinkDirection {
  public:
    LinkDirection() = default;

    /// Replaces the parameters for frames that arrive from now on (frames
    /// already scheduled keep their departure time). Validates them first.
    void set_params(const LinkParams &params);
    const LinkParams &params() const { return params_; }

    /// Cuts (true) or restores (false) the direction; a cut direction drops
    /// every arriving frame and every frame still waiting to depart.
    void set_cut(bool cut) { cut_ = cut; }
    bool cut() const { return cut_; }

    /// Decides the fate of a frame of `wire_bytes` bytes arriving at `now_ns`.
    /// Departure times returned by successive calls never decrease.
    Verdict admit(int64_t now_ns, int64_t wire_bytes, std::mt19937_64 &rng);

    /// Records that a frame admitted earlier left the switch.
    void on_sent(int64_t wire_bytes);
    /// Records that a frame admitted earlier was dropped at its departure time:
    /// kCut when the direction was cut meanwhile, kSend when the kernel refused it.
    void on_dropped_at_departure(DropReason reason);

    const LinkCounters &counters() const { return counters_; }

  private:
    LinkParams params_;
    bool cut_ = false;
    int64_t link_free_ns_ = 0;                   // end of serialization of the last admitted frame
    int64_t last_depart_ns_ = 0;                 // departure time of the last admitted frame
    int64_t jitter_draw_ns_ = 0;                 // the current jitter draw
    std::optional<int64_t> jitter_drawn_at_ns_;  // arrival time of the frame that drew it
    LinkCounters counters_;
};

}  // namespace colony::netlab
