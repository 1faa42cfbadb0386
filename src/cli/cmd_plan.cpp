// colony plan: the planner's table for a model and a set of devices, or this
// machine's measured device profile (--measure) to put in such a set
// (docs/cluster.md, "colony plan").
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/layer_args.h"
#include "cluster/device_probe.h"
#include "cluster/model_shape.h"
#include "cluster/plan_table.h"
#include "cluster/planner.h"
#include "cluster/profile.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "nlohmann/json.hpp"
#include "runtime/stage.h"
#include "runtime/stage_probe.h"
#include "util/error.h"

namespace colony {
namespace {

nlohmann::json read_json(const std::string &path) {
    std::ifstream in(path);
    if (!in)
        throw Error(ErrorCode::kNotFound, "cannot read " + path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded())
        throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON");
    if (!j.is_array())
        throw Error(ErrorCode::kInvalidArgument, path + " must hold a JSON array");
    return j;
}

StageSpeed measure_range(const std::shared_ptr<const GgufFile> &file, const ModelHparams &hp,
                         LayerRange range, int threads, double slowdown) {
    StageConfig cfg;
    cfg.range = range;
    cfg.n_ctx = 256;
    cfg.n_ubatch = 64;
    cfg.n_threads = threads;
    cfg.slowdown = slowdown;
    Stage stage(file, hp, cfg);
    return measure_stage_speed(stage, 12, 64);
}

/// This machine's profile on `model`: decode and prefill time per block on
/// speed_probe_range's blocks (more than the CPU caches hold), and the output
/// head's extra time on as many blocks at the end (as the coordinator
/// measures itself, pipeline/coordinator_probe.h).
DeviceProfile measure_here(const std::string &model, const std::string &name, float mem_limit_gib,
                           int threads, double slowdown) {
    std::shared_ptr<const GgufFile> file = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    const uint32_t n = hp.n_layer;
    const LayerRange r = speed_probe_range(*file, hp);
    const uint32_t k = static_cast<uint32_t>(r.size());
    const StageSpeed block =
        measure_range(file, hp, {static_cast<uint32_t>(r.first), static_cast<uint32_t>(r.last)},
                      threads, slowdown);
    double head_ms = 0;
    if (n >= 2) {
        const StageSpeed last = measure_range(file, hp, {n - k, n}, threads, slowdown);
        head_ms = std::max(0.0, last.decode_ms_per_layer - block.decode_ms_per_layer) * k;
    }
    std::optional<uint64_t> limit;
    if (mem_limit_gib > 0)
        limit = static_cast<uint64_t>(mem_limit_gib * (1ull << 30));
    DeviceProfile p = probe_device_profile("/", limit);
    p.name = name;
    p.node_id = name.empty() ? "this-node" : name;
    p.decode_ms_per_layer = std::max(block.decode_ms_per_layer, 1e-6);
    p.prefill_ms_per_layer_per_token = std::max(block.prefill_ms_per_layer_per_token, 1e-6);
    p.decode_ms_output = head_ms;
    p.n_threads = threads > 0 ? threads : default_thread_count();
    p.backend = "CPU";
    p.slowdown_factor = slowdown;
    p.headroom_bytes = limit ? 0 : std::min<uint64_t>(p.mem_available_bytes / 10, 512ull << 20);
    return p;
}

/// One line per device: its predicted time per token holding the whole model
/// alone, or why it cannot.
std::string single_device_lines(const PlannerInput &in) {
    std::string out = "each device alone:\n";
    for (const DeviceProfile &d : in.devices) {
        PlannerInput one = in;
        one.options.coordinator_must_participate = false;
        one.options.coordinator_first = false;
        char line[512];
        const std::string label = d.name.empty() ? d.node_id : d.name;
        try {
            const Plan p = plan_manual(one, {LayerRange{0, in.model.n_layer}}, {d.node_id});
            std::snprintf(line, sizeof line, "  %-16s %8.2f ms per token (%.1f tokens/s)\n",
                          label.c_str(), p.predicted_ms_per_token,
                          1000.0 / p.predicted_ms_per_token);
        } catch (const Error &e) {
            std::snprintf(line, sizeof line, "  %-16s cannot hold the model: %s\n", label.c_str(),
                          e.what());
        }
        out += line;
    }
    return out;
}

}  // namespace

int cmd_plan(int argc, char **argv) {
    std::string model, devices_path, links_path, objective = "latency", coordinator, name,
                                                 skip_layers;
    uint32_t n_ctx = 1024, parallel = 4;
    int32_t threads = 0;
    float mem_limit = 0, slowdown = 1, link_rtt_ms = 2, link_mbit = 100;
    bool json = false, measure = false;
    ArgParser p(
        "colony plan",
        "Show which devices take part, their order and layer ranges, and the predicted time\n"
        "per token, for a model and device profiles (a JSON array, e.g. of `colony plan\n"
        "--measure` run on each device). With --coordinator naming one of the devices, that\n"
        "device takes part and runs the first layers, as `colony serve` plans.");
    p.add("-m", "--model", "PATH", "GGUF model file", &model, true);
    p.add("", "--devices", "FILE", "JSON array of device profiles", &devices_path);
    p.add("", "--links", "FILE", "JSON array of link profiles (rtt_ms, throughput_bytes_per_s)",
          &links_path);
    p.add("", "--link-rtt-ms", "MS", "round trip of links not in --links", &link_rtt_ms);
    p.add("", "--link-mbit", "N", "throughput of links not in --links, Mbit/s", &link_mbit);
    p.add("", "--objective", "NAME", "latency (one sequence) or throughput (many sequences)",
          &objective);
    p.add(
        "", "--coordinator", "ID",
        "node id of the coordinator (token hops start and end there; it runs stage 0 when listed)",
        &coordinator);
    p.add("-c", "--ctx-size", "N", "context per sequence, tokens", &n_ctx);
    p.add("", "--parallel", "N", "sequences served at once (KV cache for each)", &parallel);
    add_skip_layers_arg(p, &skip_layers);
    p.flag("", "--json", "print the plan as JSON", &json);
    p.flag("", "--measure", "measure this machine on the model and print its device profile (JSON)",
           &measure);
    p.add("", "--name", "NAME", "--measure: node name (also its node id)", &name);
    p.add("", "--mem-limit", "GiB", "--measure: memory this node may use", &mem_limit);
    p.add("-t", "--threads", "N", "--measure: compute threads, 0 = all cores", &threads);
    p.add("", "--debug-slowdown", "F", "--measure: emulate a device F times slower", &slowdown);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    if (!(slowdown >= 1 && slowdown <= 1000))
        throw Error(ErrorCode::kInvalidArgument, "--debug-slowdown must be in [1, 1000]");
    if (measure) {
        std::printf("%s\n",
                    device_profile_to_json(measure_here(model, name, mem_limit, threads, slowdown))
                        .dump(2)
                        .c_str());
        return 0;
    }
    if (devices_path.empty())
        throw Error(ErrorCode::kInvalidArgument, "--devices FILE is needed (or --measure)");
    if (!(link_rtt_ms >= 0) || !(link_mbit > 0))
        throw Error(ErrorCode::kInvalidArgument, "--link-rtt-ms must be >= 0, --link-mbit > 0");
    auto file = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    PlannerInput in;
    in.model = model_shape_from_gguf(*file, hp, n_ctx, parallel);
    mark_skipped_layers(in.model, parse_layer_skip(skip_layers, hp.n_layer));
    for (const auto &d : read_json(devices_path))
        in.devices.push_back(device_profile_from_json(d));
    if (!links_path.empty()) {
        for (const auto &l : read_json(links_path))
            in.links.push_back(link_profile_from_json(l));
    }
    in.options.default_link = LinkProfile{"", "", link_rtt_ms, link_mbit * 1e6 / 8};
    if (objective == "throughput")
        in.options.objective = PlanObjective::kThroughput;
    else if (objective != "latency")
        throw Error(ErrorCode::kInvalidArgument, "--objective must be latency or throughput");
    in.options.coordinator_id = coordinator;
    for (const DeviceProfile &d : in.devices) {
        if (!coordinator.empty() && d.node_id == coordinator) {
            in.options.coordinator_must_participate = true;
            in.options.coordinator_first = true;
        }
    }
    const Plan plan = plan_optimal(in);
    if (json) {
        std::printf("%s\n", plan_to_json(plan).dump(2).c_str());
    } else {
        std::fputs(render_plan_table(plan).c_str(), stdout);
        std::fputs(single_device_lines(in).c_str(), stdout);
    }
    return 0;
}

}  // namespace colony
