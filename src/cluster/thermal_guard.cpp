#include "cluster/thermal_guard.h"

#include <algorithm>

namespace colony {

ThermalGuard::ThermalGuard(int max_threads, double max_temp_c, double hysteresis_c)
    : max_threads_(std::max(1, max_threads)),
      max_temp_c_(max_temp_c),
      hysteresis_c_(std::max(0.0, hysteresis_c)),
      threads_(max_threads_) {}

int ThermalGuard::update(std::optional<double> temp_c) {
    if (!enabled() || !temp_c)
        return threads_;
    if (*temp_c >= max_temp_c_)
        threads_ = std::max(1, threads_ / 2);
    else if (*temp_c < max_temp_c_ - hysteresis_c_)
        threads_ = std::min(max_threads_, threads_ * 2);
    return threads_;
}

}  // namespace colony
