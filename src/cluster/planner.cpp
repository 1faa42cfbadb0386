// plan_optimal: eligibility rules, the layer-split dynamic programme, and the
// reasons for every device left out. See planner.h for the method.
#include "cluster/planner.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>

#include "cluster/eligibility.h"
#include "cluster/plan_cost.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// Backward dynamic programme over (first layer l of a stage, set S of
/// devices used from l to the end, device j owning the stage that starts at
/// l). V(l, S, j) is the objective of the suffix [l, n_layer): the sum
/// (latency) or the max (bottleneck) of every stage's compute plus outgoing
/// hop, the last stage's hop being the token id back to the coordinator.
/// Every term is capped at `term_cap` (used by the throughput objective's
/// second pass).
class SplitDp {
  public:
    struct Best {
        double value = kInf;
        uint32_t set = 0;
        int last_device = -1;  // local index of the device owning stage 0
        bool found() const { return last_device >= 0; }
    };

    /// first_device: local index of the device that must own stage 0, or -1.
    SplitDp(const PlanCostModel &cost, const std::vector<size_t> &devices, bool sum,
            double term_cap, int first_device = -1)
        : cost_(cost),
          devices_(devices),
          k_(static_cast<int>(devices.size())),
          n_(cost.n_layer()),
          full_(1u << k_),
          sum_(sum),
          cap_(term_cap),
          first_(first_device) {
        value_.assign(static_cast<size_t>(n_) * full_ * k_, kInf);
        parent_.assign(value_.size(), -1);
        precompute();
        run();
    }

    /// The best complete plan whose device set contains `required` (a mask of
    /// local indices), including the coordinator -> stage 0 hop. Ties (within
    /// 1e-12 relative) go to fewer stages, then to the first found.
    Best best(uint32_t required) const {
        Best best;
        int best_stages = 0;
        for (uint32_t set = 1; set < full_; ++set) {
            if ((set & required) != required)
                continue;
            for (int j = 0; j < k_; ++j) {
                if (!(set & (1u << j)) || (first_ >= 0 && j != first_))
                    continue;
                const double v = value_[index(0, set, j)];
                if (v == kInf)
                    continue;
                const double hop_in = cost_.token_in_ms(devices_[j]);
                if (hop_in == kUnreachableMs || hop_in > cap_)
                    continue;
                const double total = sum_ ? v + hop_in : std::max(v, hop_in);
                const int stages = std::popcount(set);
                const double tol = 1e-12 * std::max(std::abs(total), std::abs(best.value));
                const bool better = !best.found() || total < best.value - tol ||
                                    (total <= best.value + tol && stages < best_stages);
                if (better) {
                    best = {total, set, j};
                    best_stages = stages;
                }
            }
        }
        return best;
    }

    /// The stages of a complete plan found by best(), in pipeline order, as
    /// (device index in the input, layer range).
    std::vector<std::pair<size_t, LayerRange>> stages(const Best &b) const {
        std::vector<std::pair<size_t, LayerRange>> out;
        int l = 0;
        uint32_t set = b.set;
        int j = b.last_device;
        while (j >= 0) {
            const int32_t p = parent_[index(l, set, j)];
            const int next_l = p >> 5;
            const int next_j = (p & 31) - 1;
            out.emplace_back(devices_[j], LayerRange{l, next_l});
            set &= ~(1u << j);
            l = next_l;
            j = next_j;
        }
        return out;
    }

  private:
    // Layout (set, j, l): the inner loop of extend() walks l contiguously.
    size_t index(int l, uint32_t set, int j) const {
        return (static_cast<size_t>(set) * k_ + j) * n_ + l;
    }

