// Pieces of the /v1/cluster JSON shared by every backend (schema: docs/api.md).
#pragma once

#include "api/openai/inference_backend.h"
#include "nlohmann/json.hpp"
#include "runtime/speculative.h"

namespace colony {

/// {"id", "arch", "n_layer", "n_vocab", "n_ctx_seq"} of the served model.
nlohmann::json cluster_model_json(const BackendModelInfo &info);

/// Speculative decoding: {"type", "draft_max", "verifications", "drafted",
/// "accepted", "acceptance", "tokens_per_verification"}, or null when off.
nlohmann::json speculative_json(const SpecParams &params, const SpecStats &totals);

}  // namespace colony
