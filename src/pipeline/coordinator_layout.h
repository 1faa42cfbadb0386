// Layout: which node serves which layer range, and the ASSIGN each worker
// gets for it (docs/cluster.md, "Planning"). Pure functions of a snapshot
// of the members (what their JOINs and READYs said), the measured planner's
// profiles and the fixed options (--split, the coordinator's weight, what
// every ASSIGN carries): no sockets, no clocks, no state of the control loop.
// The control loop (coordinator_control.h) takes a snapshot, asks for a
// layout, applies it and sends the ASSIGNs; tests/pipeline/unit_layout_test.cpp
// checks the decisions.
//
// Two kinds of layout, the coordinator always on stage 0:
//   static:   --split as given, or layers in proportion to memory limits (when
//             the coordinator and every worker gave one) or thread counts over
//             [coordinator, workers in join order];
//   measured: plan_optimal over the nodes with a profile (MeasuredPlanner),
//             which may leave slow or memory-poor nodes out.
// Either way, workers then trade stages so that more of them serve a range
// they hold in their shard cache (cached_assignment.h): in a static layout
// only where the ranges stay the same (a manual split, or equal weights), in
// a measured one while the prediction stays within cached_range_slack of the
// optimum.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/plan.h"
#include "model/layer_range.h"
#include "model/layer_skip.h"
#include "net/wire.h"
#include "runtime/dynamic_skip.h"
#include "pipeline/cluster_state.h"

namespace colony {

class MeasuredPlanner;

/// A worker as the layout sees it: a copy of what its JOIN and READYs said.
struct LayoutMember {
    std::string fingerprint;         // key fingerprint: the node id in plans
    std::string name;                // the worker's --name
    std::string data_endpoint;       // its data socket, resolved ("tcp://host:port")
    std::string key_z85;             // its CURVE public key, Z85 (40 characters)
    uint32_t n_threads = 0;          // compute threads it announced
    uint64_t mem_limit_bytes = 0;    // memory limit it announced; 0: none
    std::vector<LayerRange> cached;  // ranges of this model it holds in its shard cache

    /// Whether `range` is one of the cached ranges (exactly).
    bool holds(LayerRange range) const;
};

/// What stays the same for every layout of one coordinator run.
struct LayoutConfig {
    // The model.
    uint32_t n_layer = 0;  // transformer blocks; a layout covers [0, n_layer)
    uint32_t n_embd = 0;
    uint32_t n_vocab = 0;
    WireHash model_hash{};
    // What every ASSIGN carries besides ranges and endpoints.
    WireDtype wire_type = WIRE_DTYPE_F16;  // hidden states on the wire
    uint32_t n_ctx = 0;                    // positions per sequence
    uint32_t n_ubatch = 0;                 // tokens per ubatch
    uint32_t n_seq_max = 0;                // sequences in flight
    // The coordinator: stage 0 of every layout.
    std::string coordinator_id;             // key fingerprint of its node key
    std::string coordinator_name;           // --name or the host name
    std::string coordinator_key_z85;        // its CURVE public key (the last stage's next_key)
    std::string coordinator_data_endpoint;  // where the last stage sends tokens
    int coordinator_threads = 0;            // its weight in a split by threads (<1 counts as 1)
    double coordinator_mem_limit_gib = 0;   // GiB; > 0: a split by memory when every worker
                                            // announced a limit too
    bool secure = true;  // ASSIGNs carry CURVE keys (false: insecure mode, zero keys)
    // --split: one range per stage (the coordinator's first); nullopt: proportional.
    std::optional<std::vector<LayerRange>> manual_split;
    // How much slower than the optimum (a fraction) a measured layout may get
    // by trading workers onto ranges they hold.
    double cached_range_slack = 0.02;
    // --skip-layers: each ASSIGN carries its range's share; a stage whose
    // blocks are all skipped is bypassed (bypass_skipped_stages)
    LayerSkip skip;
    DynamicSkip dyn_skip;  // --dynamic-skip, resolved (hot blocks listed)
};

/// One stage of a layout: who serves `range`.
struct PlannedStage {
    int member = -1;  // index into the members snapshot; -1: the coordinator
    LayerRange range;
    bool operator==(const PlannedStage &) const = default;
};

/// A layout and the same as a cluster Plan (for the view, the policy and the
/// plan table). stages[0] is the coordinator; ranges are contiguous and
/// cover [0, n_layer).
struct Layout {
    std::vector<PlannedStage> stages;
    Plan plan;
};

/// What one worker is sent for a layout.
struct StageAssign {
    int member = -1;  // index into the members snapshot
    WireAssign assign;
};

/// The layout of the next plan over the coordinator and `members` (join
/// order). planner null: the static layout. planner set: the measured
/// layout over the members it has a profile of (the caller checked that it
/// has the coordinator's); members without one stay spares. Logs each trade
/// onto a cached range. Throws Error(kInvalidArgument) when a static split
/// does not fit (more nodes than layers, --split of the wrong size), what
/// MeasuredPlanner::optimal throws when no measured plan fits, and
/// Error(kInternal) when a measured plan names a node that is not a member.
Layout plan_layout(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                   const MeasuredPlanner *planner);

/// Joins every stage after the first whose blocks are all in config.skip to
/// the stage before it (its range is added there; none of its weights are
/// loaded), so the pipeline loses that stage and its hop; the worker becomes
/// a spare. Returns whether a stage went.
bool bypass_skipped_stages(const LayoutConfig &config, std::vector<PlannedStage> &stages);

/// The static layout (see plan_layout). Throws like plan_layout.
Layout static_layout(const LayoutConfig &config, const std::vector<LayoutMember> &members);

/// The measured plan over `members` with a profile in `planner`, with workers
/// traded onto cached ranges within config.cached_range_slack of the
/// optimum. Throws what MeasuredPlanner::optimal throws.
Plan measured_plan(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                   const MeasuredPlanner &planner);

/// The stages of `plan` as member indices; nullopt when a node of it is not
/// a member, or the coordinator is not (only) on stage 0.
std::optional<std::vector<PlannedStage>> stages_of(const LayoutConfig &config,
                                                   const std::vector<LayoutMember> &members,
                                                   const Plan &plan);

/// `base` with its stages replaced by `stages` (node ids, names, ranges; no
/// predictions).
Plan plan_of(const LayoutConfig &config, const std::vector<LayoutMember> &members,
             const std::vector<PlannedStage> &stages, Plan base);

/// The ASSIGN fields every assignment of `range` shares at `epoch` (no
/// endpoints or keys); is_last when range ends at n_layer.
WireAssign assign_for(const LayoutConfig &config, uint64_t epoch, LayerRange range);

/// The ASSIGN of every worker stage (stages[1..]) at `epoch`, in stage
/// order: each points at the next stage's data socket and CURVE key, the
/// last at the coordinator's; stages after the first also name the previous
/// stage's key (secure mode). stages[0] must be the coordinator.
std::vector<StageAssign> stage_assigns(const LayoutConfig &config,
                                       const std::vector<LayoutMember> &members,
                                       const std::vector<PlannedStage> &stages, uint64_t epoch);

/// The ASSIGN of a probe (epoch 0): a spare loads `range`, measures it and
/// reports; nothing runs on it, so it points at the coordinator.
WireAssign probe_assign(const LayoutConfig &config, LayerRange range);

/// The coordinator's part of a layout (epoch and ms_per_token_hint left 0):
/// its range and where stage 1 listens (nothing when it is the only stage).
LocalPlan local_plan(const LayoutConfig &config, const std::vector<LayoutMember> &members,
                     const std::vector<PlannedStage> &stages);

}  // namespace colony
