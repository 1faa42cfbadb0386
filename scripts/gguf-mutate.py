#!/usr/bin/env python3
"""GGUF mutation campaign: feeds deliberately damaged copies of a model file to
`colony generate` and classifies how each run ends.

    scripts/gguf-mutate.py [--colony build/bin/colony] [--model FILE]
                           [--count N] [--seed S] [--keep DIR] [--jobs J]

Each copy gets one to four mutations drawn (deterministically from --seed) from
the classes that GGUF CVEs come from: bit flips in the header and metadata,
integers set to boundary values (0, 1, -1, 2^31-1, 2^32-1, 2^63-1, 2^64-1,
small and large), truncation inside the header, metadata or tensor data, and
swapped bytes. Mutations fall in the header and metadata region (before the
tensor data) nine times out of ten, since that is what parsers read.

Every run ends in one of:
  clean-error  exit 1 with an "error:" message on stderr
  accepted     exit 0 (the damage was in a place nothing reads, or harmless)
  crash        killed by a signal (SIGABRT from an assert, SIGSEGV, ...) or any
               other exit status: a defect
  timeout      still running after 20 s: a defect (an unbounded loop or count)

Exit status 0 when there was no crash and no timeout, 1 otherwise. With --keep
DIR the inputs that crashed are written there (as full files) so they can be
replayed; the mutation recipe of each is printed, so a regression input can be
rebuilt from the base model and the recipe (tests/fuzz/gguf-regressions.json).
"""
import argparse
import concurrent.futures
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile

BOUNDARY_U32 = [0, 1, 2, 3, 4, 7, 8, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 0xFFFFFFFE]
BOUNDARY_U64 = BOUNDARY_U32 + [0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF,
                               0x100000000, 0x0000000100000001]


def data_start(blob: bytes) -> int:
    """Best effort: where the tensor data starts (alignment-rounded end of the
    tensor table). Falls back to a quarter of the file when the walk fails."""
    try:
        off = 4 + 4
        n_tensors, n_kv = struct.unpack_from("<QQ", blob, off)
        off += 16

        def read_str(o):
            (n,) = struct.unpack_from("<Q", blob, o)
            return o + 8 + n

        sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

        def skip_val(t, o):
            if t in sizes:
                return o + sizes[t]
            if t == 8:
                return read_str(o)
            if t == 9:
                (et, n) = struct.unpack_from("<IQ", blob, o)
                o += 12
                for _ in range(n):
                    o = skip_val(et, o)
                return o
            raise ValueError("type")

        for _ in range(n_kv):
            off = read_str(off)
            (t,) = struct.unpack_from("<I", blob, off)
            off = skip_val(t, off + 4)
        for _ in range(n_tensors):
            off = read_str(off)
            (nd,) = struct.unpack_from("<I", blob, off)
            off += 4 + 8 * nd + 4 + 8
        return (off + 31) // 32 * 32
    except Exception:
        return len(blob) // 4


def mutate(base: bytes, rng: random.Random, meta_end: int):
    """Returns (mutated bytes, recipe). A recipe is a list of [kind, offset, arg]."""
    blob = bytearray(base)
    recipe = []
    for _ in range(rng.randint(1, 4)):
        region = meta_end if rng.random() < 0.9 else len(blob)
        if region <= 8:
            region = len(blob)
        kind = rng.choice(["flip", "flip", "u32", "u64", "byte", "truncate", "swap"])
        off = rng.randrange(0, max(1, min(region, len(blob))))
        if kind == "flip":
            bit = rng.randrange(8)
            blob[off] ^= 1 << bit
            recipe.append(["flip", off, bit])
        elif kind == "byte":
            v = rng.randrange(256)
            blob[off] = v
            recipe.append(["byte", off, v])
        elif kind == "u32" and off + 4 <= len(blob):
            v = rng.choice(BOUNDARY_U32)
            struct.pack_into("<I", blob, off, v)
            recipe.append(["u32", off, v])
        elif kind == "u64" and off + 8 <= len(blob):
            v = rng.choice(BOUNDARY_U64)
            struct.pack_into("<Q", blob, off, v)
            recipe.append(["u64", off, v])
        elif kind == "swap" and off + 2 <= len(blob):
            blob[off], blob[off + 1] = blob[off + 1], blob[off]
            recipe.append(["swap", off, 0])
        elif kind == "truncate" and off > 0:
            del blob[off:]
            recipe.append(["truncate", off, 0])
            break
    return bytes(blob), recipe


