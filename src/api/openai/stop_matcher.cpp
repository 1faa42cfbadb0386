#include "api/openai/stop_matcher.h"

#include <algorithm>

namespace colony {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto &s : stops) {
        if (!s.empty())
            stops_.push_back(std::move(s));
    }
}

std::string StopMatcher::push(const std::string &text) {
    if (stopped_)
        return "";
    pending_ += text;
    if (stops_.empty()) {
        std::string out;
        out.swap(pending_);
        return out;
    }
    // earliest complete match wins
    size_t first = std::string::npos;
    for (const auto &s : stops_)
        first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
        stopped_ = true;
        std::string out = pending_.substr(0, first);
        pending_.clear();
        return out;
    }
    // hold back the longest suffix that is a proper prefix of some stop sequence
    size_t hold = 0;
    for (const auto &s : stops_) {
        const size_t max_k = std::min(s.size() - 1, pending_.size());
        for (size_t k = max_k; k > hold; --k) {
            if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
                hold = k;
                break;
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    if (!stopped_)
        out.swap(pending_);
    return out;
}

}  // namespace colony
