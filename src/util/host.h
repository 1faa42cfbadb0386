// This machine's identity as other nodes and people see it.
#pragma once

#include <optional>
#include <string>

namespace colony {

/// This machine's host name (gethostname(2)); nullopt when the system does
/// not say. Callers pick their own fallback ("worker", "coordinator", ...).
std::optional<std::string> host_name();

}  // namespace colony
