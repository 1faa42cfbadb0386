// plan_optimal against brute force: on randomized small clusters (2-4
// devices, 4-10 layers, random speeds, memory, links; fixed seeds) every
// subset of devices, every order and every split into contiguous non-empty
// ranges is enumerated and costed by an independent implementation of the
// cost model written from its definition (planner.h, plan.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>

#include "cluster/planner.h"
#include "util/error.h"

namespace colony {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Candidate {
    std::vector<size_t> devices;  // input indices, pipeline order
    std::vector<int> counts;      // layers per stage
    double latency = kInf;
    double bottleneck = kInf;
    bool fits = false;
};

/// The cost model, re-derived: hop = RTT/2 + bytes/throughput (0 on the same
/// node, infinite without a link or default); stage = decode_ms * layers
/// (+ output head when last) + outgoing hop; latency = token hop in + sum of
/// stages; bottleneck = max of the same elements.
class ReferenceCost {
  public:
    explicit ReferenceCost(const PlannerInput &in) : in_(in) {}

    double hop(const std::string &a, const std::string &b, uint64_t bytes) const {
        if (a == b)
            return 0;
        const LinkProfile *link = nullptr;
        for (const LinkProfile &l : in_.links) {
            if ((l.from_node == a && l.to_node == b) || (l.from_node == b && l.to_node == a)) {
                // a->b preferred when both directions exist
                if (!link || (l.from_node == a && l.to_node == b))
                    link = &l;
            }
        }
        if (!link && in_.options.default_link)
            link = &*in_.options.default_link;
        if (!link)
            return kInf;
        return link->rtt_ms / 2 + static_cast<double>(bytes) / link->throughput_bytes_per_s * 1000;
    }

    double token_hop(const std::string &a, const std::string &b) const {
        if (in_.options.coordinator_id.empty())
            return 0;
        return hop(a, b, in_.model.token_message_bytes);
    }

    void evaluate(Candidate &c) const {
        const ModelShape &m = in_.model;
        const std::string &coord = in_.options.coordinator_id;
        const size_t k = c.devices.size();
        double hop_in = token_hop(coord, in_.devices[c.devices[0]].node_id);
        c.latency = hop_in;
        c.bottleneck = hop_in;
        c.fits = true;
        int first = 0;
        for (size_t s = 0; s < k; ++s) {
            const DeviceProfile &d = in_.devices[c.devices[s]];
            const int last = first + c.counts[s];
            double compute = 0;
            uint64_t bytes = d.headroom_bytes;
            for (int l = first; l < last; ++l) {
                compute += d.decode_ms_per_layer;
                bytes += m.layer_weight_bytes[l] +
                         m.kv_bytes_per_token_per_layer * m.n_ctx * m.n_parallel;
            }
            if (first == 0)
                bytes += m.first_stage_extra_bytes;
            if (last == m.n_layer) {
                bytes += m.last_stage_extra_bytes;
                compute += d.decode_ms_output;
            }
            if (bytes > d.mem_available_bytes)
                c.fits = false;
            const double out = s + 1 < k ? hop(d.node_id, in_.devices[c.devices[s + 1]].node_id,
                                               m.hidden_bytes_per_token)
                                         : token_hop(d.node_id, coord);
            c.latency += compute + out;
            c.bottleneck = std::max(c.bottleneck, compute + out);
            first = last;
        }
    }

    bool eligible(size_t i) const {
        const DeviceProfile &d = in_.devices[i];
        const bool exempt =
            in_.options.coordinator_must_participate && d.node_id == in_.options.coordinator_id;
        if (exempt)
            return true;
        if (d.battery && !d.battery->charging &&
            d.battery->percent < in_.options.min_battery_percent) {
            return false;
        }
        return true;
    }

    /// Every feasible candidate (every eligible subset, order and split).
    std::vector<Candidate> enumerate() const {
        std::vector<Candidate> out;
        std::vector<size_t> pool;
        for (size_t i = 0; i < in_.devices.size(); ++i) {
            if (eligible(i))
                pool.push_back(i);
        }
        const int n = in_.model.n_layer;
        for (uint32_t mask = 1; mask < (1u << pool.size()); ++mask) {
            std::vector<size_t> subset;
            for (size_t t = 0; t < pool.size(); ++t) {
                if (mask & (1u << t))
                    subset.push_back(pool[t]);
            }
            if (static_cast<int>(subset.size()) > n)
                continue;
            std::sort(subset.begin(), subset.end());
            do {
                std::vector<int> counts(subset.size(), 1);
                std::function<void(size_t, int)> split = [&](size_t s, int left) {
                    if (s + 1 == subset.size()) {
                        counts[s] = left;
                        Candidate c{subset, counts};
                        evaluate(c);
                        if (c.fits && std::isfinite(c.latency))
                            out.push_back(c);
                        return;
                    }
                    const int rest = static_cast<int>(subset.size() - s - 1);
                    for (int take = 1; take <= left - rest; ++take) {
                        counts[s] = take;
                        split(s + 1, left - take);
                    }
                };
                split(0, n);
            } while (std::next_permutation(subset.begin(), subset.end()));
        }
        return out;
    }

