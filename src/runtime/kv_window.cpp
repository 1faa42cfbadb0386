#include "runtime/kv_window.h"

#include <string>

#include "util/error.h"

namespace colony {

void KvWindow::validate(uint32_t n_ctx_seq) const {
    if (!enabled()) {
        if (sinks > 0)
            throw Error(ErrorCode::kInvalidArgument, "--kv-sinks needs --kv-window");
        return;
    }
    if (window > n_ctx_seq)
        throw Error(ErrorCode::kInvalidArgument,
                    "--kv-window " + std::to_string(window) + " is larger than the context (" +
                        std::to_string(n_ctx_seq) + " tokens per sequence)");
    if (sinks + 2 > window)
        throw Error(ErrorCode::kInvalidArgument, "--kv-sinks " + std::to_string(sinks) +
                                                     " leaves nothing to slide in a window of " +
                                                     std::to_string(window) +
                                                     " (sinks must be at most window - 2)");
}

std::optional<KvShift> KvWindow::shift_before(int32_t n_past, int32_t n_new) const {
    if (!enabled() || static_cast<int64_t>(n_past) + n_new < window)
        return std::nullopt;
    KvShift s;
    s.p0 = static_cast<int32_t>(sinks);
    s.n_past = n_past;
    s.n_discard = (n_past - s.p0) / 2;
    return s;
}

}  // namespace colony
