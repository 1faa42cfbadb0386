#include "cluster/profile.h"

#include <cmath>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace colony {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxBytes = uint64_t{1} << 50;  // 1 PiB: anything above is a bad report
constexpr double kMaxMsPerLayer = 60'000;          // 60 s per block per token
constexpr int kMaxCount = 4096;                    // threads, cores
constexpr size_t kMaxIdChars = 128;
constexpr size_t kMaxTextChars = 256;

[[noreturn]] void fail(const std::string &what, const std::string &field, const std::string &msg) {
    throw Error(ErrorCode::kProtocol, what + ": field '" + field + "' " + msg);
}

const json &require(const json &j, const char *what, const char *field) {
    if (!j.is_object())
        throw Error(ErrorCode::kProtocol, std::string(what) + ": not a JSON object");
    auto it = j.find(field);
    if (it == j.end() || it->is_null())
        fail(what, field, "is missing");
    return *it;
}

const json *optional_field(const json &j, const char *field) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null())
        return nullptr;
    return &*it;
}

double to_double(const json &v, const char *what, const char *field) {
    if (!v.is_number())
        fail(what, field, "must be a number");
    double d = v.get<double>();
    if (!std::isfinite(d))
        fail(what, field, "must be finite");
    return d;
}

uint64_t to_u64(const json &v, const char *what, const char *field) {
    // A negative value parses as number_integer and a fraction as
    // number_float; both are rejected instead of being converted.
    if (!v.is_number_unsigned())
        fail(what, field, "must be a non-negative integer");
    return v.get<uint64_t>();
}

int64_t to_i64(const json &v, const char *what, const char *field) {
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > uint64_t{INT64_MAX})
            fail(what, field, "is too large");
        return static_cast<int64_t>(u);
    }
    if (!v.is_number_integer())
        fail(what, field, "must be an integer");
    return v.get<int64_t>();
}

std::string to_string(const json &v, const char *what, const char *field) {
    if (!v.is_string())
        fail(what, field, "must be a string");
    return v.get<std::string>();
}

bool to_bool(const json &v, const char *what, const char *field) {
    if (!v.is_boolean())
        fail(what, field, "must be true or false");
    return v.get<bool>();
}

void check_text(const std::string &s, size_t max_chars, bool allow_empty, const char *what,
                const char *field) {
    if (!allow_empty && s.empty())
        fail(what, field, "must not be empty");
    if (s.size() > max_chars)
        fail(what, field, "is longer than " + std::to_string(max_chars) + " bytes");
    for (unsigned char c : s) {
        // Printable ASCII and UTF-8 bytes; no control characters (tables, logs).
        if (c < 0x20 || c == 0x7f)
            fail(what, field, "contains a control character");
    }
}

void check_range(double v, double lo, double hi, const char *what, const char *field) {
    if (!std::isfinite(v) || v < lo || v > hi) {
        fail(what, field,
             "is " + std::to_string(v) + ", outside [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]");
    }
}

void check_bytes(uint64_t v, const char *what, const char *field) {
    if (v > kMaxBytes)
        fail(what, field, "is " + std::to_string(v) + " bytes, more than 1 PiB");
}

constexpr const char *kProfile = "device profile";
constexpr const char *kLink = "link profile";

}  // namespace

