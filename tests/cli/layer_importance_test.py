#!/usr/bin/env python3
"""colony perplexity --layer-importance on stories260K (real weights).

  layer_importance_test.py COLONY LLAMA_PERPLEXITY MODELS_DIR WORK_DIR

Checks:
  1. one row per block (0-4 of stories260K), ranked by ascending KLD, every
     KLD above zero, and the "least important first" line in that order;
  2. the base file it keeps (--kl-divergence-base) is the whole model's:
     llama-perplexity reads it and finds its own f32 model at KLD ~ 0, with
     the base perplexity colony printed;
  3. the row of the least important block is what a plain KL-divergence run
     with that block skipped (--skip-layers) gives;
  4. the block influence order names every block once, with a rank
     correlation in [-1, 1].
Exit 0 when all hold; otherwise prints what differed and exits 1.
"""
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from perplexity_parity import kld_summary, run  # noqa: E402

ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+([0-9.]+) ± +([0-9.]+)\s+(-?[0-9.]+)\s+([0-9.]+) ± +([0-9.]+)\s+([0-9.]+) %",
                 re.M)


def main():
    colony, llama, models, work = sys.argv[1:5]
    models, work = Path(models), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    model = str(models / "stories260K-f32.gguf")
    base = work / "base.kld"
    common = ["-f", str(models / "wiki.test.raw"), "-c", "128", "--chunks", "8", "-t", "2"]
    out = run([colony, "perplexity", "-m", model, "--layer-importance", "--kl-divergence-base", str(base)] + common)
    print(out)
    failures = []
    rows = [(int(m[0]), int(m[1]), float(m[5])) for m in ROW.findall(out)]
    if sorted(r[1] for r in rows) != [0, 1, 2, 3, 4]:
        failures.append(f"rows for blocks {[r[1] for r in rows]}, expected 0-4 once each")
    klds = [r[2] for r in rows]
    if klds != sorted(klds) or not all(k > 0 for k in klds):
        failures.append(f"KLDs {klds}: not ascending or not all above zero")
    if [r[0] for r in rows] != list(range(1, len(rows) + 1)):
        failures.append("ranks are not 1..n")
    order = re.search(r"Least important first: ([0-9,]+)", out)
    if not order or order.group(1) != ",".join(str(r[1]) for r in rows):
        failures.append(f"the order line {order and order.group(1)} is not the table's")
    base_ppl = re.search(r"Base \(every block\): PPL = ([0-9.]+)", out)
    corr = re.search(r"Least block influence first \(ShortGPT.*\): ([0-9,]+); rank correlation with the KLD order: (-?[0-9.]+)", out)
    if not corr or sorted(int(b) for b in corr.group(1).split(",")) != [0, 1, 2, 3, 4] or not -1 <= float(corr.group(2)) <= 1:
        failures.append(f"no block influence order of blocks 0-4 with a correlation in [-1, 1]: {corr and corr.group(0)}")

    llama_out = run([llama, "-m", model, "-t", "2", "--kl-divergence-base", str(base), "--kl-divergence"],
                    work / "llama.log", "Same top p:")
    whole = kld_summary(llama_out)
    print(f"llama-perplexity on the kept base file: {whole}")
    if whole["Mean    KLD"] > 1e-4 or whole["Same top p"] < 99.9:
        failures.append(f"the kept base file is not the whole model's: {whole}")
    # llama-perplexity's PPL(Q) of the f32 model over the base file's chunks
    # is the whole model's perplexity that colony printed as the base
    ppl_q = re.search(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", llama_out)
    if not base_ppl or not ppl_q or abs(float(base_ppl.group(1)) - float(ppl_q.group(1))) > 1e-3 * float(ppl_q.group(1)):
        failures.append(f"base PPL {base_ppl and base_ppl.group(1)} against PPL(Q) {ppl_q and ppl_q.group(1)}")

    if rows:
        least = rows[0][1]
        skipped = kld_summary(run([colony, "perplexity", "-m", model, "-t", "2", "--skip-layers", str(least),
                                   "--kl-divergence-base", str(base), "--kl-divergence"]))
        print(f"--skip-layers {least} against the base: {skipped}")
        if abs(skipped["Mean    KLD"] - rows[0][2]) > 1e-5:
            failures.append(f"block {least}: KLD {skipped['Mean    KLD']} by --skip-layers, {rows[0][2]} in the table")

    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
