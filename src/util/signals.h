// Stop signals for the long-running commands (serve, join, run): SIGINT
// and SIGTERM are blocked in every thread (call block_stop_signals() before
// starting any thread) and taken synchronously with wait_stop_signal(), so no
// library call is ever interrupted by a handler.
#pragma once

namespace colony {

/// Blocks SIGINT and SIGTERM in the calling thread; threads started later
/// inherit the mask. Also ignores SIGPIPE.
void block_stop_signals();

/// Waits up to timeout_ms for SIGINT or SIGTERM; returns the signal number,
/// or 0 when none arrived.
int wait_stop_signal(int timeout_ms);

}  // namespace colony
