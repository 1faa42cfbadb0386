// GPU offload options shared by the commands that run a stage on this
// machine: -ngl/--n-gpu-layers, -dev/--device and --list-devices
// (llama.cpp's names, common/arg.cpp), for runtime/stage.h's GpuOffload.
#pragma once

#include <cstdio>
#include <string>

#include "cli/args.h"
#include "runtime/gpu_device.h"
#include "runtime/stage.h"

namespace colony {

struct GpuArgs {
    GpuOffload offload;
    bool list_devices = false;
};

/// Adds -ngl/--n-gpu-layers, -dev/--device and --list-devices.
inline void add_gpu_args(ArgParser &p, GpuArgs *a) {
    p.add("-ngl", "--n-gpu-layers", "N",
          "blocks of this node's stage on the GPU, counted from the stage's end; more than "
          "the stage has, or -1: all of them and the output head (default 0: CPU only; needs "
          "a build with a GPU backend: scripts/setup.sh --vulkan)",
          &a->offload.n_gpu_layers);
    p.add("-dev", "--device", "NAME",
          "GPU device to offload to, as --list-devices names it (default: the first GPU)",
          &a->offload.device);
    p.final_flag("--list-devices", "print the devices of this build's ggml backends and exit",
                 &a->list_devices);
}

/// --list-devices: prints them to stdout. Returns whether it did.
inline bool print_devices_if_asked(const GpuArgs &a) {
    if (!a.list_devices)
        return false;
    std::printf("Available devices (backends: %s):\n%s", backend_names().c_str(),
                format_device_list().c_str());
    return true;
}

}  // namespace colony
