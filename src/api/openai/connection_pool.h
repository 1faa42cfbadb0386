// The HTTP server's threads: cpp-httplib serves each connection on one
// thread for the connection's life (keep-alive included), so idle or slow
// clients hold threads. This pool starts a thread whenever more connections
// wait than threads are idle (cpp-httplib's own ThreadPool starts one only
// when no thread is idle, counted when a woken thread runs, so a burst of new
// connections can queue behind idle keep-alive ones), up to a cap; threads
// above the base count end after a minute without work.
#pragma once

#include <cpp-httplib/httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace colony {

class ConnectionPool final : public httplib::TaskQueue {
  public:
    /// `base` threads start at once and stay; at most `max` run (max >= base >= 1).
    ConnectionPool(size_t base, size_t max);
    ~ConnectionPool() override;

    /// Queues a connection; false after shutdown().
    bool enqueue(std::function<void()> fn) override;
    /// Ends every thread once the queued connections are served.
    void shutdown() override;

  private:
    void worker(bool permanent);
    void reap_finished();  // joins threads that ended (mutex_ held)

    size_t max_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::list<std::thread> threads_;
    std::list<std::thread::id> finished_;
    size_t idle_ = 0;
    bool shutdown_ = false;
};

}  // namespace colony
