// Helpers shared by the InferenceBackend implementations (inference_backend.h).
#include "api/openai/inference_backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "ggml-backend.h"
#include "util/host.h"

namespace colony {

const char *finish_reason_name(FinishReason reason) {
    switch (reason) {
        case FinishReason::kStop:
            return "stop";
        case FinishReason::kLength:
            return "length";
        case FinishReason::kCancelled:
            return "cancelled";
        case FinishReason::kError:
            return "error";
    }
    return "error";
}

std::string model_id_from_path(const std::string &path) {
    std::string name = std::filesystem::path(path).filename().string();
    const std::string ext = ".gguf";
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
        name.resize(name.size() - ext.size());
    }
    return name;
}

uint64_t file_mtime_unix(const std::string &path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_mtime) : 0;
}

std::string this_host_name() {
    return host_name().value_or("localhost");
}

std::string cpu_device_name() {
    if (ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        return ggml_backend_dev_description(dev);
    return "CPU";
}

}  // namespace colony

#include "api/openai/cluster_json.h"

namespace colony {

nlohmann::json speculative_json(const SpecParams &params, const SpecStats &totals) {
    if (!params.enabled())
        return nullptr;
    const double per_verification = totals.n_verifications > 0
                                        ? 1.0 + static_cast<double>(totals.n_accepted) /
                                                    static_cast<double>(totals.n_verifications)
                                        : 0.0;
    return {{"type", spec_type_name(params.type)},
            {"draft_max", params.draft_max},
            {"verifications", totals.n_verifications},
            {"drafted", totals.n_drafted},
            {"accepted", totals.n_accepted},
            {"acceptance", totals.acceptance()},
            {"tokens_per_verification", per_verification}};
}

nlohmann::json cluster_model_json(const BackendModelInfo &info) {
    return {{"id", info.id},
            {"arch", info.arch},
            {"n_layer", info.n_layer},
            {"n_vocab", info.n_vocab},
            {"n_ctx_seq", info.n_ctx_seq},
            {"skip_layers", info.skip_layers}};
}

}  // namespace colony
