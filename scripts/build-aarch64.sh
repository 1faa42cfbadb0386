#!/usr/bin/env bash
# Cross-builds colony, its tests and the llama.cpp tools the tests compare with
# for aarch64 Linux, with Debian's cross toolchain and multiarch :arm64
# libraries (both installed here when missing), into build-aarch64/ (or
# build-aarch64-max/). scripts/test-aarch64.sh runs the result under qemu.
#
#   scripts/build-aarch64.sh [--cpu baseline|max] [--deps-only] [TARGET...]
#
#   --cpu baseline  (default) -march=armv8.2-a+dotprod+fp16: NEON, dotprod and
#                   fp16 kernels, what a Cortex-A76/A78 phone core runs; build-aarch64/
#   --cpu max       -march=armv8.6-a+dotprod+fp16+i8mm+sve: ggml's i8mm and SVE
#                   kernels too; build-aarch64-max/ (run it with qemu -cpu max)
#   --deps-only     only install the cross toolchain, qemu and the :arm64 libraries
#   TARGET...       build only these targets (default: everything)
#
# KleidiAI is off: ggml downloads its source at configure time and nothing can
# be downloaded here. With an unpacked KleidiAI release, configure by hand
# with -DCOLONY_KLEIDIAI=ON -DFETCHCONTENT_SOURCE_DIR_KLEIDIAI_DOWNLOAD=DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cpu=baseline deps_only=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --deps-only) deps_only=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    -*) echo "build-aarch64: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
log() { echo "build-aarch64: $*" >&2; }
case "$cpu" in
  baseline) march="armv8.2-a+dotprod+fp16" build_dir="build-aarch64" ;;
  max) march="armv8.6-a+dotprod+fp16+i8mm+sve" build_dir="build-aarch64-max" ;;
  *) echo "build-aarch64: --cpu must be baseline or max, not '$cpu'" >&2; exit 2 ;;
esac

# "package:file that proves it is there"
deps=(
  "crossbuild-essential-arm64:/usr/bin/aarch64-linux-gnu-g++"
  "qemu-user-static:/usr/bin/qemu-aarch64-static"
  "libzmq3-dev:arm64:/usr/lib/aarch64-linux-gnu/libzmq.so"
  "cppzmq-dev:arm64:/usr/lib/aarch64-linux-gnu/pkgconfig/cppzmq.pc"
  "libssl-dev:arm64:/usr/lib/aarch64-linux-gnu/libssl.so"
  "libgtest-dev:arm64:/usr/lib/aarch64-linux-gnu/libgtest.a"
  "libgmock-dev:arm64:/usr/lib/aarch64-linux-gnu/libgmock.a"
  # OpenMP's runtime where qemu's loader looks (the cross toolchain keeps its
  # own copy under /usr/aarch64-linux-gnu/lib)
  "libgomp1:arm64:/usr/lib/aarch64-linux-gnu/libgomp.so.1"
)
missing=()
for entry in "${deps[@]}"; do
  [ -e "${entry##*:}" ] || missing+=("${entry%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "needs Debian's apt-get for: ${missing[*]}"; exit 1; }
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    $sudo dpkg --add-architecture arm64
  fi
  log "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$deps_only" = 1 ] && exit 0

llama_dir=$(bash scripts/fetch-llama.sh | tail -n1)
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/colony/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
log "configuring $build_dir (-march=$march)"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCOLONY_LLAMA_DIR="$llama_dir" \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DCOLONY_CPU="$march" -DCOLONY_KLEIDIAI=OFF >/dev/null
jobs=$(nproc 2>/dev/null || echo 2)
log "building with $jobs jobs${targets:+: ${targets[*]}}"
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" -j "$jobs"
fi
log "done: $build_dir/bin/colony ($(file -b "$build_dir/bin/colony" 2>/dev/null | cut -d, -f1,2))"
