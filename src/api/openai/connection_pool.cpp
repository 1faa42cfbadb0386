#include "api/openai/connection_pool.h"

#include <algorithm>
#include <chrono>

namespace colony {

namespace {
constexpr std::chrono::seconds kIdleExit{60};  // a thread above the base count ends after this
}

ConnectionPool::ConnectionPool(size_t base, size_t max) : max_(std::max<size_t>(max, 1)) {
    base = std::clamp<size_t>(base, 1, max_);
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < base; ++i)
        threads_.emplace_back([this] { worker(true); });
}

ConnectionPool::~ConnectionPool() {
    shutdown();
}

bool ConnectionPool::enqueue(std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (shutdown_)
            return false;
        jobs_.push_back(std::move(fn));
        reap_finished();
        if (jobs_.size() > idle_ && threads_.size() < max_)
            threads_.emplace_back([this] { worker(false); });
    }
    cv_.notify_one();
    return true;
}

void ConnectionPool::shutdown() {
    std::list<std::thread> threads;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (shutdown_ && threads_.empty())
            return;
        shutdown_ = true;
        threads.swap(threads_);
        finished_.clear();
    }
    cv_.notify_all();
    for (std::thread &t : threads) {
        if (t.joinable())
            t.join();
    }
}

void ConnectionPool::worker(bool permanent) {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            ++idle_;
            const auto has_work = [this] { return shutdown_ || !jobs_.empty(); };
            bool woke = true;
            if (permanent)
                cv_.wait(lock, has_work);
            else
                woke = cv_.wait_for(lock, kIdleExit, has_work);
            --idle_;
            if (jobs_.empty() && (shutdown_ || !woke)) {
                if (!shutdown_)
                    finished_.push_back(std::this_thread::get_id());
                return;
            }
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();
    }
}

void ConnectionPool::reap_finished() {
    for (auto id = finished_.begin(); id != finished_.end();) {
        auto t = std::find_if(threads_.begin(), threads_.end(),
                              [&](const std::thread &th) { return th.get_id() == *id; });
        if (t == threads_.end()) {
            ++id;
            continue;
        }
        t->join();  // it has returned from worker() or is about to
        threads_.erase(t);
        id = finished_.erase(id);
    }
}

}  // namespace colony
