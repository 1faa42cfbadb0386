// The cost model shared by every planner: memory of a stage, compute time of a
// layer range on a device, and hop times over measured links. One definition,
// so the optimal, proportional and manual plans are predicted the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/plan.h"

namespace colony {

inline constexpr double kUnreachableMs = std::numeric_limits<double>::infinity();

/// Precomputed costs for one PlannerInput. Device indices refer to
/// input.devices. Keeps a copy of what it needs; the input may go away.
class PlanCostModel {
  public:
    /// Validates the input: model shape (n_layer 1..32767, one weight entry
    /// per layer, positive hidden bytes, n_ctx 1..2^24, n_parallel 1..4096),
    /// every device profile and link, distinct node ids, options in range.
    /// Throws Error(kInvalidArgument) naming the bad field.
    explicit PlanCostModel(const PlannerInput &input);

    const PlannerInput &input() const { return input_; }
    int n_layer() const { return input_.model.n_layer; }
    size_t n_devices() const { return input_.devices.size(); }
    std::optional<size_t> device_index(const std::string &node_id) const;

    /// Bytes of weights and KV cache (n_ctx * n_parallel tokens) of the blocks
    /// in `range`; saturates at UINT64_MAX.
    uint64_t range_bytes(LayerRange range) const;
    /// The range's weights and its computed blocks' KV cache with the
    /// device's own KV types (DeviceProfile::kv_bytes_per_token_per_layer
    /// when set, else the model's) + token embedding if range starts at 0 +
    /// output head if it ends at n_layer + the device's headroom; saturating.
    uint64_t stage_memory_bytes(size_t device, LayerRange range) const;
    bool fits(size_t device, LayerRange range) const {
        return stage_memory_bytes(device, range) <= input_.devices[device].mem_available_bytes;
    }

    /// Decode compute of one token: decode_ms_per_layer * computed blocks
    /// (those not skipped), plus decode_ms_output when the range ends at
    /// n_layer. ms.
    double compute_ms(size_t device, LayerRange range) const;
    /// Blocks of `range` that are computed (ModelShape::layer_skipped).
    uint32_t computed_blocks(LayerRange range) const {
        return prefix_computed_[range.last] - prefix_computed_[range.first];
    }

    /// One-way time of a message: RTT/2 + bytes / throughput. 0 between a node
    /// and itself; kUnreachableMs when no link is known (and no default).
    double hop_ms(const std::string &from, const std::string &to, uint64_t bytes) const;
    /// Hidden state of one token from device a to device b.
    double hidden_hop_ms(size_t a, size_t b) const { return hidden_hop_[a * n_devices() + b]; }
    /// Token id from the coordinator to device d, and back.
    double token_in_ms(size_t d) const { return token_in_[d]; }
    double token_out_ms(size_t d) const { return token_out_[d]; }

    /// Builds a plan from ordered (device, range) stages: fills every stage's
    /// predictions and memory, the totals and the objective's value, and lists
    /// every other device in left_out with the reason from `reasons` (or "not
    /// in the plan"). Does not check memory or coverage; see check_stages.
    Plan make_plan(const std::vector<std::pair<size_t, LayerRange>> &stages, PlanMethod method,
                   const std::map<size_t, std::string> &reasons) const;

    /// Checks that stages use distinct devices, cover [0, n_layer) contiguously
    /// with non-empty ranges, and (when check_memory) fit each device's
    /// memory. Throws Error(kInvalidArgument) for a bad layout and
    /// Error(kResource) naming the stage, what it needs and what the device
    /// has when memory does not fit.
    void check_stages(const std::vector<std::pair<size_t, LayerRange>> &stages,
                      bool check_memory = true) const;

    /// Smallest memory any single-block stage needs on `device` (the block
    /// with its KV cache and headroom, plus the stage extras when the model
    /// has one block). Used for "not enough memory" reasons.
    uint64_t min_stage_memory_bytes(size_t device) const;

    /// Memory the whole model needs without headroom: every computed block
    /// with KV cache (of the device with the smallest, a lower bound) plus
    /// both stage extras.
    uint64_t model_memory_bytes() const;

  private:
    PlannerInput input_;
    std::vector<uint64_t> prefix_bytes_;     // [n_layer + 1], saturating prefix sums of block bytes
    std::vector<uint32_t> prefix_computed_;  // [n_layer + 1], prefix counts of computed blocks
    std::vector<uint64_t> prefix_weight_bytes_;  // [n_layer + 1], weights of computed blocks
    std::vector<uint64_t> device_kv_per_layer_;  // [n_devices] KV bytes of one block, all tokens
    std::vector<double> hidden_hop_;             // [n_devices * n_devices]
    std::vector<double> token_in_;               // [n_devices]
    std::vector<double> token_out_;              // [n_devices]
};

/// Saturating uint64 arithmetic for byte counts.
uint64_t add_bytes_saturating(uint64_t a, uint64_t b);
uint64_t mul_bytes_saturating(uint64_t a, uint64_t b);

}  // namespace colony
