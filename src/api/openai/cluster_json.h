// Pieces of the /v1/cluster JSON shared by every backend (schema: docs/api.md).
#pragma once

#include "api/openai/inference_backend.h"
#include "nlohmann/json.hpp"

namespace colony {

/// {"id", "arch", "n_layer", "n_vocab", "n_ctx_seq"} of the served model.
nlohmann::json cluster_model_json(const BackendModelInfo &info);

}  // namespace colony
