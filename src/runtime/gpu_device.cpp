#include "runtime/gpu_device.h"

#include <algorithm>
#include <cctype>

#include "util/error.h"

namespace colony {

namespace {

const char *type_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
            return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL:
            return "accel";
    }
    return "?";
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool is_gpu(ggml_backend_dev_t d) {
    const auto t = ggml_backend_dev_type(d);
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

}  // namespace

std::vector<BackendDevice> list_backend_devices() {
    std::vector<BackendDevice> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        BackendDevice b;
        b.name = ggml_backend_dev_name(d);
        b.description = ggml_backend_dev_description(d);
        b.type = type_name(ggml_backend_dev_type(d));
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(d, &free, &total);
        b.memory_free = free;
        b.memory_total = total;
        out.push_back(std::move(b));
    }
    return out;
}

std::string backend_names() {
    std::string s;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        const std::string n = ggml_backend_reg_name(ggml_backend_reg_get(i));
        if (n == "RPC")  // llama.cpp's RPC client, for the comparison benchmarks only
            continue;
        s += (s.empty() ? "" : ", ") + n;
    }
    return s;
}

ggml_backend_dev_t find_gpu_device(const std::string &name) {
    std::string gpus;
    ggml_backend_dev_t first_gpu = nullptr, first_igpu = nullptr;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (!is_gpu(d))
            continue;
        gpus += (gpus.empty() ? "" : ", ") + std::string(ggml_backend_dev_name(d));
        if (!name.empty() && lower(ggml_backend_dev_name(d)) == lower(name))
            return d;
        auto &first =
            ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU ? first_gpu : first_igpu;
        if (!first)
            first = d;
    }
    if (name.empty() && (first_gpu || first_igpu))
        return first_gpu ? first_gpu : first_igpu;
    if (gpus.empty()) {
        throw Error(ErrorCode::kNotFound,
                    "no GPU device: this build's ggml backends are " + backend_names() +
                        " (build a GPU backend with scripts/setup.sh --vulkan, or --cuda), or the "
                        "backend found no device (Vulkan: vulkaninfo --summary lists them)");
    }
    throw Error(ErrorCode::kNotFound, "no GPU device named '" + name + "'; this build has " + gpus);
}

std::string gpu_label(const GpuOffload &gpu) {
    if (gpu.n_gpu_layers == 0)
        return "";
    return std::string(ggml_backend_dev_name(find_gpu_device(gpu.device))) + " (-ngl " +
           std::to_string(gpu.n_gpu_layers) + (gpu.n_gpu_layers < 0 ? ": all)" : ")");
}

std::string format_device_list() {
    std::string s;
    for (const BackendDevice &d : list_backend_devices()) {
        s += d.name + ": " + d.description + " (" + d.type;
        if (d.memory_total > 0)
            s += ", " + std::to_string(d.memory_free >> 20) + " MiB free of " +
                 std::to_string(d.memory_total >> 20);
        s += ")\n";
    }
    return s;
}

}  // namespace colony
