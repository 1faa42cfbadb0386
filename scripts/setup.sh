#!/usr/bin/env bash
# Installs what colony needs that is missing, fetches the pinned llama.cpp tree
# into the cache (~/.cache/colony) and builds the colony program (and the
# llama.cpp libraries it links) into build/: what the main job needs, and all
# a phone should build.
#
#   scripts/setup.sh [--all] [--vulkan|--cuda] [--llama-dir DIR] [--build-dir DIR] [--no-build] [--configure-only] [--deps-only] [--debug]
#
#   --all             also the test and benchmark packages, and build everything:
#                     tests, benchmarks, llama.cpp's comparison tools (scripts/test.sh uses it)
#   --vulkan          build ggml's Vulkan backend too (installs the Vulkan headers, loader,
#                     glslc and SPIR-V headers, and Mesa's drivers with the lavapipe software
#                     device); stages offload with -ngl (docs/cluster.md, "GPUs")
#   --cuda            build ggml's CUDA backend too (the CUDA toolkit's nvcc must be installed)
#   --llama-dir DIR   build against an existing llama.cpp checkout instead of the pinned tree
#   --build-dir DIR   build directory (default: build)
#   --no-build        install dependencies and fetch llama.cpp, but do not build
#   --configure-only  also configure the build directory, but do not build
#   --deps-only       only install dependencies
#   --debug           CMAKE_BUILD_TYPE=Debug
#
# Platforms: Debian/Ubuntu (apt-get), Termux on Android (pkg, no root; Termux
# has no cppzmq package, so third_party/cppzmq stands in). macOS: install with
#   brew install cmake ccache zeromq cppzmq openssl eigen googletest google-benchmark node pkg-config
# then run this script (it skips the package step when brew is the package manager).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
llama_dir="" build_dir="build" build=1 deps_only=0 build_type=Release all=0 gpu="" configure_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=1; shift ;;
    --vulkan) gpu=vulkan; shift ;;
    --cuda) gpu=cuda; shift ;;
    --llama-dir) llama_dir="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --configure-only) configure_only=1; shift ;;
    --deps-only) deps_only=1; shift ;;
    --debug) build_type=Debug; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "setup: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "setup: $*" >&2; }

# Debian package names; each entry "package:command-or-file that proves it is there".
# The main job: a compiler, cmake, libzmq, OpenSSL, and npm (the llama.cpp tree
# comes from the npm registry).
# Libraries are proven by this architecture's files, not by headers: the
# aarch64 cross build installs the :arm64 packages, which share /usr/include.
multiarch=$(gcc -print-multiarch 2>/dev/null || true); multiarch=${multiarch:-$(uname -m)-linux-gnu}
debian_deps=(
  "build-essential:g++" "cmake:cmake" "git:git" "ccache:ccache" "pkg-config:pkg-config"
  "libzmq3-dev:/usr/lib/$multiarch/pkgconfig/libzmq.pc" "cppzmq-dev:/usr/include/zmq.hpp"
  "libssl-dev:/usr/lib/$multiarch/libssl.so"
  "nodejs:node" "npm:npm" "openssl:openssl" "python3:python3"
  "libeigen3-dev:/usr/include/eigen3/Eigen/Dense"
)
# --all: the tests (GoogleTest, the network lab, the browser test), the benchmarks
debian_test_deps=(
  "libgtest-dev:/usr/lib/$multiarch/libgtest.a" "libgmock-dev:/usr/lib/$multiarch/libgmock.a"
  "libbenchmark-dev:/usr/include/benchmark/benchmark.h"
  "iproute2:ip" "procps:ps" "curl:curl"
  "chromium:/usr/bin/chromium" "fonts-dejavu-core:/usr/share/fonts/truetype/dejavu" "gnuplot-nox:gnuplot"
)
[ "$all" = 1 ] && debian_deps+=("${debian_test_deps[@]}")
# --vulkan: ggml-vulkan's build needs the headers, glslc and SPIR-V headers;
# Mesa's drivers bring lavapipe, a Vulkan device on the CPU that the tests use
debian_vulkan_deps=(
  "libvulkan-dev:/usr/include/vulkan/vulkan.h" "glslc:glslc"
  "spirv-headers:/usr/include/spirv/unified1/spirv.hpp" "mesa-vulkan-drivers:/usr/share/vulkan/icd.d"
)
[ "$gpu" = vulkan ] && debian_deps+=("${debian_vulkan_deps[@]}")

