#include "pipeline/cached_assignment.h"

#include <utility>

namespace colony {

void prefer_cached_ranges(std::vector<int> &members, const std::vector<LayerRange> &ranges,
                          const std::function<bool(int member, LayerRange range)> &has_cached,
                          const std::function<bool(const std::vector<int> &members)> &acceptable) {
    const size_t n = members.size();
    auto happy = [&](size_t i) { return members[i] >= 0 && has_cached(members[i], ranges[i]); };
    for (bool traded = true; traded;) {
        traded = false;
        for (size_t i = 0; i < n; ++i) {
            if (members[i] < 0 || happy(i))
                continue;
            // a member that holds ranges[i] and is not serving a range it holds
            for (size_t j = 0; j < n; ++j) {
                if (j == i || members[j] < 0 || happy(j) || !has_cached(members[j], ranges[i]))
                    continue;
                std::swap(members[i], members[j]);
                if (acceptable(members)) {
                    traded = true;
                    break;
                }
                std::swap(members[i], members[j]);
            }
        }
    }
}

}  // namespace colony
