#include "pipeline/worker_status.h"

#include <cmath>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace colony {
namespace {

using nlohmann::json;

constexpr double kMaxStageMs = 3'600'000;  // one hour per token: anything above is a bad report

[[noreturn]] void fail(const std::string &field, const std::string &msg) {
    throw Error(ErrorCode::kProtocol, "worker status: field '" + field + "' " + msg);
}

const json *field(const json &j, const char *name) {
    auto it = j.find(name);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}

double number(const json &j, const char *name, double lo, double hi, bool required) {
    const json *v = field(j, name);
    if (!v) {
        if (required)
            fail(name, "is missing");
        return 0;
    }
    if (!v->is_number())
        fail(name, "must be a number");
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
        fail(name, "is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return d;
}

uint64_t unsigned_int(const json &j, const char *name, uint64_t hi) {
    const json *v = field(j, name);
    if (!v)
        fail(name, "is missing");
    if (!v->is_number_unsigned())
        fail(name, "must be a non-negative integer");
    const uint64_t u = v->get<uint64_t>();
    if (u > hi)
        fail(name, "is larger than " + std::to_string(hi));
    return u;
}

StageReport stage_from_json(const json &j) {
    if (!j.is_object())
        fail("stage", "must be an object");
    StageReport s;
    s.epoch = unsigned_int(j, "epoch", UINT64_MAX);
    s.first = static_cast<uint32_t>(unsigned_int(j, "first", 65535));
    s.last = static_cast<uint32_t>(unsigned_int(j, "last", 65536));
    if (s.last <= s.first)
        fail("stage.last", "must be greater than stage.first");
    const json *is_last = field(j, "is_last");
    if (!is_last || !is_last->is_boolean())
        fail("stage.is_last", "must be true or false");
    s.is_last = is_last->get<bool>();
    s.probe_decode_ms = number(j, "probe_decode_ms", 0, kMaxStageMs, true);
    s.probe_prefill_ms_per_token = number(j, "probe_prefill_ms_per_token", 0, kMaxStageMs, true);
    s.recent_decode_ms = number(j, "recent_decode_ms", 0, kMaxStageMs, false);
    if (field(j, "recent_samples"))
        s.recent_samples = static_cast<uint32_t>(unsigned_int(j, "recent_samples", 10'000'000));
    if (s.recent_samples == 0)
        s.recent_decode_ms = 0;
    return s;
}

}  // namespace

json worker_status_to_json(const WorkerStatus &st) {
    json j = {{"profile", device_profile_to_json(st.profile)}, {"slowdown", st.slowdown}};
    if (st.stage) {
        const StageReport &s = *st.stage;
        j["stage"] = {{"epoch", s.epoch},
                      {"first", s.first},
                      {"last", s.last},
                      {"is_last", s.is_last},
                      {"probe_decode_ms", s.probe_decode_ms},
                      {"probe_prefill_ms_per_token", s.probe_prefill_ms_per_token},
                      {"recent_decode_ms", s.recent_decode_ms},
                      {"recent_samples", s.recent_samples}};
    }
    if (st.shard_throughput_bytes_per_s)
        j["shard_throughput_bytes_per_s"] = *st.shard_throughput_bytes_per_s;
    return j;
}

WorkerStatus worker_status_from_json(const json &j) {
    if (!j.is_object())
        throw Error(ErrorCode::kProtocol, "worker status: not a JSON object");
    WorkerStatus st;
    const json *profile = field(j, "profile");
    if (!profile)
        fail("profile", "is missing");
    st.profile = device_profile_from_json(*profile);
    if (const json *stage = field(j, "stage"))
        st.stage = stage_from_json(*stage);
    if (field(j, "shard_throughput_bytes_per_s")) {
        const double t = number(j, "shard_throughput_bytes_per_s", 0, 1e12, true);
        if (!(t > 0))
            fail("shard_throughput_bytes_per_s", "must be positive");
        st.shard_throughput_bytes_per_s = t;
    }
    if (field(j, "slowdown"))
        st.slowdown = number(j, "slowdown", 1, 1000, true);
    return st;
}

std::optional<WorkerStatus> worker_status_parse(const std::string &text) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded())
        throw Error(ErrorCode::kProtocol, "worker status: not valid JSON");
    if (!j.is_object() || !j.contains("profile"))
        return std::nullopt;
    return worker_status_from_json(j);
}

}  // namespace colony
