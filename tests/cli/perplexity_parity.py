#!/usr/bin/env python3
"""colony perplexity against llama-perplexity, run side by side on the same
model, text and chunks (the pinned tree's tools/perplexity).

  perplexity_parity.py COLONY LLAMA_PERPLEXITY MODELS_DIR WORK_DIR

Checks, on stories260K (real weights) and ../shared/models/wiki.test.raw:
  1. the perplexity of every chunk and the final estimate with its error agree
     within 0.1 % for f32 and q8_0;
  2. each tool reads the other's --kl-divergence-base file: q4_0 against the
     f32 base gives the same mean KLD, same-top rate and PPL ratio (within
     1 %) whichever tool wrote the base and whichever reads it;
  3. a base file cut short is refused by colony with one clear line, exit 1.
Exit 0 when all hold; otherwise prints what differed and exits 1.
"""
import re
import subprocess
import sys
from pathlib import Path

CTX, CHUNKS, THREADS = "128", "12", "2"
TOL_PPL, TOL_KLD = 0.001, 0.01


def run(cmd, log=None, until=None):
    """stdout of cmd. With `log`, cmd is llama-perplexity: the text of its
    --log-file is returned, and the run is repeated (at most 5 times) until
    the text holds `until`. Its logger writes from a thread that is not
    joined at exit, so the last lines are sometimes lost on a loaded machine
    (common/log.cpp, llama.cpp issue 22142)."""
    for _ in range(5):
        full = cmd + ["--log-file", str(log)] if log else cmd
        p = subprocess.run(full, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"FAILED (exit {p.returncode}): {' '.join(full)}\n{p.stderr[-2000:]}")
        if not log:
            return p.stdout
        text = Path(log).read_text()
        if until is None or until in text:
            return text
    return text


def chunks_and_final(out):
    chunks = [float(v) for v in re.findall(r"\[\d+\]([0-9.]+),", out)]
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
    if not m or not chunks:
        sys.exit(f"FAILED: no perplexity in output:\n{out[-2000:]}")
    return chunks, float(m.group(1)), float(m.group(2))


def kld_summary(out):
    def num(label):
        m = re.search(re.escape(label) + r"\s*:\s*(-?[0-9.]+)", out)
        if not m:
            sys.exit(f"FAILED: no '{label}' in output:\n{out[-2000:]}")
        return float(m.group(1))

    return {k: num(k) for k in ("Mean    KLD", "Same top p", "Mean PPL(Q)/PPL(base)", "Mean PPL(base)")}


def close(a, b, tol):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-12)


def main():
    colony, llama, models, work = sys.argv[1:5]
    models, work = Path(models), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    text = str(models / "wiki.test.raw")
    common = ["-f", text, "-c", CTX, "--chunks", CHUNKS, "-t", THREADS]
    failures = []

    for t in ("f32", "q8_0"):
        model = str(models / f"stories260K-{t}.gguf")
        c_chunks, c_ppl, c_err = chunks_and_final(run([colony, "perplexity", "-m", model] + common))
        l_chunks, l_ppl, l_err = chunks_and_final(run([llama, "-m", model] + common, work / "llama.log", "Final estimate"))
        print(f"{t}: colony PPL = {c_ppl:.4f} +/- {c_err:.5f}, llama-perplexity PPL = {l_ppl:.4f} +/- {l_err:.5f}")
        if len(c_chunks) != len(l_chunks):
            failures.append(f"{t}: {len(c_chunks)} chunks against {len(l_chunks)}")
        for i, (a, b) in enumerate(zip(c_chunks, l_chunks)):
            if not close(a, b, TOL_PPL):
                failures.append(f"{t}: chunk {i + 1}: {a} against {b}")
        if not close(c_ppl, l_ppl, TOL_PPL) or not close(c_err, l_err, 0.01):
            failures.append(f"{t}: final {c_ppl} +/- {c_err} against {l_ppl} +/- {l_err}")

    f32, q4 = str(models / "stories260K-f32.gguf"), str(models / "stories260K-q4_0.gguf")
    bases = {"colony": work / "base-colony.kld", "llama": work / "base-llama.kld"}
    run([colony, "perplexity", "-m", f32, "--kl-divergence-base", str(bases["colony"])] + common)
    run([llama, "-m", f32, "--kl-divergence-base", str(bases["llama"])] + common, work / "llama.log",
        "Final estimate")
    results = {}
    for writer, base in bases.items():
        results[("colony", writer)] = kld_summary(
            run([colony, "perplexity", "-m", q4, "-t", THREADS, "--kl-divergence-base", str(base), "--kl-divergence"]))
        results[("llama", writer)] = kld_summary(
            run([llama, "-m", q4, "-t", THREADS, "--kl-divergence-base", str(base), "--kl-divergence"],
                work / "llama.log", "Same top p:"))
    ref = results[("llama", "llama")]
    for (reader, writer), r in results.items():
        print(f"q4_0 against f32, base by {writer}, read by {reader}: " +
              ", ".join(f"{k.split()[-1] if k != 'Same top p' else 'same top'} {v}" for k, v in r.items()))
        for k, v in r.items():
            if not close(v, ref[k], TOL_KLD):
                failures.append(f"KLD: base by {writer}, read by {reader}: {k} {v} against {ref[k]}")

    cut = work / "base-cut.kld"
    cut.write_bytes(bases["colony"].read_bytes()[:-7])
    p = subprocess.run([colony, "perplexity", "-m", q4, "--kl-divergence-base", str(cut), "--kl-divergence"],
                       capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or len(lines) != 1 or "the header says" not in lines[0]:
        failures.append(f"a cut base file: exit {p.returncode}, stderr {p.stderr!r}")

    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
