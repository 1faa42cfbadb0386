// Device and link profiles: JSON round trips and a named list of bad inputs,
// each rejected with Error(kProtocol) naming the field.
#include <gtest/gtest.h>

#include <functional>

#include "cluster/profile.h"
#include "nlohmann/json.hpp"
#include "util/error.h"

namespace colony {
namespace {

using nlohmann::json;

DeviceProfile full_profile() {
    DeviceProfile p;
    p.node_id = "3f9a0c1d";
    p.name = "pixel-7";
    p.decode_ms_per_layer = 1.25;
    p.prefill_ms_per_layer_per_token = 0.125;
    p.decode_ms_output = 3.5;
    p.weight_bytes_per_layer = 37'748'736;
    p.kv_bytes_per_token_per_layer = 1024;
    p.first_stage_extra_bytes = 233'373'696;
    p.last_stage_extra_bytes = 240'000'000;
    p.mem_available_bytes = uint64_t{5} << 30;
    p.headroom_bytes = uint64_t{512} << 20;
    p.n_threads = 4;
    p.n_big_cores = 4;
    p.n_little_cores = 4;
    p.battery = BatteryState{76.5, false};
    p.temperature_c = 41.5;
    p.os = "Android (Termux) 5.10.198";
    p.arch = "aarch64";
    p.backend = "CPU";
    p.slowdown_factor = 2.5;
    return p;
}

void expect_same(const DeviceProfile &a, const DeviceProfile &b) {
    EXPECT_EQ(device_profile_to_json(a), device_profile_to_json(b));
    EXPECT_EQ(a.node_id, b.node_id);
    EXPECT_EQ(a.decode_ms_per_layer, b.decode_ms_per_layer);
    EXPECT_EQ(a.mem_available_bytes, b.mem_available_bytes);
    EXPECT_EQ(a.battery.has_value(), b.battery.has_value());
    EXPECT_EQ(a.temperature_c, b.temperature_c);
    EXPECT_EQ(a.slowdown_factor, b.slowdown_factor);
}

TEST(DeviceProfileJson, RoundTripsEveryField) {
    const DeviceProfile p = full_profile();
    const std::string text = device_profile_to_json(p).dump();
    const DeviceProfile q = device_profile_from_json(json::parse(text));
    expect_same(p, q);
    ASSERT_TRUE(q.battery.has_value());
    EXPECT_EQ(q.battery->percent, 76.5);
    EXPECT_FALSE(q.battery->charging);
    EXPECT_EQ(q.os, p.os);
    EXPECT_EQ(q.headroom_bytes, p.headroom_bytes);
}

TEST(DeviceProfileJson, RoundTripsWithoutOptionalFields) {
    DeviceProfile p = full_profile();
    p.battery.reset();
    p.temperature_c.reset();
    const json j = device_profile_to_json(p);
    EXPECT_FALSE(j.contains("battery_percent"));
    EXPECT_FALSE(j.contains("temperature_c"));
    const DeviceProfile q = device_profile_from_json(j);
    expect_same(p, q);
    EXPECT_FALSE(q.battery.has_value());
}

TEST(DeviceProfileJson, IgnoresUnknownFields) {
    json j = device_profile_to_json(full_profile());
    j["gpu_name"] = "Mali-G710";
    EXPECT_NO_THROW(device_profile_from_json(j));
}

struct BadProfile {
    const char *name;
    const char *field;  // must appear in the message
    std::function<void(json &)> mutate;
};

TEST(DeviceProfileJson, RejectsBadProfiles) {
    const BadProfile bad[] = {
        {"missing node_id", "node_id", [](json &j) { j.erase("node_id"); }},
        {"null node_id", "node_id", [](json &j) { j["node_id"] = nullptr; }},
        {"numeric node_id", "node_id", [](json &j) { j["node_id"] = 7; }},
        {"empty node_id", "node_id", [](json &j) { j["node_id"] = ""; }},
        {"control char in node_id", "node_id", [](json &j) { j["node_id"] = "a\nb"; }},
        {"long node_id", "node_id", [](json &j) { j["node_id"] = std::string(200, 'x'); }},
        {"long name", "name", [](json &j) { j["name"] = std::string(300, 'x'); }},
        {"missing decode time", "decode_ms_per_layer",
         [](json &j) { j.erase("decode_ms_per_layer"); }},
        {"string decode time", "decode_ms_per_layer",
         [](json &j) { j["decode_ms_per_layer"] = "1.5"; }},
        {"zero decode time", "decode_ms_per_layer", [](json &j) { j["decode_ms_per_layer"] = 0; }},
        {"negative decode time", "decode_ms_per_layer",
         [](json &j) { j["decode_ms_per_layer"] = -1; }},
        {"absurd decode time", "decode_ms_per_layer",
         [](json &j) { j["decode_ms_per_layer"] = 1e9; }},
        {"zero prefill time", "prefill_ms_per_layer_per_token",
         [](json &j) { j["prefill_ms_per_layer_per_token"] = 0.0; }},
        {"negative output time", "decode_ms_output", [](json &j) { j["decode_ms_output"] = -0.5; }},
        {"negative bytes", "mem_available_bytes", [](json &j) { j["mem_available_bytes"] = -5; }},
        {"fractional bytes", "weight_bytes_per_layer",
         [](json &j) { j["weight_bytes_per_layer"] = 1.5; }},
        {"string bytes", "headroom_bytes", [](json &j) { j["headroom_bytes"] = "1G"; }},
        {"absurd bytes", "mem_available_bytes",
         [](json &j) { j["mem_available_bytes"] = uint64_t{1} << 60; }},
        {"missing KV bytes", "kv_bytes_per_token_per_layer",
         [](json &j) { j.erase("kv_bytes_per_token_per_layer"); }},
        {"zero threads", "n_threads", [](json &j) { j["n_threads"] = 0; }},
        {"absurd threads", "n_threads", [](json &j) { j["n_threads"] = 1'000'000; }},
        {"fractional cores", "n_big_cores", [](json &j) { j["n_big_cores"] = 2.5; }},
        {"negative cores", "n_little_cores", [](json &j) { j["n_little_cores"] = -2; }},
        {"battery over 100", "battery_percent", [](json &j) { j["battery_percent"] = 150; }},
        {"battery without charging", "charging", [](json &j) { j.erase("charging"); }},
        {"charging without battery", "battery_percent",
         [](json &j) { j.erase("battery_percent"); }},
        {"charging as string", "charging", [](json &j) { j["charging"] = "yes"; }},
        {"absurd temperature", "temperature_c", [](json &j) { j["temperature_c"] = 500; }},
        {"zero slowdown", "slowdown_factor", [](json &j) { j["slowdown_factor"] = 0; }},
        {"array os", "os", [](json &j) { j["os"] = json::array({"Linux"}); }},
    };
    for (const BadProfile &b : bad) {
        json j = device_profile_to_json(full_profile());
        b.mutate(j);
        try {
            device_profile_from_json(j);
            ADD_FAILURE() << b.name << ": accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kProtocol) << b.name;
            EXPECT_NE(std::string(e.what()).find(std::string("'") + b.field + "'"),
                      std::string::npos)
                << b.name << ": " << e.what();
        }
    }
    for (const json &not_object : {json::array(), json(3), json("profile"), json()}) {
        EXPECT_THROW(device_profile_from_json(not_object), Error);
    }
}

TEST(LinkProfileJson, RoundTripsAndFindsEitherDirection) {
    const LinkProfile l{"a", "b", 4.5, 2.5e6};
    const LinkProfile q = link_profile_from_json(json::parse(link_profile_to_json(l).dump()));
    EXPECT_EQ(q.from_node, "a");
    EXPECT_EQ(q.to_node, "b");
    EXPECT_EQ(q.rtt_ms, 4.5);
    EXPECT_EQ(q.throughput_bytes_per_s, 2.5e6);

    const std::vector<LinkProfile> links = {l, {"c", "a", 1, 1e6}, {"b", "a", 9, 1e6}};
    EXPECT_EQ(find_link(links, "a", "b")->rtt_ms, 4.5);  // a->b preferred
    EXPECT_EQ(find_link(links, "b", "a")->rtt_ms, 9);
    EXPECT_EQ(find_link(links, "a", "c")->rtt_ms, 1);  // reverse direction
    EXPECT_EQ(find_link(links, "b", "c"), nullptr);
}

TEST(LinkProfileJson, RejectsBadLinks) {
    const json good = link_profile_to_json({"a", "b", 4.5, 2.5e6});
    auto rejects = [&](const char *field, const json &value) {
        json j = good;
        if (value.is_null()) {
            j.erase(field);
        } else {
            j[field] = value;
        }
        try {
            link_profile_from_json(j);
            ADD_FAILURE() << field << "=" << value.dump() << " accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kProtocol);
        }
    };
    rejects("to_node", "a");  // a link to itself
    rejects("to_node", json());
    rejects("rtt_ms", -1);
    rejects("rtt_ms", "fast");
    rejects("throughput_bytes_per_s", 0);
    rejects("throughput_bytes_per_s", 1e15);
    rejects("from_node", "");
}

}  // namespace
}  // namespace colony