    // Per local device: decode ms per layer, hidden-state hops, and for every
    // end layer l < n_layer the lowest first layer l0 such that [l0, l) fits
    // its memory (l when not even [l-1, l) fits). Memory grows as l0 moves
    // down, so the fitting first layers form the interval [min_first, l).
    void precompute() {
        decode_ms_.resize(k_);
        hop_.resize(static_cast<size_t>(k_) * k_);
        min_first_.assign(static_cast<size_t>(k_) * (n_ + 1), 0);
        for (int i = 0; i < k_; ++i) {
            const size_t d = devices_[i];
            decode_ms_[i] = cost_.input().devices[d].decode_ms_per_layer;
            for (int j = 0; j < k_; ++j)
                hop_[i * k_ + j] = cost_.hidden_hop_ms(d, devices_[j]);
            for (int l = 1; l < n_; ++l) {
                int l0 = l;
                while (l0 > 0 && cost_.fits(d, {l0 - 1, l}))
                    --l0;
                min_first_[i * (n_ + 1) + l] = l0;
            }
        }
    }

    void relax(int l, uint32_t set, int j, double v, int next_l, int next_j) {
        const size_t at = index(l, set, j);
        if (v < value_[at]) {
            value_[at] = v;
            parent_[at] = (next_l << 5) | (next_j + 1);
        }
    }

    void run() {
        // States that start at l are final once every l' > l is processed:
        // all transitions go from a later start to an earlier one.
        for (int l = n_ - 1; l >= 0; --l) {
            for (int j = 0; j < k_; ++j) {
                const size_t d = devices_[j];
                const LayerRange r{l, n_};
                if (!cost_.fits(d, r))
                    continue;
                const double term = cost_.compute_ms(d, r) + cost_.token_out_ms(d);
                if (term <= cap_)
                    relax(l, 1u << j, j, term, n_, -1);
            }
            if (l == 0)
                break;
            for (uint32_t set = 1; set < full_; ++set) {
                for (int j = 0; j < k_; ++j) {
                    if (!(set & (1u << j)))
                        continue;
                    const double v = value_[index(l, set, j)];
                    if (v != kInf)
                        extend(l, set, j, v);
                }
            }
        }
    }

    // Adds a stage [l0, l) on a device i not in `set` in front of state
    // (l, set, j) with value v. Stage compute is decode_ms * (l - l0) exactly
    // as PlanCostModel::compute_ms computes it (l < n_layer: no output head).
    void extend(int l, uint32_t set, int j, double v) {
        const int32_t parent = (l << 5) | (j + 1);
        for (int i = 0; i < k_; ++i) {
            if (set & (1u << i))
                continue;
            const double hop = hop_[i * k_ + j];
            if (hop == kUnreachableMs)
                continue;
            const double decode_ms = decode_ms_[i];
            const int lowest = min_first_[i * (n_ + 1) + l];
            const size_t base = index(0, set | (1u << i), i);
            double *value = value_.data() + base;
            int32_t *parents = parent_.data() + base;
            // Compute grows as l0 moves down, so the first term over the cap
            // ends the loop.
            for (int l0 = l - 1; l0 >= lowest; --l0) {
                const double term = decode_ms * (l - l0) + hop;
                if (term > cap_)
                    break;
                const double next = sum_ ? v + term : std::max(v, term);
                if (next < value[l0]) {
                    value[l0] = next;
                    parents[l0] = parent;
                }
            }
        }
    }

    const PlanCostModel &cost_;
    const std::vector<size_t> &devices_;  // local index -> input device index
    const int k_;
    const int n_;
    const uint32_t full_;
    const bool sum_;
    const double cap_;
    const int first_;                // local device that owns stage 0, -1: any
    std::vector<double> decode_ms_;  // [k]
    std::vector<double> hop_;        // [k * k] hidden-state hop i -> j, ms
    std::vector<int> min_first_;     // [k * (n + 1)]
    std::vector<double> value_;      // V(l, S, j), kInf when unreachable
    std::vector<int32_t> parent_;    // (next stage's first layer << 5) | (next local device + 1)
};

/// Largest device count whose tables stay under 4M states (48 MiB; twice
/// that for the throughput objective's second pass).
int max_devices_for(int n_layer, int requested) {
    int k = requested;
    while (k > 1 && static_cast<uint64_t>(n_layer) * (uint64_t{1} << k) * k > (uint64_t{1} << 22)) {
        --k;
    }
    return k;
}

