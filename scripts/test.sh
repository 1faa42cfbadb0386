#!/usr/bin/env bash
# Installs, builds everything (colony, tests, benchmarks, llama.cpp tools used by
# tests) and runs the whole test suite with CTest.
#
#   scripts/test.sh [ctest options...]      e.g. scripts/test.sh -R Golden
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cd build
ctest --output-on-failure -j "$jobs" "$@"