void validate_device_profile(const DeviceProfile &p) {
    const char *w = kProfile;
    check_text(p.node_id, kMaxIdChars, false, w, "node_id");
    check_text(p.name, kMaxTextChars, true, w, "name");
    if (!(p.decode_ms_per_layer > 0))
        fail(w, "decode_ms_per_layer", "must be positive");
    check_range(p.decode_ms_per_layer, 0, kMaxMsPerLayer, w, "decode_ms_per_layer");
    if (!(p.prefill_ms_per_layer_per_token > 0)) {
        fail(w, "prefill_ms_per_layer_per_token", "must be positive");
    }
    check_range(p.prefill_ms_per_layer_per_token, 0, kMaxMsPerLayer, w,
                "prefill_ms_per_layer_per_token");
    check_range(p.decode_ms_output, 0, kMaxMsPerLayer, w, "decode_ms_output");
    check_bytes(p.weight_bytes_per_layer, w, "weight_bytes_per_layer");
    check_bytes(p.kv_bytes_per_token_per_layer, w, "kv_bytes_per_token_per_layer");
    check_bytes(p.first_stage_extra_bytes, w, "first_stage_extra_bytes");
    check_bytes(p.last_stage_extra_bytes, w, "last_stage_extra_bytes");
    check_bytes(p.mem_available_bytes, w, "mem_available_bytes");
    check_bytes(p.headroom_bytes, w, "headroom_bytes");
    check_range(p.n_threads, 1, kMaxCount, w, "n_threads");
    check_range(p.n_big_cores, 0, kMaxCount, w, "n_big_cores");
    check_range(p.n_little_cores, 0, kMaxCount, w, "n_little_cores");
    if (p.battery)
        check_range(p.battery->percent, 0, 100, w, "battery_percent");
    if (p.temperature_c)
        check_range(*p.temperature_c, -60, 200, w, "temperature_c");
    check_text(p.cpu_cores, kMaxTextChars, true, w, "cpu_cores");
    check_text(p.os, kMaxTextChars, true, w, "os");
    check_text(p.arch, kMaxTextChars, true, w, "arch");
    check_text(p.backend, kMaxTextChars, true, w, "backend");
    if (!(p.slowdown_factor > 0))
        fail(w, "slowdown_factor", "must be positive");
    check_range(p.slowdown_factor, 0, 1000, w, "slowdown_factor");
}

nlohmann::json device_profile_to_json(const DeviceProfile &p) {
    json j = {
        {"node_id", p.node_id},
        {"name", p.name},
        {"decode_ms_per_layer", p.decode_ms_per_layer},
        {"prefill_ms_per_layer_per_token", p.prefill_ms_per_layer_per_token},
        {"decode_ms_output", p.decode_ms_output},
        {"weight_bytes_per_layer", p.weight_bytes_per_layer},
        {"kv_bytes_per_token_per_layer", p.kv_bytes_per_token_per_layer},
        {"first_stage_extra_bytes", p.first_stage_extra_bytes},
        {"last_stage_extra_bytes", p.last_stage_extra_bytes},
        {"mem_available_bytes", p.mem_available_bytes},
        {"headroom_bytes", p.headroom_bytes},
        {"n_threads", p.n_threads},
        {"n_big_cores", p.n_big_cores},
        {"n_little_cores", p.n_little_cores},
        {"cpu_cores", p.cpu_cores},
        {"os", p.os},
        {"arch", p.arch},
        {"backend", p.backend},
        {"slowdown_factor", p.slowdown_factor},
    };
    if (p.battery) {
        j["battery_percent"] = p.battery->percent;
        j["charging"] = p.battery->charging;
    }
    if (p.temperature_c)
        j["temperature_c"] = *p.temperature_c;
    return j;
}

