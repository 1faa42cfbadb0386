#!/usr/bin/env bash
# Builds colony with ggml's Vulkan backend into build-vulkan/ and runs the GPU
# tests there: a stage offloaded to the GPU against the CPU stage (logits
# within tolerance, same greedy tokens; whole model, some blocks, a pipeline
# of a CPU and a GPU stage) and a cluster where one worker runs on the GPU.
# On a machine without a GPU the device is Mesa's lavapipe (software Vulkan,
# installed by scripts/setup.sh --vulkan).
#
#   scripts/test-vulkan.sh [--no-build]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "test-vulkan: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "test-vulkan: $(date +%H:%M:%S) $*" >&2; }
start=$(date +%s)
if [ "$build" = 1 ]; then
  # packages, the Vulkan tools, and the configuration of build-vulkan/ (tests on)
  bash scripts/setup.sh --vulkan --all --no-build
  bash scripts/setup.sh --vulkan --all --build-dir build-vulkan --configure-only
  log "building colony and the GPU tests (ggml-vulkan compiles its shaders first)"
  cmake --build build-vulkan -j "$(nproc)" --target colony test_stage_gpu colony_gpu_cluster_tests
  log "built in $(( $(date +%s) - start )) s"
fi
# ggml-vulkan skips CPU-type Vulkan devices (lavapipe) unless they are named
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
build-vulkan/bin/colony generate --list-devices
t0=$(date +%s)
rc=0
(cd build-vulkan && ctest --output-on-failure -j 1 -R '^(StageGpu|PipelineGpu)\.') || rc=1
log "tests took $(( $(date +%s) - t0 )) s; total $(( $(date +%s) - start )) s: $([ $rc = 0 ] && echo passed || echo FAILED)"
exit $rc
