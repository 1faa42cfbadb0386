#!/usr/bin/env bash
# Builds colony's libFuzzer targets (tests/fuzz) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer into build-fuzz/, then runs every target (or
# the ones named) and prints a table: executions, executions per second,
# coverage, corpus size and the result.
#
#   scripts/fuzz.sh [--seconds N] [--long] [--runs N] [--jobs J] [TARGET...]
#
#   (default)     a short run: 60 s per target (what CI runs)
#   --seconds N   N seconds per target
#   --long        at least 10 million executions per target (the campaign
#                 whose figures docs/security.md quotes); hours on 2 cores
#   --runs N      N executions per target
#   --jobs J      targets fuzzed at once (default: 1)
#   --build-only  build the targets and the seeds, run nothing
#   --ci          the short run CI makes (scripts/test.sh): a fixed number of
#                 executions per target (about 30 s each here) with seed 1,
#                 from the seeds and kept crashes only (a fresh corpus), so a
#                 run gives the same result on every machine
#
# Targets: gguf shard wire beacon token zap api_request stage_frames. Each run starts from
# the corpus it grew before (build-fuzz/corpus/<target>), the seeds
# (tests/fuzz/seeds/<target> and those make_seeds writes) and every kept crash
# (tests/fuzz/regressions/<target>, which must all pass). A crash, an ASan or
# UBSan report, a leak, a timeout (10 s per input) or an out-of-memory (2 GB)
# fails the run; its input is written to build-fuzz/crashes/<target>/; copy it
# into tests/fuzz/regressions/<target>/ with the fix. Exit status 1 when any
# target failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=60 runs="" jobs=1 build_only=0 ci=0 targets=()
all_targets=(gguf shard wire beacon token zap api_request stage_frames)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --long) runs=10000000; seconds=0; shift ;;
    --runs) runs="$2"; seconds=0; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --ci) ci=1; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
log() { echo "fuzz: $*" >&2; }

# clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev)
fuzzer_lib() { ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null | head -n1; }
if ! command -v clang++ >/dev/null 2>&1 || [ -z "$(fuzzer_lib)" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing clang and libclang-rt-dev (libFuzzer)"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
  else
    log "needs clang with libFuzzer (compiler-rt); install them and run again"; exit 2
  fi
fi

llama_dir=$(bash scripts/fetch-llama.sh | tail -n1)
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/colony/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
ncpu=$(nproc 2>/dev/null || echo 2)
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  log "configuring build-fuzz (clang, ASan + UBSan, libFuzzer)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DCOLONY_FUZZ=ON \
    -DCOLONY_BUILD_TESTS=OFF -DCOLONY_BUILD_BENCH=OFF -DCOLONY_LLAMA_DIR="$llama_dir" >/dev/null
fi
log "building ${targets[*]}"
if ! cmake --build build-fuzz -j "$ncpu" --target fuzz_make_seeds "${targets[@]/#/fuzz_}" >build-fuzz/build.log 2>&1; then
  grep -E "error" build-fuzz/build.log | head -20 >&2 || true
  log "the build failed (build-fuzz/build.log)"; exit 2
fi
rm -rf build-fuzz/seeds
build-fuzz/bin/fuzz_make_seeds build-fuzz/seeds
[ "$build_only" = 1 ] && exit 0

ci_runs() {
  case "$1" in
    gguf|shard) echo 60000 ;; token) echo 100000 ;; api_request) echo 150000 ;;
    beacon) echo 300000 ;; wire|zap) echo 500000 ;; stage_frames) echo 3000 ;;
  esac
}
max_len() { case "$1" in gguf|shard) echo 65536 ;; wire|stage_frames) echo 8192 ;; *) echo 4096 ;; esac; }

run_one() {
  local t="$1" corpus="build-fuzz/corpus/$1" crashes="build-fuzz/crashes/$1" log="build-fuzz/logs/$1.log"
  mkdir -p "$corpus" "$crashes" build-fuzz/logs
  local dirs=("$corpus")
  for d in "tests/fuzz/seeds/$t" "build-fuzz/seeds/$t" "tests/fuzz/regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  local limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit=(-runs="$runs")
  if [ "$ci" = 1 ]; then
    rm -rf "build-fuzz/corpus-ci/$t" && mkdir -p "build-fuzz/corpus-ci/$t"
    dirs[0]="build-fuzz/corpus-ci/$t"
    limit=(-runs="$(ci_runs "$t")" -seed=1)
  fi
  local dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
  # stage_frames keeps a loaded model and ggml's graph buffers across inputs by
  # design; libFuzzer's per-input leak check takes them for leaks and slows the
  # target tenfold, so it runs without (ASan's other checks stay on).
  local leaks=1
  [ "$t" = stage_frames ] && leaks=0
  local rc=0
  COLONY_FUZZ_MODEL=tests/fuzz/data/tiny-llama-2l-f32.gguf \
  ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "build-fuzz/bin/fuzz_$t" "${limit[@]}" "${dict[@]}" -max_len="$(max_len "$t")" -timeout=10 -detect_leaks="$leaks" \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  echo "$rc" >"build-fuzz/logs/$t.rc"
}

pids=()
for t in "${targets[@]}"; do
  if [ "$ci" = 1 ]; then log "fuzzing $t ($(ci_runs "$t") executions, seed 1)"
  elif [ -n "$runs" ]; then log "fuzzing $t ($runs executions)"; else log "fuzzing $t ($seconds s)"; fi
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait

status=0
printf '%-12s %12s %10s %8s %8s  %s\n' target executions exec/s cov corpus result
for t in "${targets[@]}"; do
  lg="build-fuzz/logs/$t.log" rc=$(cat "build-fuzz/logs/$t.rc")
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$lg" | tail -n1 | awk '{print $2}' || true)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$lg" | tail -n1 | awk '{print $2}' || true)
  cov=$(grep -o 'cov: [0-9]*' "$lg" | tail -n1 | awk '{print $2}' || true)
  corp=$(find "build-fuzz/corpus$([ "$ci" = 1 ] && echo -ci)/$t" -type f | wc -l)
  result=ok
  if [ "$rc" != 0 ]; then
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR: |runtime error|escaped|SUMMARY' "$lg" | cut -c1-120 || true)"
    status=1
  fi
  printf '%-12s %12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "$corp" "$result"
done
[ "$status" = 0 ] || log "logs in build-fuzz/logs; crashing inputs in build-fuzz/crashes"
exit "$status"