  private:
    const PlannerInput &in_;
};

double log_uniform(std::mt19937_64 &rng, double lo, double hi) {
    std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
    return std::exp(u(rng));
}

PlannerInput random_input(std::mt19937_64 &rng) {
    auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };
    PlannerInput in;
    ModelShape &m = in.model;
    m.n_layer = uni(4, 10);
    m.hidden_bytes_per_token = static_cast<uint64_t>(uni(1, 64)) * 1024;
    for (int l = 0; l < m.n_layer; ++l)
        m.layer_weight_bytes.push_back(uni(50, 150) * 1000);
    m.kv_bytes_per_token_per_layer = uni(0, 20);
    m.n_ctx = uni(64, 1024);
    m.n_parallel = uni(1, 2);
    m.first_stage_extra_bytes = uni(0, 200) * 1000;
    m.last_stage_extra_bytes = uni(0, 300) * 1000;
    m.token_message_bytes = 64;
    uint64_t model_bytes = m.first_stage_extra_bytes + m.last_stage_extra_bytes;
    for (int l = 0; l < m.n_layer; ++l) {
        model_bytes +=
            m.layer_weight_bytes[l] + m.kv_bytes_per_token_per_layer * m.n_ctx * m.n_parallel;
    }

    const int k = uni(2, 4);
    for (int i = 0; i < k; ++i) {
        DeviceProfile d;
        d.node_id = "node-" + std::to_string(i);
        d.name = "dev" + std::to_string(i);
        d.decode_ms_per_layer = log_uniform(rng, 0.2, 10);
        d.prefill_ms_per_layer_per_token = d.decode_ms_per_layer / 4;
        d.decode_ms_output = chance(0.7) ? log_uniform(rng, 0.1, 5) : 0;
        d.headroom_bytes = uni(0, 50) * 1000;
        // From a fraction of the model to more than all of it.
        d.mem_available_bytes = static_cast<uint64_t>(log_uniform(rng, 0.15, 1.6) * model_bytes);
        if (chance(0.15))
            d.battery = BatteryState{static_cast<double>(uni(0, 100)), chance(0.5)};
        in.devices.push_back(d);
    }

    std::vector<std::string> ids;
    for (const DeviceProfile &d : in.devices)
        ids.push_back(d.node_id);
    const bool external_coordinator = chance(0.4);
    in.options.coordinator_id = external_coordinator ? "coordinator" : ids[uni(0, k - 1)];
    if (external_coordinator)
        ids.push_back("coordinator");
    if (chance(0.1))
        in.options.coordinator_id.clear();
    for (size_t a = 0; a < ids.size(); ++a) {
        for (size_t b = a + 1; b < ids.size(); ++b) {
            if (chance(0.1))
                continue;  // not measured
            LinkProfile l{ids[a], ids[b], log_uniform(rng, 0.05, 20), log_uniform(rng, 1e5, 1e8)};
            in.links.push_back(l);
            if (chance(0.2)) {  // a measured reverse direction that differs
                in.links.push_back(
                    {ids[b], ids[a], log_uniform(rng, 0.05, 20), log_uniform(rng, 1e5, 1e8)});
            }
        }
    }
    if (chance(0.3))
        in.options.default_link = LinkProfile{"", "", 8, 2e6};
    in.options.objective = chance(0.5) ? PlanObjective::kLatency : PlanObjective::kThroughput;
    in.options.coordinator_must_participate =
        !external_coordinator && !in.options.coordinator_id.empty() && chance(0.25);
    // colony serve's setting: the coordinator owns stage 0.
    in.options.coordinator_first = in.options.coordinator_must_participate && chance(0.5);
    return in;
}

bool same(double a, double b) {
    if (a == b)
        return true;
    return std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b));
}

bool contains(const Candidate &c, size_t device) {
    return std::find(c.devices.begin(), c.devices.end(), device) != c.devices.end();
}

struct Tally {
    int planned = 0;      // cases with a feasible plan
    int split = 0;        // ... that use more than one device
    int single = 0;       // ... that use one device while others were eligible
    int would_add = 0;    // "would add X ms" reasons checked
    int throughput = 0;   // cases with the throughput objective
    int coord_first = 0;  // planned cases where the coordinator had to own stage 0
};

