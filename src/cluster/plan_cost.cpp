#include "cluster/plan_cost.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "util/error.h"

namespace colony {
namespace {

[[noreturn]] void bad_input(const std::string &msg) {
    throw Error(ErrorCode::kInvalidArgument, "planner input: " + msg);
}

void validate_model(const ModelShape &m) {
    if (m.n_layer < 1 || m.n_layer > 32767) {
        bad_input("n_layer is " + std::to_string(m.n_layer) + ", must be in 1..32767");
    }
    if (m.layer_weight_bytes.size() != static_cast<size_t>(m.n_layer)) {
        bad_input("layer_weight_bytes has " + std::to_string(m.layer_weight_bytes.size()) +
                  " entries, expected n_layer = " + std::to_string(m.n_layer));
    }
    constexpr uint64_t kMaxBytes = uint64_t{1} << 50;  // 1 PiB
    for (int l = 0; l < m.n_layer; ++l) {
        if (m.layer_weight_bytes[l] > kMaxBytes) {
            bad_input("layer_weight_bytes[" + std::to_string(l) + "] is over 1 PiB");
        }
    }
    if (!m.layer_skipped.empty() && m.layer_skipped.size() != static_cast<size_t>(m.n_layer)) {
        bad_input("layer_skipped has " + std::to_string(m.layer_skipped.size()) +
                  " entries, expected 0 or n_layer = " + std::to_string(m.n_layer));
    }
    if (m.hidden_bytes_per_token == 0 || m.hidden_bytes_per_token > (uint64_t{1} << 30)) {
        bad_input("hidden_bytes_per_token must be in 1..1 GiB");
    }
    if (m.kv_bytes_per_token_per_layer > kMaxBytes || m.first_stage_extra_bytes > kMaxBytes ||
        m.last_stage_extra_bytes > kMaxBytes || m.token_message_bytes > kMaxBytes) {
        bad_input("a byte count of the model shape is over 1 PiB");
    }
    if (m.n_ctx < 1 || m.n_ctx > (uint64_t{1} << 24)) {
        bad_input("n_ctx is " + std::to_string(m.n_ctx) + ", must be in 1..16777216");
    }
    if (m.n_parallel < 1 || m.n_parallel > 4096) {
        bad_input("n_parallel is " + std::to_string(m.n_parallel) + ", must be in 1..4096");
    }
}

void validate_options(const PlannerOptions &o) {
    if (!(o.min_battery_percent >= 0 && o.min_battery_percent <= 100)) {
        bad_input("min_battery_percent must be in 0..100");
    }
    if (o.max_temperature_c && !std::isfinite(*o.max_temperature_c)) {
        bad_input("max_temperature_c must be finite");
    }
    if (o.max_devices < 1 || o.max_devices > 12)
        bad_input("max_devices must be in 1..12");
    if (o.default_link) {
        const LinkProfile &l = *o.default_link;
        if (!(l.rtt_ms >= 0 && l.rtt_ms < 100'000))
            bad_input("default_link.rtt_ms out of range");
        if (!(l.throughput_bytes_per_s > 0 && l.throughput_bytes_per_s <= 1e12)) {
            bad_input("default_link.throughput_bytes_per_s out of range");
        }
    }
}

}  // namespace

uint64_t add_bytes_saturating(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t mul_bytes_saturating(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

PlanCostModel::PlanCostModel(const PlannerInput &input) : input_(input) {
    const ModelShape &m = input_.model;
    validate_model(m);
    validate_options(input_.options);
    std::set<std::string> ids;
    for (const DeviceProfile &d : input_.devices) {
        try {
            validate_device_profile(d);
        } catch (const Error &e) {
            bad_input(e.what());
        }
        if (!ids.insert(d.node_id).second)
            bad_input("node id '" + d.node_id + "' appears twice");
    }
    for (const LinkProfile &l : input_.links) {
        try {
            validate_link_profile(l);
        } catch (const Error &e) {
            bad_input(e.what());
        }
    }

    const uint64_t kv_tokens = mul_bytes_saturating(m.n_ctx, m.n_parallel);
    const uint64_t kv_per_layer = mul_bytes_saturating(m.kv_bytes_per_token_per_layer, kv_tokens);
    prefix_bytes_.assign(m.n_layer + 1, 0);
    prefix_weight_bytes_.assign(m.n_layer + 1, 0);
    prefix_computed_.assign(m.n_layer + 1, 0);
    for (int l = 0; l < m.n_layer; ++l) {
        const bool skipped = !m.layer_skipped.empty() && m.layer_skipped[l] != 0;
        const uint64_t weights = skipped ? 0 : m.layer_weight_bytes[l];
        const uint64_t block = skipped ? 0 : add_bytes_saturating(weights, kv_per_layer);
        prefix_bytes_[l + 1] = add_bytes_saturating(prefix_bytes_[l], block);
        prefix_weight_bytes_[l + 1] = add_bytes_saturating(prefix_weight_bytes_[l], weights);
        prefix_computed_[l + 1] = prefix_computed_[l] + (skipped ? 0 : 1);
    }
    // a device's own KV cache types (DeviceProfile::kv_bytes_per_token_per_layer)
    device_kv_per_layer_.clear();
    for (const DeviceProfile &d : input_.devices) {
        const uint64_t per_token = d.kv_bytes_per_token_per_layer > 0
                                       ? d.kv_bytes_per_token_per_layer
                                       : m.kv_bytes_per_token_per_layer;
        device_kv_per_layer_.push_back(mul_bytes_saturating(per_token, kv_tokens));
    }

    const size_t n = input_.devices.size();
    const std::string &coord = input_.options.coordinator_id;
    hidden_hop_.assign(n * n, 0);
    token_in_.assign(n, 0);
    token_out_.assign(n, 0);
    for (size_t a = 0; a < n; ++a) {
        const std::string &id_a = input_.devices[a].node_id;
        for (size_t b = 0; b < n; ++b) {
            hidden_hop_[a * n + b] =
                hop_ms(id_a, input_.devices[b].node_id, m.hidden_bytes_per_token);
        }
        if (!coord.empty()) {
            token_in_[a] = hop_ms(coord, id_a, m.token_message_bytes);
            token_out_[a] = hop_ms(id_a, coord, m.token_message_bytes);
        }
    }
}

std::optional<size_t> PlanCostModel::device_index(const std::string &node_id) const {
    for (size_t i = 0; i < input_.devices.size(); ++i) {
        if (input_.devices[i].node_id == node_id)
            return i;
    }
    return std::nullopt;
}

uint64_t PlanCostModel::range_bytes(LayerRange r) const {
    // Prefix sums saturate, so a saturated end makes the difference
    // meaningless; report saturation instead.
    if (prefix_bytes_[r.last] == UINT64_MAX)
        return UINT64_MAX;
    return prefix_bytes_[r.last] - prefix_bytes_[r.first];
}

uint64_t PlanCostModel::stage_memory_bytes(size_t device, LayerRange r) const {
    const ModelShape &m = input_.model;
    if (prefix_weight_bytes_[r.last] == UINT64_MAX)
        return UINT64_MAX;
    uint64_t bytes = add_bytes_saturating(
        prefix_weight_bytes_[r.last] - prefix_weight_bytes_[r.first],
        mul_bytes_saturating(device_kv_per_layer_[device], computed_blocks(r)));
    if (r.first == 0)
        bytes = add_bytes_saturating(bytes, m.first_stage_extra_bytes);
    if (r.last == m.n_layer)
        bytes = add_bytes_saturating(bytes, m.last_stage_extra_bytes);
    return add_bytes_saturating(bytes, input_.devices[device].headroom_bytes);
}

double PlanCostModel::compute_ms(size_t device, LayerRange r) const {
    const DeviceProfile &d = input_.devices[device];
    double ms = d.decode_ms_per_layer * computed_blocks(r);
    if (r.last == input_.model.n_layer)
        ms += d.decode_ms_output;
    return ms;
}

double PlanCostModel::hop_ms(const std::string &from, const std::string &to, uint64_t bytes) const {
    if (from == to)
        return 0;
    const LinkProfile *link = find_link(input_.links, from, to);
    if (!link) {
        if (!input_.options.default_link)
            return kUnreachableMs;
        link = &*input_.options.default_link;
    }
    return link->rtt_ms / 2 + static_cast<double>(bytes) / link->throughput_bytes_per_s * 1000.0;
}

uint64_t PlanCostModel::min_stage_memory_bytes(size_t device) const {
    uint64_t best = UINT64_MAX;
    for (int l = 0; l < n_layer(); ++l) {
        const auto first = static_cast<uint32_t>(l);
        best = std::min(best, stage_memory_bytes(device, {first, first + 1}));
    }
    return best;
}

uint64_t PlanCostModel::model_memory_bytes() const {
    const ModelShape &m = input_.model;
    const LayerRange all{0, static_cast<uint32_t>(m.n_layer)};
    uint64_t bytes = range_bytes(all);
    if (!device_kv_per_layer_.empty()) {  // the smallest KV any device would hold
        const uint64_t kv =
            *std::min_element(device_kv_per_layer_.begin(), device_kv_per_layer_.end());
        bytes = add_bytes_saturating(prefix_weight_bytes_[all.last],
                                     mul_bytes_saturating(kv, computed_blocks(all)));
    }
    return add_bytes_saturating(
        bytes, add_bytes_saturating(m.first_stage_extra_bytes, m.last_stage_extra_bytes));
}

Plan PlanCostModel::make_plan(const std::vector<std::pair<size_t, LayerRange>> &stages,
                              PlanMethod method,
                              const std::map<size_t, std::string> &reasons) const {
    Plan plan;
    plan.epoch = input_.options.epoch;
    plan.method = method;
    plan.objective = input_.options.objective;
    plan.coordinator_id = input_.options.coordinator_id;
    plan.n_layer = n_layer();
    std::vector<bool> used(n_devices(), false);
    for (size_t s = 0; s < stages.size(); ++s) {
        const auto [device, range] = stages[s];
        const DeviceProfile &d = input_.devices[device];
        used[device] = true;
        PlanStage st;
        st.node_id = d.node_id;
        st.name = d.name;
        st.layers = range;
        st.decode_ms_per_layer = d.decode_ms_per_layer;
        st.compute_ms = compute_ms(device, range);
        st.hop_out_ms = s + 1 < stages.size() ? hidden_hop_ms(device, stages[s + 1].first)
                                              : token_out_ms(device);
        st.predicted_ms = st.compute_ms + st.hop_out_ms;
        st.memory_bytes = stage_memory_bytes(device, range);
        st.memory_available_bytes = d.mem_available_bytes;
        plan.stages.push_back(std::move(st));
    }
    if (!stages.empty())
        plan.hop_in_ms = token_in_ms(stages.front().first);
    plan.latency_ms_per_token = plan.hop_in_ms;
    plan.bottleneck_ms_per_token = plan.hop_in_ms;
    for (const PlanStage &st : plan.stages) {
        plan.latency_ms_per_token += st.predicted_ms;
        plan.bottleneck_ms_per_token = std::max(plan.bottleneck_ms_per_token, st.predicted_ms);
    }
    plan.predicted_ms_per_token = plan.objective == PlanObjective::kLatency
                                      ? plan.latency_ms_per_token
                                      : plan.bottleneck_ms_per_token;
    for (size_t i = 0; i < n_devices(); ++i) {
        if (used[i])
            continue;
        auto it = reasons.find(i);
        plan.left_out.push_back({input_.devices[i].node_id, input_.devices[i].name,
                                 it != reasons.end() ? it->second : "not in the plan"});
    }
    return plan;
}

void PlanCostModel::check_stages(const std::vector<std::pair<size_t, LayerRange>> &stages,
                                 bool check_memory) const {
    if (stages.empty())
        bad_input("a plan needs at least one stage");
    std::vector<bool> used(n_devices(), false);
    int next = 0;
    for (size_t s = 0; s < stages.size(); ++s) {
        const auto [device, range] = stages[s];
        if (device >= n_devices())
            bad_input("stage " + std::to_string(s) + ": unknown device");
        const std::string &id = input_.devices[device].node_id;
        if (used[device])
            bad_input("node '" + id + "' has two stages");
        used[device] = true;
        if (range.first != next || range.last <= range.first || range.last > n_layer()) {
            bad_input("stage " + std::to_string(s) + " has layers [" + std::to_string(range.first) +
                      ", " + std::to_string(range.last) +
                      "), expected a non-empty range starting at " + std::to_string(next) +
                      " inside [0, " + std::to_string(n_layer()) + ")");
        }
        next = range.last;
        const uint64_t need = stage_memory_bytes(device, range);
        const uint64_t have = input_.devices[device].mem_available_bytes;
        if (check_memory && need > have) {
            throw Error(ErrorCode::kResource,
                        "stage " + std::to_string(s) + " on '" + id + "' (layers " +
                            std::to_string(range.first) + ".." + std::to_string(range.last) +
                            ") needs " + format_bytes(need) + " including headroom, the node has " +
                            format_bytes(have));
        }
    }
    if (next != n_layer()) {
        bad_input("stages end at layer " + std::to_string(next) + ", the model has " +
                  std::to_string(n_layer()));
    }
}

}  // namespace colony