std::string format_ms(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", ms);
    return buf;
}

}  // namespace

Plan plan_optimal(const PlannerInput &input) {
    const PlanCostModel cost(input);
    const PlannerOptions &opt = input.options;
    Eligibility el = select_eligible(cost);
    const std::optional<size_t> coord = cost.device_index(opt.coordinator_id);
    if (opt.coordinator_must_participate && !coord) {
        throw Error(ErrorCode::kInvalidArgument,
                    "planner input: the coordinator '" + opt.coordinator_id +
                        "' must participate but has no device profile");
    }

    // Keep the fastest devices when there are more than the tables allow.
    const int max_k = max_devices_for(cost.n_layer(), opt.max_devices);
    if (static_cast<int>(el.eligible.size()) > max_k) {
        std::stable_sort(el.eligible.begin(), el.eligible.end(), [&](size_t a, size_t b) {
            const bool ca = opt.coordinator_must_participate && a == *coord;
            const bool cb = opt.coordinator_must_participate && b == *coord;
            if (ca != cb)
                return ca;
            return input.devices[a].decode_ms_per_layer < input.devices[b].decode_ms_per_layer;
        });
        for (size_t t = max_k; t < el.eligible.size(); ++t) {
            el.reasons[el.eligible[t]] = "not compared: the planner compares at most " +
                                         std::to_string(max_k) +
                                         " devices and faster ones are eligible";
        }
        el.eligible.resize(max_k);
        std::sort(el.eligible.begin(), el.eligible.end());
    }

    uint32_t required = 0;
    int first_device = -1;
    if (opt.coordinator_must_participate) {
        auto it = std::find(el.eligible.begin(), el.eligible.end(), *coord);
        if (it == el.eligible.end()) {
            throw Error(ErrorCode::kResource,
                        "the coordinator '" + opt.coordinator_id +
                            "' must participate but cannot: " + el.reasons[*coord]);
        }
        required = 1u << (it - el.eligible.begin());
        if (opt.coordinator_first)
            first_device = static_cast<int>(it - el.eligible.begin());
    }

    const bool latency = opt.objective == PlanObjective::kLatency;
    const SplitDp first(cost, el.eligible, latency, kInf, first_device);
    const SplitDp::Best optimum = first.best(required);
    if (!optimum.found())
        throw_no_placement(cost, el);

    std::vector<std::pair<size_t, LayerRange>> stages;
    if (latency) {
        stages = first.stages(optimum);
    } else {
        // Second pass: lowest latency among plans whose every element is at
        // most the optimal bottleneck (the same doubles, so the optimum passes).
        const SplitDp second(cost, el.eligible, true, optimum.value, first_device);
        const SplitDp::Best b = second.best(required);
        if (!b.found())
            throw Error(ErrorCode::kInternal, "planner: second pass found no plan");
        stages = second.stages(b);
    }

    std::vector<bool> used(input.devices.size(), false);
    for (const auto &s : stages)
        used[s.first] = true;
    for (size_t t = 0; t < el.eligible.size(); ++t) {
        const size_t d = el.eligible[t];
        if (used[d])
            continue;
        const SplitDp::Best with = first.best(required | (1u << t));
        if (!with.found()) {
            el.reasons[d] = "no feasible plan includes it (memory, or links not measured)";
        } else if (with.value - optimum.value < 0.005) {
            el.reasons[d] = "would not make it faster";
        } else {
            el.reasons[d] = "would add " + format_ms(with.value - optimum.value) + " ms per token";
        }
    }
    Plan plan = cost.make_plan(stages, PlanMethod::kOptimal, el.reasons);
    COLONY_LOG_DEBUG("planner: %zu of %zu devices, %s objective, %.3f ms per token",
                     plan.stages.size(), input.devices.size(), plan_objective_name(opt.objective),
                     plan.predicted_ms_per_token);
    return plan;
}

}  // namespace colony
