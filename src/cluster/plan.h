// The planner's vocabulary: the model's shape as the planner sees it, the
// options, and the plan it produces (ordered stages, each a contiguous layer
// range on one node, with predicted times and the reason every other node was
// left out). DESIGN.md, decisions 1 and 8.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/profile.h"
#include "model/layer_range.h"

namespace colony {

/// What the planner needs to know about the model, in bytes and tokens.
struct ModelShape {
    int n_layer = 0;  // transformer blocks, 1..32767
    uint64_t hidden_bytes_per_token =
        0;  // hidden state of one token on the wire (n_embd * 2 for f16)
    std::vector<uint64_t>
        layer_weight_bytes;  // [n_layer] weights of each block (quant mixes differ)
    uint64_t kv_bytes_per_token_per_layer = 0;  // K + V of one token in one block
    uint64_t first_stage_extra_bytes = 0;       // stage 0: token embedding
    uint64_t last_stage_extra_bytes = 0;        // last stage: output norm + LM head + logits buffer
    uint64_t n_ctx = 0;                         // context size of one sequence, tokens
    uint32_t n_parallel = 1;  // sequences served at once; KV cache holds n_ctx * n_parallel
    uint64_t token_message_bytes = 64;  // a token id message between coordinator and a stage
    // [n_layer] or empty (none): 1 for a block skipped at run time
    // (--skip-layers, model/layer_skip.h): no weights, no KV cache, no compute
    std::vector<uint8_t> layer_skipped;
};

/// What the optimal planner minimises.
enum class PlanObjective {
    // Time of one decode step of one sequence: the token id travels from the
    // coordinator to stage 0, through every stage (compute + hidden-state hop)
    // and back from the last stage to the coordinator.
    kLatency,
    // Steady-state time per token with many sequences in flight: the slowest
    // pipeline element, each stage counted with its outgoing hop. Among plans
    // with the same slowest element the one with the lowest latency is chosen.
    kThroughput,
};

enum class PlanMethod { kOptimal, kProportional, kManual };

const char *plan_objective_name(PlanObjective objective);  // "latency", "throughput"
const char *plan_method_name(PlanMethod method);           // "optimal", "proportional", "manual"

struct PlannerOptions {
    PlanObjective objective = PlanObjective::kLatency;
    // The node that owns the API, the tokenizer and the plan. Token ids travel
    // between it and the first and last stages. It may be absent from the
    // device list (a coordinator that does not compute); empty means token
    // hops cost nothing (offline planning).
    std::string coordinator_id;
    // When true, the coordinator takes a layer range (at whichever position is
    // best); otherwise it is left out like any device that would add time.
    bool coordinator_must_participate = false;
    // When true (with coordinator_must_participate), the coordinator owns
    // stage 0: colony's coordinator embeds the tokens and runs the first
    // layer range itself (docs/cluster.md, "Planner").
    bool coordinator_first = false;
    // A device whose battery is below this and not charging is left out.
    double min_battery_percent = 20;
    // A device hotter than this is left out; unset: no limit.
    std::optional<double> max_temperature_c;
    // Used for a pair of nodes with no measured link; unset: such nodes are
    // never neighbours in a plan.
    std::optional<LinkProfile> default_link;
    // The exact planner compares at most this many devices (its tables grow
    // as 2^n); beyond it, or beyond what keeps the tables under 4M states
    // (11 devices at 128 layers), the fastest ones are compared. 1..12.
    int max_devices = 10;
    uint64_t epoch = 0;  // copied into the plan
};

/// Everything a planner needs.
struct PlannerInput {
    ModelShape model;
    std::vector<DeviceProfile> devices;  // distinct node ids; order used by the proportional split
    std::vector<LinkProfile> links;
    PlannerOptions options;
};

/// One stage of a plan: a node and its layer range, with predictions per
/// decoded token.
struct PlanStage {
    std::string node_id;
    std::string name;
    LayerRange layers;
    double decode_ms_per_layer = 0;  // the profile value the prediction used
    double compute_ms = 0;      // layers * decode_ms_per_layer (+ output head on the last stage)
    double hop_out_ms = 0;      // hidden state to the next stage, or token id to the coordinator
    double predicted_ms = 0;    // compute_ms + hop_out_ms
    uint64_t memory_bytes = 0;  // weights + KV cache + stage extras + headroom
    uint64_t memory_available_bytes = 0;
};

/// A node that takes no layer range, and why.
struct PlanExclusion {
    std::string node_id;
    std::string name;
    std::string reason;  // "would add 3.10 ms per token", "not enough memory: ...", ...
};

struct Plan {
    uint64_t epoch = 0;
    PlanMethod method = PlanMethod::kOptimal;
    PlanObjective objective = PlanObjective::kLatency;
    std::string coordinator_id;
    int n_layer = 0;
    std::vector<PlanStage> stages;        // in pipeline order; ranges cover [0, n_layer)
    std::vector<PlanExclusion> left_out;  // every input device not in stages, input order
    double hop_in_ms = 0;                 // token id coordinator -> stage 0
    double latency_ms_per_token = 0;      // hop_in_ms + sum of stage predicted_ms
    double bottleneck_ms_per_token = 0;   // max(hop_in_ms, max stage predicted_ms)
    double predicted_ms_per_token = 0;    // the objective's value (one of the two above)
};

/// "1.50 GiB", "300.0 MiB", "512 B": for reasons and tables.
std::string format_bytes(uint64_t bytes);

}  // namespace colony
