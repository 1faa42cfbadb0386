#include "link_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "util/error.h"

namespace colony::netlab {
namespace {

constexpr int64_t kNsPerMs = 1000000;

LinkParams make(double delay_ms, double jitter_ms, double rate_mbit, double loss_pct) {
    LinkParams p;
    p.delay_ns = static_cast<int64_t>(std::llround(delay_ms * kNsPerMs));
    p.jitter_ns = static_cast<int64_t>(std::llround(jitter_ms * kNsPerMs));
    p.rate_bps = rate_mbit * 1e6;
    p.loss = loss_pct / 100.0;
    return p;
}

// Parses a whole string as a finite double; throws naming `key` otherwise.
double parse_number(const std::string &key, const std::string &text) {
    double value = 0;
    const char *end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "link setting " + key + ": '" + text + "' is not a number");
    }
    if (value < 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    "link setting " + key + " must be >= 0, got " + text);
    }
    return value;
}

}  // namespace

const std::vector<NamedProfile> &named_profiles() {
    // The table of issue 6 / docs/netlab.md.
    static const std::vector<NamedProfile> profiles = {
        {"loopback", make(0, 0, 0, 0)}, {"ethernet", make(0.25, 0, 1000, 0)},
        {"wifi", make(3, 1, 200, 0)},   {"wifi-poor", make(10, 5, 30, 0.5)},
        {"wan", make(22, 2, 50, 0)},  // devices in different places (issue 13's benchmark)
    };
    return profiles;
}

LinkParams profile_by_name(const std::string &name) {
    std::string known;
    for (const auto &p : named_profiles()) {
        if (name == p.name)
            return p.params;
        known += known.empty() ? "" : ", ";
        known += p.name;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "unknown link profile '" + name + "' (known: " + known + ")");
}

void apply_setting(LinkParams &params, const std::string &key_value) {
    const auto eq = key_value.find('=');
    if (eq == std::string::npos) {
        throw Error(ErrorCode::kInvalidArgument,
                    "link setting '" + key_value + "' is not key=value");
    }
    const std::string key = key_value.substr(0, eq);
    const std::string value = key_value.substr(eq + 1);
    if (key == "profile") {
        params = profile_by_name(value);
        return;
    }
    const double number = parse_number(key, value);
    if (key == "delay_ms") {
        params.delay_ns = static_cast<int64_t>(std::llround(number * kNsPerMs));
    } else if (key == "jitter_ms") {
        params.jitter_ns = static_cast<int64_t>(std::llround(number * kNsPerMs));
    } else if (key == "jitter_hold_ms") {
        params.jitter_hold_ns = static_cast<int64_t>(std::llround(number * kNsPerMs));
    } else if (key == "rate_mbit") {
        params.rate_bps = number * 1e6;
    } else if (key == "loss_pct") {
        if (number > 100)
            throw Error(ErrorCode::kInvalidArgument, "loss_pct must be <= 100, got " + value);
        params.loss = number / 100.0;
    } else if (key == "queue_kb") {
        params.queue_bytes = static_cast<int64_t>(std::llround(number * 1000));
    } else {
        throw Error(ErrorCode::kInvalidArgument,
                    "unknown link setting '" + key +
                        "' (known: profile, delay_ms, jitter_ms, jitter_hold_ms, rate_mbit, "
                        "loss_pct, queue_kb)");
    }
}

void validate(const LinkParams &params) {
    if (params.delay_ns < 0 || params.delay_ns > 60'000 * kNsPerMs) {
        throw Error(ErrorCode::kInvalidArgument, "delay must be within [0, 60 s]");
    }
    if (params.jitter_ns < 0 || params.jitter_ns > params.delay_ns) {
        throw Error(ErrorCode::kInvalidArgument, "jitter must be within [0, delay]");
    }
    if (params.jitter_hold_ns < 0 || params.jitter_hold_ns > 60'000 * kNsPerMs) {
        throw Error(ErrorCode::kInvalidArgument, "jitter hold must be within [0, 60 s]");
    }
    if (!(params.rate_bps >= 0) || (params.rate_bps > 0 && params.rate_bps < 8000)) {
        throw Error(ErrorCode::kInvalidArgument, "rate must be 0 (unlimited) or >= 8 kbit/s");
    }
    if (!(params.loss >= 0 && params.loss <= 1)) {
        throw Error(ErrorCode::kInvalidArgument, "loss must be within [0, 100] %");
    }
    if (params.queue_bytes < 1514) {
        throw Error(ErrorCode::kInvalidArgument,
                    "queue must hold at least one frame (queue_kb >= 1.514)");
    }
}

