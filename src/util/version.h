// colony's software version, as workers report it in JOIN and as cached
// measurements are keyed by it. Keep equal to project(VERSION) in CMakeLists.txt.
#pragma once

namespace colony {

inline constexpr const char *kSoftwareVersion = "0.1.0";

}  // namespace colony
