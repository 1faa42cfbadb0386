// A contiguous range of transformer blocks [first, last) owned by one stage.
#pragma once

#include <cstdint>
#include <string>

namespace colony {

struct LayerRange {
    uint32_t first = 0;
    uint32_t last = 0;  // exclusive

    uint32_t size() const { return last - first; }
    bool empty() const { return last <= first; }
    bool operator==(const LayerRange &o) const { return first == o.first && last == o.last; }
    bool operator!=(const LayerRange &o) const { return !(*this == o); }
    std::string str() const { return "[" + std::to_string(first) + "," + std::to_string(last) + ")"; }
};

}  // namespace colony
