#include "cluster/eligibility.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "util/error.h"

namespace colony {
namespace {

std::string format_number(const char *fmt, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

}  // namespace

Eligibility select_eligible(const PlanCostModel &cost) {
    const PlannerInput &in = cost.input();
    const PlannerOptions &opt = in.options;
    Eligibility el;
    for (size_t i = 0; i < in.devices.size(); ++i) {
        const DeviceProfile &d = in.devices[i];
        const bool exempt = opt.coordinator_must_participate && d.node_id == opt.coordinator_id;
        if (!exempt && d.battery && !d.battery->charging &&
            d.battery->percent < opt.min_battery_percent) {
            el.reasons[i] =
                "battery low (" + format_number("%.0f", d.battery->percent) + "%) and not charging";
            continue;
        }
        if (!exempt && opt.max_temperature_c && d.temperature_c &&
            *d.temperature_c > *opt.max_temperature_c) {
            el.reasons[i] = "too hot: " + format_number("%.0f", *d.temperature_c) + " °C, limit " +
                            format_number("%.0f", *opt.max_temperature_c) + " °C";
            continue;
        }
        const uint64_t need = cost.min_stage_memory_bytes(i);
        if (need > d.mem_available_bytes) {
            el.reasons[i] = "not enough memory: needs " + format_bytes(need) +
                            " for one layer with its KV cache and headroom, has " +
                            format_bytes(d.mem_available_bytes);
            continue;
        }
        el.eligible.push_back(i);
    }
    return el;
}

void throw_no_placement(const PlanCostModel &cost, const Eligibility &el) {
    const std::vector<size_t> &eligible = el.eligible;
    const std::map<size_t, std::string> &reasons = el.reasons;
    const PlannerInput &in = cost.input();
    const ModelShape &m = in.model;
    if (eligible.empty()) {
        std::string msg = "no device can take part in the plan:";
        for (const auto &[i, why] : reasons)
            msg += " " + in.devices[i].node_id + " (" + why + ");";
        if (in.devices.empty())
            msg += " no devices";
        throw Error(ErrorCode::kResource, msg);
    }
    const uint64_t need = cost.model_memory_bytes();
    uint64_t have = 0;
    std::string per_device;
    for (size_t i : eligible) {
        const DeviceProfile &d = in.devices[i];
        const uint64_t usable =
            d.mem_available_bytes > d.headroom_bytes ? d.mem_available_bytes - d.headroom_bytes : 0;
        have = add_bytes_saturating(have, usable);
        per_device += (per_device.empty() ? "" : ", ") + d.node_id + ": " + format_bytes(usable);
    }
    const uint64_t weights =
        std::accumulate(m.layer_weight_bytes.begin(), m.layer_weight_bytes.end(), uint64_t{0},
                        add_bytes_saturating);
    const uint64_t kv =
        mul_bytes_saturating(m.kv_bytes_per_token_per_layer,
                             mul_bytes_saturating(static_cast<uint64_t>(m.n_layer),
                                                  mul_bytes_saturating(m.n_ctx, m.n_parallel)));
    const std::string detail = "weights " + format_bytes(weights) + ", KV cache " +
                               format_bytes(kv) + " for " + std::to_string(m.n_ctx) + " x " +
                               std::to_string(m.n_parallel) + " tokens, embedding " +
                               format_bytes(m.first_stage_extra_bytes) + ", output head " +
                               format_bytes(m.last_stage_extra_bytes);
    if (need > have) {
        throw Error(ErrorCode::kResource, "the model does not fit: it needs " + format_bytes(need) +
                                              " (" + detail + ") and the usable devices have " +
                                              format_bytes(have) + " after headroom (" +
                                              per_device + ")");
    }
    throw Error(ErrorCode::kResource,
                "no placement fits: the model needs " + format_bytes(need) + " (" + detail +
                    ") and the usable devices have " + format_bytes(have) + " after headroom (" +
                    per_device +
                    "), but its blocks do not pack into contiguous ranges on them, or the links "
                    "between the devices that could hold them were not measured");
}

}  // namespace colony
