// Field rules of every wire message (internal to colony_net). One rule set
// serves both directions: wire_encode runs it before writing (a violation is
// the caller's bug: kInvalidArgument) and wire_decode after reading (a
// violation is the peer's: kProtocol). The rules are listed in wire.h.
#pragma once

#include "net/wire.h"

namespace colony::wire_detail {

/// Throws Error(kProtocol, reason) when a field of body breaks a limit, a
/// range, or a shape rule.
void check_body(const WireBody &body, const WireLimits &limits);

}  // namespace colony::wire_detail