/// Checks one random case and counts what it exercised.
void check_case(uint64_t seed, Tally *tally) {
    std::mt19937_64 rng(seed);
    const PlannerInput in = random_input(rng);
    SCOPED_TRACE("seed " + std::to_string(seed));
    const ReferenceCost ref(in);
    const bool latency = in.options.objective == PlanObjective::kLatency;
    auto objective = [&](const Candidate &c) { return latency ? c.latency : c.bottleneck; };

    std::vector<Candidate> all = ref.enumerate();
    std::optional<size_t> coord;
    for (size_t i = 0; i < in.devices.size(); ++i) {
        if (in.devices[i].node_id == in.options.coordinator_id)
            coord = i;
    }
    auto allowed = [&](const Candidate &c) {
        if (!in.options.coordinator_must_participate)
            return true;
        if (in.options.coordinator_first)
            return c.devices.front() == *coord;
        return contains(c, *coord);
    };
    double best = kInf;
    for (const Candidate &c : all) {
        if (allowed(c))
            best = std::min(best, objective(c));
    }

    if (best == kInf) {
        try {
            plan_optimal(in);
            ADD_FAILURE() << "brute force found no plan, the planner did";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kResource) << e.what();
        }
        return;
    }

    const Plan plan = plan_optimal(in);
    EXPECT_TRUE(same(plan.predicted_ms_per_token, best))
        << "planner " << plan.predicted_ms_per_token << " brute force " << best;

    // The plan re-costed by the reference: same numbers, memory respected.
    Candidate mine;
    for (const PlanStage &s : plan.stages) {
        const auto it =
            std::find_if(in.devices.begin(), in.devices.end(),
                         [&](const DeviceProfile &d) { return d.node_id == s.node_id; });
        mine.devices.push_back(static_cast<size_t>(it - in.devices.begin()));
        mine.counts.push_back(s.layers.size());
        EXPECT_LE(s.memory_bytes, s.memory_available_bytes);
    }
    ref.evaluate(mine);
    EXPECT_TRUE(mine.fits) << "the plan breaks a memory limit";
    EXPECT_TRUE(same(objective(mine), best));
    EXPECT_TRUE(same(mine.latency, plan.latency_ms_per_token));
    EXPECT_TRUE(same(mine.bottleneck, plan.bottleneck_ms_per_token));
    EXPECT_TRUE(allowed(mine)) << "the coordinator must participate (first: "
                               << in.options.coordinator_first << ")";

    if (!latency) {
        // Among bottleneck-optimal plans the lowest latency.
        double best_latency = kInf;
        for (const Candidate &c : all) {
            if (allowed(c) && c.bottleneck <= best * (1 + 1e-9))
                best_latency = std::min(best_latency, c.latency);
        }
        EXPECT_TRUE(same(plan.latency_ms_per_token, best_latency))
            << "latency " << plan.latency_ms_per_token << " best " << best_latency;
    }

    // Never worse than the best single device that can hold the model.
    for (const Candidate &c : all) {
        if (c.devices.size() == 1 && allowed(c)) {
            EXPECT_LE(plan.predicted_ms_per_token, objective(c) * (1 + 1e-9));
        }
    }

    // Reasons for eligible devices left out match the brute force.
    for (const PlanExclusion &e : plan.left_out) {
        size_t d = 0;
        while (in.devices[d].node_id != e.node_id)
            ++d;
        if (!ref.eligible(d)) {
            EXPECT_NE(e.reason.find("battery low"), std::string::npos) << e.reason;
            continue;
        }
        double with = kInf;
        for (const Candidate &c : all) {
            if (allowed(c) && contains(c, d))
                with = std::min(with, objective(c));
        }
        if (with == kInf) {
            const bool expected = e.reason.rfind("no feasible plan", 0) == 0 ||
                                  e.reason.rfind("not enough memory", 0) == 0;
            EXPECT_TRUE(expected) << e.reason;
        } else if (with - best < 0.004) {
            EXPECT_EQ(e.reason, "would not make it faster");
        } else if (with - best > 0.006) {
            char expect[64];
            std::snprintf(expect, sizeof expect, "would add %.2f ms per token", with - best);
            EXPECT_EQ(e.reason, expect);
            ++tally->would_add;
        }
    }
    ++tally->planned;
    tally->split += plan.stages.size() > 1;
    tally->single += plan.stages.size() == 1 && !plan.left_out.empty();
    tally->throughput += !latency;
    tally->coord_first += in.options.coordinator_first;
}

TEST(PlannerBruteForce, MatchesExhaustiveSearchOnRandomClusters) {
    Tally t;
    const int cases = 400;
    for (uint64_t seed = 1; seed <= cases; ++seed) {
        check_case(seed, &t);
        if (::testing::Test::HasFailure())
            break;
    }
    std::printf(
        "%d cases: %d planned (%d split, %d on one device, %d throughput, %d coordinator "
        "first), %d 'would add' reasons checked\n",
        cases, t.planned, t.split, t.single, t.throughput, t.coord_first, t.would_add);
    // The generator must exercise every outcome.
    EXPECT_GT(t.planned, cases / 2);
    EXPECT_LT(t.planned, cases);
    EXPECT_GT(t.split, cases / 10);
    EXPECT_GT(t.single, cases / 20);
    EXPECT_GT(t.throughput, cases / 5);
    EXPECT_GT(t.would_add, cases / 10);
    EXPECT_GT(t.coord_first, cases / 40);
}

}  // namespace
}  // namespace colony