def apply_recipe(base: bytes, recipe) -> bytes:
    """Rebuilds a mutated file from its recipe (what mutate() recorded)."""
    blob = bytearray(base)
    for kind, off, arg in recipe:
        if kind == "flip":
            blob[off] ^= 1 << arg
        elif kind == "byte":
            blob[off] = arg
        elif kind == "u32":
            struct.pack_into("<I", blob, off, arg)
        elif kind == "u64":
            struct.pack_into("<Q", blob, off, arg)
        elif kind == "swap":
            blob[off], blob[off + 1] = blob[off + 1], blob[off]
        elif kind == "truncate":
            del blob[off:]
    return bytes(blob)


def classify(colony: str, path: str):
    try:
        p = subprocess.run([colony, "generate", "-m", path, "-p", "Once", "-n", "2", "-c", "64",
                            "-t", "1", "--temp", "0"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    err = p.stderr.decode(errors="replace").strip().splitlines()
    last = err[-1] if err else ""
    if p.returncode == 0:
        return "accepted", last
    if p.returncode == 1 and any("error: " in line for line in err):
        return "clean-error", last
    if p.returncode < 0:
        return "crash", f"signal {signal.Signals(-p.returncode).name}: {last}"
    return "crash", f"exit {p.returncode}: {last}"


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--colony", default=os.path.join(root, "build/bin/colony"))
    ap.add_argument("--model", default=os.path.join(root, "../shared/models/stories260K-q8_0.gguf"))
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--keep", help="write the crashing inputs into this folder")
    ap.add_argument("--replay", help="a JSON file of recipes (tests/fuzz/gguf-regressions.json)")
    args = ap.parse_args()

    with open(args.model, "rb") as f:
        base = f.read()
    meta_end = data_start(base)
    rng = random.Random(args.seed)
    if args.replay:
        with open(args.replay) as f:
            cases = [(i, apply_recipe(base, r), r) for i, r in enumerate(json.load(f)["recipes"])]
    else:
        cases = []
        for i in range(args.count):
            blob, recipe = mutate(base, rng, meta_end)
            cases.append((i, blob, recipe))

    counts = {"clean-error": 0, "accepted": 0, "crash": 0, "timeout": 0}
    bad = []
    with tempfile.TemporaryDirectory(prefix="gguf-mutate-") as tmp:

        def run_one(case):
            i, blob, recipe = case
            path = os.path.join(tmp, f"m{i}.gguf")
            with open(path, "wb") as f:
                f.write(blob)
            verdict, line = classify(args.colony, path)
            os.unlink(path)
            return i, blob, recipe, verdict, line

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for i, blob, recipe, verdict, line in pool.map(run_one, cases):
                counts[verdict] += 1
                if verdict in ("crash", "timeout"):
                    bad.append((i, recipe, verdict, line))
                    if args.keep:
                        os.makedirs(args.keep, exist_ok=True)
                        with open(os.path.join(args.keep, f"crash-{i}.gguf"), "wb") as f:
                            f.write(blob)
    total = len(cases)
    origin = f"replayed from {os.path.basename(args.replay)}" if args.replay else f"seed {args.seed}"
    print(f"{total} mutated copies of {os.path.basename(args.model)} ({origin}): "
          + ", ".join(f"{counts[k]} {k}" for k in counts))
    for i, recipe, verdict, line in bad[:50]:
        print(f"  #{i} {verdict}: {line}\n     recipe {json.dumps(recipe)}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
