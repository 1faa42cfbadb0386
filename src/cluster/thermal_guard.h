// --max-temp: fewer compute threads before a device throttles. A phone that
// heats up lowers its clocks on its own, and the measured drift of its stage
// then re-plans (cluster/replan.h); a guard that sheds threads at a set
// temperature keeps it below the throttling point instead, at a known cost.
#pragma once

#include <optional>

namespace colony {

/// The thread count a stage should run at, from successive temperature
/// readings (one per status tick, every 2 s in a worker). At or above
/// max_temp_c the count halves (at least 1); once the reading is hysteresis_c
/// below max_temp_c it doubles back (at most max_threads); in between, and
/// for a missing reading, it stays. One step per reading, so a spike costs
/// one halving and the way back is gradual.
class ThermalGuard {
  public:
    /// max_threads >= 1; max_temp_c <= 0 turns the guard off (threads stay
    /// max_threads).
    ThermalGuard(int max_threads, double max_temp_c, double hysteresis_c = 5.0);

    /// Takes a reading (°C, nullopt when the device has none) and returns the
    /// thread count to use from now on.
    int update(std::optional<double> temp_c);

    int threads() const { return threads_; }
    int max_threads() const { return max_threads_; }
    bool enabled() const { return max_temp_c_ > 0; }
    /// Whether the guard holds the count below max_threads.
    bool limiting() const { return threads_ < max_threads_; }

  private:
    int max_threads_;
    double max_temp_c_, hysteresis_c_;
    int threads_;
};

}  // namespace colony