std::string describe(const LinkParams &params) {
    char line[200];
    std::snprintf(line, sizeof(line),
                  "delay_ms=%g jitter_ms=%g jitter_hold_ms=%g rate_mbit=%g loss_pct=%g queue_kb=%g",
                  static_cast<double>(params.delay_ns) / kNsPerMs,
                  static_cast<double>(params.jitter_ns) / kNsPerMs,
                  static_cast<double>(params.jitter_hold_ns) / kNsPerMs, params.rate_bps / 1e6,
                  params.loss * 100, static_cast<double>(params.queue_bytes) / 1000);
    return line;
}

void LinkDirection::set_params(const LinkParams &params) {
    validate(params);
    params_ = params;
}

Verdict LinkDirection::admit(int64_t now_ns, int64_t wire_bytes, std::mt19937_64 &rng) {
    ++counters_.frames_in;
    Verdict verdict;
    if (cut_) {
        ++counters_.dropped_cut;
        verdict.reason = DropReason::kCut;
        return verdict;
    }
    int64_t tx_end = now_ns;
    if (params_.rate_bps > 0) {
        const int64_t tx_start = std::max(now_ns, link_free_ns_);
        const double backlog_bytes =
            static_cast<double>(tx_start - now_ns) * params_.rate_bps / 8e9;
        if (backlog_bytes + static_cast<double>(wire_bytes) >
            static_cast<double>(params_.queue_bytes)) {
            ++counters_.dropped_queue;
            verdict.reason = DropReason::kQueue;
            return verdict;
        }
        const double tx_ns = static_cast<double>(wire_bytes) * 8e9 / params_.rate_bps;
        tx_end = tx_start + static_cast<int64_t>(std::llround(tx_ns));
        link_free_ns_ = tx_end;
    }
    if (params_.loss > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < params_.loss) {
        ++counters_.dropped_loss;
        verdict.reason = DropReason::kLoss;
        return verdict;
    }
    int64_t delay = params_.delay_ns;
    if (params_.jitter_ns > 0) {
        if (!jitter_drawn_at_ns_ || now_ns - *jitter_drawn_at_ns_ >= params_.jitter_hold_ns) {
            jitter_draw_ns_ =
                std::uniform_int_distribution<int64_t>(-params_.jitter_ns, params_.jitter_ns)(rng);
            jitter_drawn_at_ns_ = now_ns;
        }
        // The jitter may have shrunk since the draw (set_params).
        delay += std::clamp(jitter_draw_ns_, -params_.jitter_ns, params_.jitter_ns);
    }
    const int64_t depart = std::max(tx_end + std::max<int64_t>(delay, 0), last_depart_ns_);
    last_depart_ns_ = depart;
    verdict.depart_ns = depart;
    return verdict;
}

void LinkDirection::on_sent(int64_t wire_bytes) {
    ++counters_.frames_out;
    counters_.bytes_out += static_cast<uint64_t>(wire_bytes);
}

void LinkDirection::on_dropped_at_departure(DropReason reason) {
    switch (reason) {
        case DropReason::kCut:
            ++counters_.dropped_cut;
            break;
        case DropReason::kQueue:
            ++counters_.dropped_queue;
            break;
        case DropReason::kLoss:
            ++counters_.dropped_loss;
            break;
        case DropReason::kSend:
            ++counters_.dropped_send;
            break;
    }
}

}  // namespace colony::netlab
