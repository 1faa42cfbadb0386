// Layer splits: parsing --split, printing it, and the proportional split.
#include "cluster/layer_split.h"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <string>

#include "util/error.h"

namespace colony {
namespace {

[[noreturn]] void bad_split(std::string_view spec, const std::string &msg) {
    throw Error(ErrorCode::kInvalidArgument, "layer split '" + std::string(spec) + "': " + msg);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// A decimal layer index: digits only, no sign, no overflow.
bool parse_index(std::string_view s, uint32_t *out) {
    s = trim(s);
    if (s.empty() || s.front() < '0' || s.front() > '9')
        return false;
    const char *end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, *out);
    return ec == std::errc() && p == end;
}

}  // namespace

std::vector<LayerRange> parse_layer_split(std::string_view spec, uint32_t n_layer) {
    if (n_layer < 1)
        bad_split(spec, "the model has no layers");
    if (trim(spec).empty())
        bad_split(spec, "empty; expected e.g. \"0:10,10:20\"");
    std::vector<LayerRange> ranges;
    std::string_view rest = spec;
    uint32_t next = 0;
    for (size_t item = 1;; ++item) {
        const size_t comma = rest.find(',');
        const std::string_view part = trim(rest.substr(0, comma));
        const std::string where = "range " + std::to_string(item) + " '" + std::string(part) + "'";
        const size_t colon = part.find(':');
        LayerRange r;
        if (colon == std::string_view::npos || !parse_index(part.substr(0, colon), &r.first) ||
            !parse_index(part.substr(colon + 1), &r.last)) {
            bad_split(spec, where + " is not first:last with non-negative integers");
        }
        if (r.last <= r.first)
            bad_split(spec, where + " is empty or reversed");
        if (r.first != next) {
            bad_split(spec, where + " starts at " + std::to_string(r.first) + ", expected " +
                                std::to_string(next) +
                                (next == 0 ? " (the first range starts at 0)"
                                           : " (ranges must be contiguous)"));
        }
        if (r.last > n_layer) {
            bad_split(spec,
                      where + " ends past the model's " + std::to_string(n_layer) + " layers");
        }
        ranges.push_back(r);
        next = r.last;
        if (comma == std::string_view::npos)
            break;
        rest.remove_prefix(comma + 1);
    }
    if (next != n_layer) {
        bad_split(spec, "covers layers 0.." + std::to_string(next) + ", the model has " +
                            std::to_string(n_layer));
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
