#!/usr/bin/env python3
"""Mutation check: plants deliberate bugs in a copy of the source tree, one at a
time, and shows that the test suite fails for each.

    scripts/mutate-check.py [--list] [--only NAME[,NAME...]] [--full] [-j N]

For every mutation the script copies the working tree (tracked and untracked,
not ignored files) to build-mutate/<repository folder>, replaces one exact piece of code (it
must occur exactly once, so a mutation that no longer applies is reported, not
silently skipped), builds into its build/ (ccache and an incremental
build make later runs fast), and runs the CTest tests named by the mutation's
regex, or every test with --full. A mutation is *caught* when CTest fails; the
failed tests are listed. First the same tests run on the unmutated copy: a test
that already fails there would prove nothing, so the check stops.

Exit status: 0 when every mutation was caught, 1 when one was missed (or the
baseline failed), 2 on a usage or build error. Takes about 2-4 minutes per
mutation on 2 cores after the first build of the copy (about 10 minutes).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build-mutate"
# The copy keeps the repository's folder name and its build/ inside, so with
# CCACHE_BASEDIR=WORK its relative paths equal those of the repository's own
# build (CCACHE_BASEDIR=its parent, scripts/setup.sh): unchanged files are
# ccache hits, and the first build of the copy takes minutes, not the whole build.
TREE = WORK / REPO.name
BUILD = TREE / "build"


@dataclass
class Mutation:
    name: str
    what: str      # the bug, in words
    path: str      # file, relative to the repository
    old: str       # exact text that must occur once
    new: str
    tests: str     # ctest -R regex of the tests expected to catch it


MUTATIONS = [
    Mutation("layer-range-off-by-one",
             "every stage skips the last block of its layer range",
             "src/model/graph.cpp",
             "for (uint32_t il = r.first; il < r.last; ++il) {",
             "for (uint32_t il = r.first; il + 1 < r.last; ++il) {",
             r"^(AllTypes/Stories260KGolden|cli\.generate_greedy|PipelineEquivalence\.EverySplitOfF32|PipelineOracle)"),
    Mutation("rope-base",
             "RoPE uses twice the model's frequency base",
             "src/model/graph.cpp",
             "static_cast<int>(hp.n_ctx_train), hp.rope_freq_base,",
             "static_cast<int>(hp.n_ctx_train), 2.0f * hp.rope_freq_base,",
             r"^(AllTypes/Stories260KGolden|cli\.generate_greedy|PipelineOracle)"),
    Mutation("hop-drops-a-byte",
             "every hidden-state hop loses its last byte",
             "src/pipeline/stage_step.cpp",
             "n_embd, out_dtype);\n        return next;",
             "n_embd, out_dtype);\n        next.data.pop_back();\n        return next;",
             r"^(StageStep|PipelineEquivalence\.DefaultF16|PipelineOracle)"),
    Mutation("hop-flips-a-bit",
             "every hidden-state hop flips one exponent bit of its first value",
             "src/pipeline/stage_step.cpp",
             "n_embd, out_dtype);\n        return next;",
             "n_embd, out_dtype);\n        next.data[1] ^= 0x40;\n        return next;",
             r"^(StageStep|PipelineEquivalence\.DefaultF16|PipelineOracle)"),
    Mutation("sampler-ignores-seed",
             "the sampler draws with a random seed instead of the request's",
             "src/runtime/sampler.cpp",
             "llama_sampler_init_dist(p.seed)",
             "llama_sampler_init_dist(LLAMA_DEFAULT_SEED)",
             r"^(cli\.generate_seeded|PipelineSampling)"),
    Mutation("error-returns-200",
             "an invalid request is answered with HTTP 200 instead of 400",
             "src/api/openai/api_error.cpp",
             "case ErrorCode::kInvalidArgument:\n            return {400, \"\"};",
             "case ErrorCode::kInvalidArgument:\n            return {200, \"\"};",
             r"^(ApiError|HttpApi\.)"),
    Mutation("cached-shard-not-verified",
             "a cached shard is trusted without checking its content",
             "src/pipeline/shard_verify.cpp",
             "else if (*got != *recorded)",
             "else if (false && *got != *recorded)",
             r"^(ShardVerify|PipelineShardVerify)\."),
]


def run(cmd, **kw):
    return subprocess.run(cmd, text=True, **kw)


def source_files():
    out = run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
              capture_output=True, check=True).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def sync_tree():
    """Copies changed files of the working tree to TREE (mtimes kept, so an
    incremental build recompiles only what changed since the last sync)."""
    wanted = set(source_files())
    for rel in wanted:
        src, dst = REPO / rel, TREE / rel
        if dst.exists() and dst.stat().st_size == src.stat().st_size and \
                dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        shutil.copymode(src, dst)
    for path in list(TREE.rglob("*")):
        if BUILD in path.parents or "node_modules" in path.parts:
            continue
        if path.is_file() and str(path.relative_to(TREE)) not in wanted:
            path.unlink()
    js = REPO / "tests/api/js/node_modules"
    link = TREE / "tests/api/js/node_modules"
    if js.is_dir() and not link.exists():
        link.symlink_to(js)


def llama_dir():
    cache = REPO / "build" / "CMakeCache.txt"
    if cache.exists():
        m = re.search(r"^COLONY_LLAMA_DIR:PATH=(.*)$", cache.read_text(), re.M)
        if m and m.group(1):
            return m.group(1)
    return run(["bash", str(REPO / "scripts/fetch-llama.sh")], capture_output=True,
               check=True).stdout.strip().splitlines()[-1]


def build(jobs):
    env = dict(os.environ, CCACHE_BASEDIR=str(WORK),
               CCACHE_DIR=os.environ.get("CCACHE_DIR", str(Path.home() / ".cache/colony/ccache")))
    if not (BUILD / "CMakeCache.txt").exists():
        models = (REPO.parent / "shared" / "models").resolve()
        r = run(["cmake", "-S", str(TREE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCOLONY_LLAMA_DIR={llama_dir()}", f"-DCOLONY_MODELS_DIR={models}"],
                env=env, capture_output=True)
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
            return False
    r = run(["cmake", "--build", str(BUILD), "-j", str(jobs)], env=env, capture_output=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:])
    return r.returncode == 0


def test_numbers(regex):
    """CTest's numbers of the tests that regex selects; fails when none does
    (CTest's regex engine also refuses more than 9 groups: one regex each)."""
    r = run(["ctest", "-N", "-R", regex], cwd=BUILD, capture_output=True)
    numbers = [int(n) for n in re.findall(r"^\s*Test\s+#(\d+):", r.stdout, re.M)]
    if r.returncode != 0 or not numbers:
        raise SystemExit(f"mutate-check: no test matches {regex!r}: {r.stderr.strip()}")
    return numbers


def ctest(regexes, jobs):
    """Runs the tests that any of regexes selects (every test for None);
    returns (passed, failed test names, seconds)."""
    cmd = ["ctest", "-j", str(jobs), "--timeout", "600"]
    if regexes is not None:
        numbers = sorted({n for rx in regexes for n in test_numbers(rx)})
        cmd += ["-I", "0,0,0," + ",".join(map(str, numbers))]
    t0 = time.time()
    r = run(cmd, cwd=BUILD, capture_output=True)
    tail = r.stdout.split("The following tests FAILED:")
    failed = re.findall(r"^\s*\d+ - (\S+) \(", tail[-1], re.M) if len(tail) > 1 else []
    if not re.search(r"tests passed, \d+ tests? failed out of [1-9]", r.stdout):
        raise SystemExit("mutate-check: CTest ran no test:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    return r.returncode == 0, failed, time.time() - t0


def apply(m: Mutation):
    path = TREE / m.path
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutate-check: {m.name}: the code to mutate occurs {count} times in "
                         f"{m.path} (expected once); update the mutation")
    path.write_text(text.replace(m.old, m.new))
    return text


def restore(m: Mutation, original: str):
    path = TREE / m.path
    path.write_text(original)
    now = time.time()
    os.utime(path, (now, now))  # newer than the mutated objects: it is rebuilt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--only", help="comma-separated mutation names")
    ap.add_argument("--full", action="store_true", help="run every test for each mutation")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2, help="build and ctest jobs")
    a = ap.parse_args()
    chosen = MUTATIONS
    if a.only:
        names = a.only.split(",")
        unknown = [n for n in names if n not in {m.name for m in MUTATIONS}]
        if unknown:
            ap.error(f"unknown mutation(s): {', '.join(unknown)}")
        chosen = [m for m in MUTATIONS if m.name in names]
    if a.list:
        for m in MUTATIONS:
            print(f"{m.name:28} {m.path:32} {m.what}")
        return 0

    TREE.mkdir(parents=True, exist_ok=True)
    print(f"mutate-check: syncing the working tree to {TREE}", flush=True)
    sync_tree()
    for m in chosen:  # every mutation must still apply before anything is built
        text = (TREE / m.path).read_text()
        if text.count(m.old) != 1:
            raise SystemExit(f"mutate-check: {m.name}: the code to mutate occurs {text.count(m.old)} "
                             f"times in {m.path} (expected once); update the mutation")
    print("mutate-check: building the unmutated copy", flush=True)
    if not build(a.j):
        print("mutate-check: the unmutated copy does not build")
        return 2
    selected = None if a.full else [m.tests for m in chosen]
    ok, failed, secs = ctest(selected, a.j)
    print(f"mutate-check: baseline ({'all tests' if a.full else ' or '.join(selected)}): "
          f"{'pass' if ok else 'FAIL'} in {secs:.0f} s", flush=True)
    if not ok:
        print("mutate-check: the tests fail without a mutation: " + ", ".join(failed))
        return 1

    rows = []
    for m in chosen:
        original = apply(m)
        try:
            print(f"mutate-check: {m.name}: {m.what}", flush=True)
            if not build(a.j):
                rows.append((m, "BUILD FAILED", []))
                continue
            ok, failed, secs = ctest(None if a.full else [m.tests], a.j)
            rows.append((m, "missed" if ok else "caught", failed))
            print(f"  {'MISSED' if ok else 'caught'} in {secs:.0f} s by {len(failed)} test(s)", flush=True)
        finally:
            restore(m, original)
    build(a.j)  # leave the copy built unmutated

    print("\n| mutation | file | result | caught by |\n| --- | --- | --- | --- |")
    for m, result, failed in rows:
        shown = ", ".join(failed[:6]) + (f" and {len(failed) - 6} more" if len(failed) > 6 else "")
        print(f"| {m.name}: {m.what} | `{m.path}` | {result} | {shown or '-'} |")
    missed = [m.name for m, result, _ in rows if result != "caught"]
    if missed:
        print(f"\nmutate-check: not caught: {', '.join(missed)}")
        return 1
    print(f"\nmutate-check: all {len(rows)} mutations caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