DeviceProfile device_profile_from_json(const nlohmann::json &j) {
    const char *w = kProfile;
    DeviceProfile p;
    p.node_id = to_string(require(j, w, "node_id"), w, "node_id");
    if (const json *v = optional_field(j, "name"))
        p.name = to_string(*v, w, "name");
    p.decode_ms_per_layer =
        to_double(require(j, w, "decode_ms_per_layer"), w, "decode_ms_per_layer");
    p.prefill_ms_per_layer_per_token = to_double(require(j, w, "prefill_ms_per_layer_per_token"), w,
                                                 "prefill_ms_per_layer_per_token");
    if (const json *v = optional_field(j, "decode_ms_output")) {
        p.decode_ms_output = to_double(*v, w, "decode_ms_output");
    }
    auto u64 = [&](const char *field) { return to_u64(require(j, w, field), w, field); };
    p.weight_bytes_per_layer = u64("weight_bytes_per_layer");
    p.kv_bytes_per_token_per_layer = u64("kv_bytes_per_token_per_layer");
    p.first_stage_extra_bytes = u64("first_stage_extra_bytes");
    p.last_stage_extra_bytes = u64("last_stage_extra_bytes");
    p.mem_available_bytes = u64("mem_available_bytes");
    p.headroom_bytes = u64("headroom_bytes");
    auto count = [&](const char *field) {
        int64_t v = to_i64(require(j, w, field), w, field);
        check_range(static_cast<double>(v), 0, kMaxCount, w, field);
        return static_cast<int>(v);
    };
    p.n_threads = count("n_threads");
    p.n_big_cores = count("n_big_cores");
    p.n_little_cores = count("n_little_cores");
    if (const json *v = optional_field(j, "cpu_cores"))
        p.cpu_cores = to_string(*v, w, "cpu_cores");
    const json *percent = optional_field(j, "battery_percent");
    const json *charging = optional_field(j, "charging");
    if ((percent == nullptr) != (charging == nullptr)) {
        fail(w, percent ? "charging" : "battery_percent",
             "is missing (battery_percent and charging come together)");
    }
    if (percent) {
        p.battery = BatteryState{to_double(*percent, w, "battery_percent"),
                                 to_bool(*charging, w, "charging")};
    }
    if (const json *v = optional_field(j, "temperature_c")) {
        p.temperature_c = to_double(*v, w, "temperature_c");
    }
    if (const json *v = optional_field(j, "os"))
        p.os = to_string(*v, w, "os");
    if (const json *v = optional_field(j, "arch"))
        p.arch = to_string(*v, w, "arch");
    if (const json *v = optional_field(j, "backend"))
        p.backend = to_string(*v, w, "backend");
    if (const json *v = optional_field(j, "slowdown_factor")) {
        p.slowdown_factor = to_double(*v, w, "slowdown_factor");
    }
    validate_device_profile(p);
    return p;
}

void validate_link_profile(const LinkProfile &l) {
    const char *w = kLink;
    check_text(l.from_node, kMaxIdChars, false, w, "from_node");
    check_text(l.to_node, kMaxIdChars, false, w, "to_node");
    if (l.from_node == l.to_node)
        fail(w, "to_node", "must differ from from_node");
    check_range(l.rtt_ms, 0, 100'000, w, "rtt_ms");
    if (!(l.throughput_bytes_per_s > 0))
        fail(w, "throughput_bytes_per_s", "must be positive");
    check_range(l.throughput_bytes_per_s, 0, 1e12, w, "throughput_bytes_per_s");
}

nlohmann::json link_profile_to_json(const LinkProfile &l) {
    return json{{"from_node", l.from_node},
                {"to_node", l.to_node},
                {"rtt_ms", l.rtt_ms},
                {"throughput_bytes_per_s", l.throughput_bytes_per_s}};
}

LinkProfile link_profile_from_json(const nlohmann::json &j) {
    const char *w = kLink;
    LinkProfile l;
    l.from_node = to_string(require(j, w, "from_node"), w, "from_node");
    l.to_node = to_string(require(j, w, "to_node"), w, "to_node");
    l.rtt_ms = to_double(require(j, w, "rtt_ms"), w, "rtt_ms");
    l.throughput_bytes_per_s =
        to_double(require(j, w, "throughput_bytes_per_s"), w, "throughput_bytes_per_s");
    validate_link_profile(l);
    return l;
}

const LinkProfile *find_link(const std::vector<LinkProfile> &links, const std::string &a,
                             const std::string &b) {
    const LinkProfile *reverse = nullptr;
    for (const LinkProfile &l : links) {
        if (l.from_node == a && l.to_node == b)
            return &l;
        if (!reverse && l.from_node == b && l.to_node == a)
            reverse = &l;
    }
    return reverse;
}

}  // namespace colony
