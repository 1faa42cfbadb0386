#!/usr/bin/env bash
# Installs, builds everything (colony, tests, benchmarks, llama.cpp tools used by
# tests) and runs the whole test suite with CTest. Then lists every skipped test
# with its reason and fails when one skipped for anything but a named missing
# prerequisite (scripts/check-skips.py; COLONY_TEST_STRICT=1 allows none).
# Then the short fuzz campaign (scripts/fuzz.sh --ci: a fixed number of
# executions per target with a fixed seed, about 30 s each, with the kept
# crashes replayed); COLONY_TEST_FUZZ=0 skips it. Then the aarch64 cross build
# and its CI subset under qemu (scripts/test-aarch64.sh --ci: golden parity,
# stages, wire, planner, a cluster, and a mixed x86-64 + aarch64 cluster);
# COLONY_TEST_AARCH64=0 skips it.
#
#   scripts/test.sh [ctest options...]      e.g. scripts/test.sh -R Golden
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --all
jobs=$(nproc 2>/dev/null || echo 2)
junit="$PWD/build/ctest-junit.xml"
rm -f "$junit"
rc=0
(cd build && ctest --output-on-failure --output-junit "$junit" -j "$jobs" "$@") || rc=$?
skips=0
python3 scripts/check-skips.py "$junit" || skips=$?
if [ "$rc" -ne 0 ] || [ "$skips" -ne 0 ]; then
  echo "test.sh: ctest exit $rc, skip check exit $skips" >&2
  exit 1
fi
if [ "$#" -eq 0 ] && [ "${COLONY_TEST_FUZZ:-1}" != 0 ]; then
  bash scripts/fuzz.sh --ci || { echo "test.sh: the fuzz campaign failed" >&2; exit 1; }
fi
if [ "$#" -eq 0 ] && [ "${COLONY_TEST_AARCH64:-1}" != 0 ]; then
  bash scripts/test-aarch64.sh --ci || { echo "test.sh: the aarch64 tests under qemu failed" >&2; exit 1; }
fi
