#include "cli/model_source.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "hub/pull.h"

namespace colony {

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

PullPrinter::PullPrinter(bool quiet)
    : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), start_s_(now_s()) {}

void PullPrinter::progress(uint64_t done, uint64_t total, uint64_t resumed_from, bool hashing) {
    if (quiet_ || total == 0)
        return;
    const double t = now_s();
    const bool last = done == total;
    if (!last && last_s_ >= 0 && t - last_s_ < (tty_ ? 0.25 : 10.0))
        return;
    last_s_ = t;
    const double mib = 1024.0 * 1024.0;
    const double rate =
        done > resumed_from && t > start_s_ ? (done - resumed_from) / (t - start_s_) : 0.0;
    const int width = 30, filled = static_cast<int>(width * static_cast<double>(done) / total);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s%s [%s] %5.1f%% %8.1f / %.1f MiB", tty_ ? "\r" : "",
                 hashing ? "checking" : "pulling ", bar.c_str(), 100.0 * done / total, done / mib,
                 total / mib);
    if (!hashing && rate > 0) {
        std::fprintf(stderr, "  %.1f MiB/s", rate / mib);
        if (!last)
            std::fprintf(stderr, "  ETA %.0f s", (total - done) / rate);
    }
    std::fprintf(stderr, "%s", tty_ ? "\033[K" : "\n");
    open_ = tty_;
    std::fflush(stderr);
}

void PullPrinter::note(const std::string &text) const {
    if (quiet_)
        return;
    std::fprintf(stderr, "%scolony pull: %s\n", open_ ? "\n" : "", text.c_str());
}

void PullPrinter::finish() {
    if (open_)
        std::fputc('\n', stderr);
    open_ = false;
}

std::string resolve_model_arg(const std::string &arg, std::string *url) {
    if (url)
        url->clear();
    if (!is_model_ref(arg))
        return arg;
    PullOptions o;
    PullPrinter printer(false);
    o.progress = [&](const PullProgress &p) {
        printer.progress(p.done, p.total, p.resumed_from, p.hashing);
    };
    o.note = [&](const std::string &s) { printer.note(s); };
    const PulledModel m = pull_model(Hub::from_env(), parse_model_ref(arg), o);
    printer.finish();
    if (url)
        *url = m.info.url.str();
    return m.path.string();
}

}  // namespace colony
