#!/usr/bin/env bash
# Installs what colony needs that is missing, fetches the pinned llama.cpp tree
# into the cache (~/.cache/colony) and builds colony into build/.
#
#   scripts/setup.sh [--llama-dir DIR] [--build-dir DIR] [--no-build] [--deps-only] [--debug]
#
#   --llama-dir DIR   build against an existing llama.cpp checkout instead of the pinned tree
#   --build-dir DIR   build directory (default: build)
#   --no-build        install dependencies and fetch llama.cpp, but do not build
#   --deps-only       only install dependencies
#   --debug           CMAKE_BUILD_TYPE=Debug
#
# Platforms: Debian/Ubuntu (apt-get), Termux on Android (pkg). macOS: install with
#   brew install cmake ccache zeromq cppzmq openssl googletest google-benchmark node pkg-config
# then run this script (it skips the package step when brew is the package manager).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
llama_dir="" build_dir="build" build=1 deps_only=0 build_type=Release
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-dir) llama_dir="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --deps-only) deps_only=1; shift ;;
    --debug) build_type=Debug; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "setup: $*" >&2; }

# Debian package names; each entry "package:command-or-file that proves it is there"
debian_deps=(
  "build-essential:g++" "cmake:cmake" "git:git" "ccache:ccache" "pkg-config:pkg-config"
  "libzmq3-dev:/usr/include/zmq.h" "cppzmq-dev:/usr/include/zmq.hpp" "libssl-dev:/usr/include/openssl/ssl.h"
  "libgtest-dev:/usr/include/gtest/gtest.h" "libgmock-dev:/usr/include/gmock/gmock.h"
  "libbenchmark-dev:/usr/include/benchmark/benchmark.h"
  "nodejs:node" "npm:npm" "iproute2:ip" "openssl:openssl" "procps:ps" "curl:curl" "python3:python3"
  "chromium:/usr/bin/chromium" "fonts-dejavu-core:/usr/share/fonts/truetype/dejavu" "gnuplot-nox:gnuplot"
)

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

install_termux() {
  local pkgs=(clang cmake git ccache pkg-config libzmq cppzmq openssl nodejs python)
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
if [ -f tests/api/js/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/api/js/node_modules ] || [ tests/api/js/package-lock.json -nt tests/api/js/node_modules ]; then
    log "installing the JavaScript test clients (npm ci)"
    npm ci --silent --no-audit --no-fund --prefix tests/api/js >/dev/null
  fi
fi

if [ -z "$llama_dir" ]; then
  llama_dir=$(bash scripts/fetch-llama.sh | tail -n1)
fi
[ "$build" = 1 ] || { log "llama.cpp tree: $llama_dir"; exit 0; }

export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/colony/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
jobs=$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
log "configuring $build_dir ($build_type) against $llama_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DCOLONY_LLAMA_DIR="$llama_dir" >/dev/null
log "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"
log "done: $build_dir/bin/colony"
