#include "pipeline/layer_split.h"

#include <algorithm>
#include <charconv>
#include <numeric>

#include "util/error.h"

namespace colony {

namespace {

uint32_t parse_u32(std::string_view s, std::string_view part) {
    uint32_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--split: '" + std::string(part) + "' is not FIRST:LAST (e.g. 0:3)");
    }
    return v;
}

}  // namespace

std::vector<LayerRange> parse_layer_split(std::string_view text, uint32_t n_layer) {
    std::vector<LayerRange> ranges;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view part = text.substr(start, comma - start);
        const size_t colon = part.find(':');
        if (colon == std::string_view::npos) {
            throw Error(ErrorCode::kInvalidArgument,
                        "--split: '" + std::string(part) + "' is not FIRST:LAST (e.g. 0:3)");
        }
        const LayerRange r{parse_u32(part.substr(0, colon), part),
                           parse_u32(part.substr(colon + 1), part)};
        if (r.empty()) {
            throw Error(ErrorCode::kInvalidArgument, "--split: range " + r.str() + " is empty");
        }
        const uint32_t expected_first = ranges.empty() ? 0 : ranges.back().last;
        if (r.first != expected_first) {
            throw Error(ErrorCode::kInvalidArgument,
                        "--split: range " + r.str() + " must start at layer " +
                            std::to_string(expected_first) + " (ranges are contiguous from 0)");
        }
        ranges.push_back(r);
        start = comma + 1;
    }
    if (ranges.back().last != n_layer) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--split: the last range ends at layer " + std::to_string(ranges.back().last) +
                        ", the model has " + std::to_string(n_layer) + " layers");
    }
    return ranges;
}

std::string format_layer_split(const std::vector<LayerRange> &ranges) {
    std::string s;
    for (const LayerRange &r : ranges) {
        if (!s.empty())
            s += ',';
        s += std::to_string(r.first) + ":" + std::to_string(r.last);
    }
    return s;
}

std::vector<LayerRange> proportional_layer_split(uint32_t n_layer,
                                                 const std::vector<double> &weights) {
    const size_t n = weights.size();
    if (n == 0)
        throw Error(ErrorCode::kInvalidArgument, "layer split over no nodes");
    if (n > n_layer) {
        throw Error(ErrorCode::kInvalidArgument, "cannot split " + std::to_string(n_layer) +
                                                     " layers over " + std::to_string(n) +
                                                     " nodes: each needs at least one layer");
    }
    double min_pos = 0;
    for (double w : weights) {
        if (w > 0 && (min_pos == 0 || w < min_pos))
            min_pos = w;
    }
    std::vector<double> w(n);
    for (size_t i = 0; i < n; ++i)
        w[i] = weights[i] > 0 ? weights[i] : (min_pos > 0 ? min_pos : 1);
    const double total = std::accumulate(w.begin(), w.end(), 0.0);

    // One layer each, then the rest by largest remainder of the ideal shares.
    const uint32_t spare = n_layer - static_cast<uint32_t>(n);
    std::vector<uint32_t> count(n, 1);
    std::vector<double> rem(n);
    uint32_t given = 0;
    for (size_t i = 0; i < n; ++i) {
        const double ideal = spare * w[i] / total;
        const uint32_t whole = static_cast<uint32_t>(ideal);
        count[i] += whole;
        given += whole;
        rem[i] = ideal - whole;
    }
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return rem[a] > rem[b]; });
    for (size_t k = 0; given < spare; ++k, ++given)
        ++count[order[k % n]];

    std::vector<LayerRange> ranges;
    uint32_t first = 0;
    for (uint32_t c : count) {
        ranges.push_back({first, first + c});
        first += c;
    }
    return ranges;
}

}  // namespace colony
