// colony plan: the planner's table for a model and a set of devices, or this
// machine's measured device profile (--measure) to put in such a set.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cluster/device_probe.h"
#include "cluster/model_shape.h"
#include "cluster/plan_table.h"
#include "cluster/planner.h"
#include "cluster/profile.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/stage.h"
#include "runtime/stage_probe.h"
#include "util/error.h"

namespace colony {
namespace {

nlohmann::json read_json(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorCode::kNotFound, "cannot read " + path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON");
    return j;
}

/// This machine's profile on `model`: speed measured on its first two blocks.
DeviceProfile measure_here(const std::string &model, const std::string &name, float mem_limit_gib, int threads) {
    std::shared_ptr<const GgufFile> file = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    StageConfig cfg;
    cfg.range = {hp.n_layer > 2 ? 1u : 0u, std::min(hp.n_layer, 3u)};  // middle blocks: no embedding or head
    cfg.n_ctx = 256;
    cfg.n_threads = threads;
    Stage stage(file, hp, cfg);
    const StageSpeed speed = measure_stage_speed(stage, 8, 64);
    std::optional<uint64_t> limit;
    if (mem_limit_gib > 0) limit = static_cast<uint64_t>(mem_limit_gib * (1ull << 30));
    DeviceProfile p = probe_device_profile("/", limit);
    if (!name.empty()) p.name = name;
    if (p.node_id.empty()) p.node_id = p.name.empty() ? "this-node" : p.name;
    p.decode_ms_per_layer = speed.decode_ms_per_layer;
    p.prefill_ms_per_layer_per_token = speed.prefill_ms_per_layer_per_token;
    p.n_threads = cfg.n_threads > 0 ? cfg.n_threads : default_thread_count();
    return p;
}

}  // namespace

int cmd_plan(int argc, char **argv) {
    std::string model, devices_path, links_path, objective = "latency", coordinator, name;
    uint32_t n_ctx = 4096, parallel = 1;
    int32_t threads = 0;
    float mem_limit = 0;
    bool json = false, measure = false;
    ArgParser p("colony plan",
                "Show which devices take part, their order and layer ranges, and the predicted time per token,\n"
                "for a model and device profiles (JSON list, e.g. from `colony plan --measure` on each device).");
    p.add("-m", "--model", "PATH", "GGUF model file", &model, true);
    p.add("", "--devices", "FILE", "JSON array of device profiles", &devices_path);
    p.add("", "--links", "FILE", "JSON array of link profiles (rtt_ms, throughput_bytes_per_s)", &links_path);
    p.add("", "--objective", "NAME", "latency (one sequence) or throughput (many sequences)", &objective);
    p.add("", "--coordinator", "ID", "node id of the coordinator (token hops start and end there)", &coordinator);
    p.add("-c", "--ctx-size", "N", "context per sequence, tokens", &n_ctx);
    p.add("", "--parallel", "N", "sequences served at once", &parallel);
    p.flag("", "--json", "print the plan as JSON", &json);
    p.flag("", "--measure", "measure this machine on the model and print its device profile (JSON)", &measure);
    p.add("", "--name", "NAME", "--measure: node name", &name);
    p.add("", "--mem-limit", "GiB", "--measure: memory this node may use", &mem_limit);
    p.add("-t", "--threads", "N", "--measure: compute threads, 0 = all cores", &threads);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    if (measure) {
        std::printf("%s\n", device_profile_to_json(measure_here(model, name, mem_limit, threads)).dump(2).c_str());
        return 0;
    }
    if (devices_path.empty()) throw Error(ErrorCode::kInvalidArgument, "--devices FILE is needed (or --measure)");
    auto file = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    PlannerInput in;
    in.model = model_shape_from_gguf(*file, hp, n_ctx, parallel);
    for (const auto &d : read_json(devices_path)) in.devices.push_back(device_profile_from_json(d));
    if (!links_path.empty()) {
        for (const auto &l : read_json(links_path)) in.links.push_back(link_profile_from_json(l));
    }
    if (objective == "throughput") in.options.objective = PlanObjective::kThroughput;
    else if (objective != "latency") throw Error(ErrorCode::kInvalidArgument, "--objective must be latency or throughput");
    in.options.coordinator_id = coordinator;
    const Plan plan = plan_optimal(in);
    if (json) std::printf("%s\n", plan_to_json(plan).dump(2).c_str());
    else std::fputs(render_plan_table(plan).c_str(), stdout);
    return 0;
}

}  // namespace colony
