#!/usr/bin/env python3
"""colony perplexity --split: a chain of stages in one process with a
cluster's numerics (pipeline/chain_evaluator.h), on stories260K.

  perplexity_split_test.py COLONY MODELS_DIR WORK_DIR

Checks:
  1. with f32 hidden states between two stages, the perplexity equals one
     node's to the printed digits (a split composes exactly) on x86-64; for
     another architecture's build (aarch64 under qemu) within 1e-4 of it:
     there a 2-stage split of stories260K-f32 gave 80.1781 against one
     node's 80.1737 (6e-5), as ARM kernels already round a split prefill
     differently (docs/testing.md); which kernel was not pinned down;
  2. against the one-node base file, q8_0 hidden states cost a KL-divergence
     above f16's and above zero, and more hops cost more (2 against 4 stages);
  3. a bad wire type is one clear line, exit 1.
Exit 0 when all hold; otherwise prints what differed and exits 1.
"""
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from perplexity_parity import chunks_and_final, kld_summary, run  # noqa: E402


def elf_machine(path):
    """e_machine of an ELF file: 0x3e x86-64, 0xb7 aarch64."""
    with open(path, "rb") as f:
        head = f.read(20)
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def main():
    colony, models, work = sys.argv[1:4]
    models, work = Path(models), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    model = str(models / "stories260K-f32.gguf")
    base = work / "base.kld"
    common = ["-f", str(models / "wiki.test.raw"), "-c", "128", "--chunks", "8", "-t", "2"]
    failures = []
    _, one, _ = chunks_and_final(run([colony, "perplexity", "-m", model, "--kl-divergence-base", str(base)] + common))
    _, two, _ = chunks_and_final(run([colony, "perplexity", "-m", model, "--split", "0:2,2:5", "--wire-type", "f32"] + common))
    print(f"one node PPL {one}, 2 stages with f32 hidden states {two}")
    exact = elf_machine(colony) == 0x3E
    if (one != two) if exact else abs(two - one) > 1e-4 * one:
        failures.append(f"f32 between stages: PPL {two}, one node {one}")

    def kld(split, wire):
        r = kld_summary(run([colony, "perplexity", "-m", model, "-t", "2", "--kl-divergence-base", str(base),
                             "--kl-divergence", "--split", split, "--wire-type", wire]))
        print(f"--split {split} --wire-type {wire}: KLD {r['Mean    KLD']}, same top {r['Same top p']} %")
        return r["Mean    KLD"]

    f16, q8, q8_four = kld("0:2,2:5", "f16"), kld("0:2,2:5", "q8_0"), kld("0:1,1:2,2:4,4:5", "q8_0")
    if not (0 < q8 < 0.01 and f16 < q8 < q8_four):
        failures.append(f"KLD f16 {f16}, q8_0 {q8}, q8_0 over 3 hops {q8_four}: expected 0 < f16-or-less < q8_0 < 3 hops")

    p = subprocess.run([colony, "perplexity", "-m", model, "--split", "0:2,2:5", "--wire-type", "q4"] + common,
                       capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or len(lines) != 1 or "q4" not in lines[0]:
        failures.append(f"--wire-type q4: exit {p.returncode}, stderr {p.stderr!r}")

    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
