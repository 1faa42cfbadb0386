#include "util/signals.h"

#include <csignal>
#include <ctime>

#include <pthread.h>

namespace colony {

namespace {

sigset_t stop_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

}  // namespace

void block_stop_signals() {
    const sigset_t set = stop_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

int wait_stop_signal(int timeout_ms) {
    const sigset_t set = stop_set();
    timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    const int sig = sigtimedwait(&set, nullptr, &ts);
    return sig > 0 ? sig : 0;
}

}  // namespace colony
