#include "model/layer_skip.h"

#include <algorithm>
#include <cctype>

#include "util/error.h"

namespace colony {
namespace {

uint32_t parse_block(const std::string &s, const std::string &item, const std::string &option) {
    if (s.empty() || s.size() > 9 ||
        !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
        throw Error(ErrorCode::kInvalidArgument,
                    option + ": '" + item + "' is not a block number or a range N-M");
    return static_cast<uint32_t>(std::stoul(s));
}

}  // namespace

bool LayerSkip::contains(uint32_t il) const {
    return std::binary_search(blocks.begin(), blocks.end(), il);
}

uint32_t LayerSkip::count_in(LayerRange r) const {
    return static_cast<uint32_t>(std::count_if(
        blocks.begin(), blocks.end(), [&](uint32_t il) { return il >= r.first && il < r.last; }));
}

LayerSkip LayerSkip::within(LayerRange r) const {
    LayerSkip s;
    for (uint32_t il : blocks)
        if (il >= r.first && il < r.last)
            s.blocks.push_back(il);
    return s;
}

LayerSkip LayerSkip::with(uint32_t il) const {
    LayerSkip s = *this;
    if (!contains(il)) {
        s.blocks.push_back(il);
        std::sort(s.blocks.begin(), s.blocks.end());
    }
    return s;
}

std::string LayerSkip::str() const {
    return block_list(blocks);
}

std::string block_list(const std::vector<uint32_t> &blocks) {
    std::string out;
    for (uint32_t il : blocks) {
        if (!out.empty())
            out += ',';
        out += std::to_string(il);
    }
    return out;
}

std::vector<uint32_t> parse_block_list(const std::string &list, const std::string &option) {
    std::vector<uint32_t> blocks;
    size_t start = 0;
    while (start < list.size()) {
        size_t end = list.find(',', start);
        if (end == std::string::npos)
            end = list.size();
        const std::string item = list.substr(start, end - start);
        start = end + 1;
        const size_t dash = item.find('-');
        const uint32_t first = parse_block(item.substr(0, dash), item, option);
        const uint32_t last =
            dash == std::string::npos ? first : parse_block(item.substr(dash + 1), item, option);
        if (last < first)
            throw Error(ErrorCode::kInvalidArgument,
                        option + ": the range '" + item + "' ends before it starts");
        if (last - first >= 100000)
            throw Error(ErrorCode::kInvalidArgument,
                        option + ": the range '" + item + "' is longer than any model");
        for (uint32_t il = first; il <= last; ++il)
            blocks.push_back(il);
    }
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    return blocks;
}

void check_blocks_exist(const std::vector<uint32_t> &blocks, uint32_t n_layer,
                        const std::string &option) {
    if (!blocks.empty() && blocks.back() >= n_layer)
        throw Error(ErrorCode::kInvalidArgument,
                    option + ": block " + std::to_string(blocks.back()) +
                        " does not exist; the model has blocks 0-" + std::to_string(n_layer - 1));
}

LayerSkip parse_layer_skip(const std::string &list, uint32_t n_layer) {
    LayerSkip s;
    s.blocks = parse_block_list(list, "--skip-layers");
    if (n_layer > 0)
        check_layer_skip(s, n_layer);
    return s;
}

void check_layer_skip(const LayerSkip &skip, uint32_t n_layer) {
    check_blocks_exist(skip.blocks, n_layer, "--skip-layers");
    if (n_layer > 0 && skip.count_in({0, n_layer}) == n_layer)
        throw Error(ErrorCode::kInvalidArgument, "--skip-layers: every one of the model's " +
                                                     std::to_string(n_layer) +
                                                     " blocks would be skipped");
}

}  // namespace colony