have() { case "$1" in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }

install_debian() {
  local missing=()
  for entry in "${debian_deps[@]}"; do
    have "${entry#*:}" || missing+=("${entry%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && { log "all Debian packages present"; return; }
  log "installing: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Termux package names (termux/termux-packages: packages/<name>). libzmq is
# built with libsodium (CURVE); OpenSSL's headers are in `openssl`.
install_termux() {
  local pkgs=(clang cmake git ccache pkg-config libzmq openssl nodejs python eigen)
  [ "$all" = 1 ] && pkgs+=(googletest curl procps)
  [ "$gpu" = vulkan ] && pkgs+=(vulkan-headers vulkan-loader-android shaderc spirv-headers)
  log "installing with pkg: ${pkgs[*]}"
  pkg install -y "${pkgs[@]}"
}

if [ -n "${TERMUX_VERSION:-}" ] || [ -d /data/data/com.termux ]; then
  install_termux
elif command -v apt-get >/dev/null 2>&1; then
  install_debian
elif command -v brew >/dev/null 2>&1; then
  log "macOS/Homebrew: install the packages listed in this script's header if the build fails"
else
  log "unknown platform: install a C++20 compiler, cmake, libzmq+cppzmq, OpenSSL, GoogleTest, node/npm"
fi
[ "$deps_only" = 1 ] && exit 0

# JavaScript test clients (openai, the Vercel AI SDK, LangChain.js, ollama, zod;
# playwright-core for the browser test), pinned by tests/api/js/package-lock.json
if [ "$all" = 1 ] && [ -f tests/api/js/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/api/js/node_modules ] || [ tests/api/js/package-lock.json -nt tests/api/js/node_modules ]; then
    log "installing the JavaScript test clients (npm ci)"
    npm ci --silent --no-audit --no-fund --prefix tests/api/js >/dev/null
  fi
fi

if [ "$gpu" = cuda ] && ! command -v nvcc >/dev/null 2>&1; then
  log "--cuda: nvcc is not on PATH; install the CUDA toolkit first"
  exit 1
fi

if [ -z "$llama_dir" ]; then
  llama_dir=$(bash scripts/fetch-llama.sh | tail -n1)
fi
[ "$build" = 1 ] || { log "llama.cpp tree: $llama_dir"; exit 0; }

export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/colony/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
jobs=$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
# CMake flags for ggml-vulkan's glslc and headers: the system's where they are
# new enough (not on Debian 12), else those of scripts/fetch-vulkan-tools.sh.
vulkan_tool_flags() {
  # VK_EXT_layer_settings came with Vulkan 1.3.261, after cooperative matrices and
  # the glslc that compiles them
  grep -qs VkLayerSettingEXT /usr/include/vulkan/vulkan_core.h && return 0
  local dir
  dir=$(bash scripts/fetch-vulkan-tools.sh | tail -n1)
  echo "-DVulkan_GLSLC_EXECUTABLE=$dir/glslc -DVulkan_INCLUDE_DIR=$dir/usr/include -DSPIRV-Headers_DIR=$dir/usr/share/cmake/SPIRV-Headers"
}

# Without --all only the colony program is built; a build directory that was
# configured with the tests keeps them (configuring them needs GoogleTest).
tests=()
case "$gpu" in
  # the pinned tree needs a newer glslc and Vulkan headers than Debian 12's
  vulkan) tests+=(-DGGML_VULKAN=ON $(vulkan_tool_flags)) ;;
  cuda) tests+=(-DGGML_CUDA=ON) ;;
esac
if [ "$all" = 1 ]; then
  tests+=(-DCOLONY_BUILD_TESTS=ON -DCOLONY_BUILD_BENCH=ON)
elif [ ! -f "$build_dir/CMakeCache.txt" ]; then
  tests+=(-DCOLONY_BUILD_TESTS=OFF -DCOLONY_BUILD_BENCH=OFF)
fi
log "configuring $build_dir ($build_type) against $llama_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DCOLONY_LLAMA_DIR="$llama_dir" "${tests[@]}" >/dev/null
[ "$configure_only" = 1 ] && { log "configured $build_dir"; exit 0; }
if [ "$all" = 1 ]; then
  log "building everything with $jobs jobs"
  cmake --build "$build_dir" -j "$jobs"
else
  log "building colony with $jobs jobs (--all: tests and benchmarks too)"
  cmake --build "$build_dir" -j "$jobs" --target colony
fi
log "done: $build_dir/bin/colony"
