// The ggml backend devices this build has (CPU, and the GPU backends it was
// built with: Vulkan, CUDA, Metal, OpenCL), as llama.cpp's --list-devices
// shows them, and the choice of a stage's GPU (--device, -ngl).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "runtime/stage.h"

namespace colony {

/// One ggml backend device.
struct BackendDevice {
    std::string name;         // ggml's device name, e.g. "CPU", "Vulkan0", "CUDA0"
    std::string description;  // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
    std::string type;         // "cpu", "gpu", "igpu" or "accel"
    uint64_t memory_free = 0, memory_total = 0;  // bytes, as the backend reports them
};

/// Every device of every backend in this build, in ggml's order.
std::vector<BackendDevice> list_backend_devices();

/// Names of the backends this build has, e.g. "CPU, Vulkan".
std::string backend_names();

/// The device a stage offloads to: the one named `name` (ggml's device name,
/// case-insensitive, e.g. "Vulkan0"), or with an empty name the first GPU
/// (then integrated GPU) device. Errors: Error(kNotFound) naming the devices
/// there are, or saying this build has no GPU backend (scripts/setup.sh --vulkan).
ggml_backend_dev_t find_gpu_device(const std::string &name);

/// How a node offloads, for reports: "" without offload, else the device's
/// name and the blocks, e.g. "Vulkan0 (-ngl 2)" or "Vulkan0 (-ngl -1: all)".
/// Errors: find_gpu_device's.
std::string gpu_label(const GpuOffload &gpu);

/// One line per device for --list-devices: "Vulkan0: llvmpipe (...) (gpu, 1024 MiB free of 2048)".
std::string format_device_list();

}  // namespace colony
