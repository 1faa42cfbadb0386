#!/usr/bin/env python3
"""colony's cluster benchmark: colony, llama.cpp and llama.cpp RPC on the same
model, threads, layer split and emulated links, in one run (issue 6;
docs/benchmarks.md, "How to run").

  bench_cluster.py run    --model SPEC... --stages 1,2,3 --profiles loopback,wifi --out DIR
  bench_cluster.py report --results DIR... [--doc docs/benchmarks.md] [--plots DIR]
  bench_cluster.py limit  --model SPEC --stages 3 --profile wifi --compute-ms 25
  bench_cluster.py smoke  --bin-dir build/bin --model stories260K-q8_0.gguf --out DIR
  bench_cluster.py model  SPEC          # print the path (writes a synthetic model once)

SPEC: a GGUF path or synth:PRESET:TYPE[:SEED] (cached, see benchlib/models.py).
Needs root (network namespaces); python3 standard library only; gnuplot for plots.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import gguf, lab as labmod, limit, models, proc, report, split, systems  # noqa: E402

REPO = labmod.REPO
SYSTEMS = ("llama", "colony", "rpc", "colony-cluster")
DEFAULT_SYSTEMS = "llama,colony,rpc,colony-cluster"
BINARIES = ("colony", "llama-bench", "ggml-rpc-server", "colony-bench-probe", "colony-netem")
SKIP = 77


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def missing_prerequisite(netem_bin):
    """None when this process can build a network lab; else (name, why), name
    being "root" or "network namespaces": the only reasons a test may skip."""
    if os.geteuid() != 0:
        return "root", "not running as root"
    ok, why = labmod.available(netem_bin)
    return None if ok else ("network namespaces", why or "the network lab cannot be built")


def skip_missing(missing):
    """Prints "SKIP: prerequisite missing: NAME (WHY)" and returns SKIP, or 1
    when COLONY_TEST_STRICT=1 (CI, which has both prerequisites)."""
    name, why = missing
    print(f"SKIP: prerequisite missing: {name} ({why})", flush=True)
    if os.environ.get("COLONY_TEST_STRICT") == "1":
        print("bench_cluster: FAILED: COLONY_TEST_STRICT=1 forbids skipping", file=sys.stderr, flush=True)
        return 1
    return SKIP


def find_bins(bin_dir):
    """{name: path} of the binaries the harness runs; raises SystemExit naming
    the missing ones and how to build them."""
    bins, missing = {}, []
    for name in BINARIES:
        p = os.path.join(bin_dir, name)
        if os.access(p, os.X_OK):
            bins[name] = os.path.abspath(p)
        else:
            missing.append(name)
    if missing:
        raise SystemExit(f"bench_cluster: missing in {bin_dir}: {', '.join(missing)} "
                         f"(cmake --build build --target colony_bench_cluster_tools)")
    return bins


def machine_info():
    """CPU model, cores, memory, kernel, date, git revision: the report's "machine"."""
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": platform.processor() or "?", "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["cpu"] = v.strip()
            if k.strip() == "Flags":
                flags = v.split()
                info["simd"] = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "neon")
                                        if f in flags)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                                     text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info["loadavg_start"] = read_loadavg()
    return info


def parse_list(text, conv=str):
    return [conv(x.strip()) for x in text.split(",") if x.strip()]


def load_model(spec, bins):
    path = models.resolve(spec, bins["colony"], log=log)
    info = gguf.model_info(path)
    return {**info, "spec": spec, "name": models.short_name(spec), "path": path}


def profile_record(name, known):
    if name not in known:
        raise SystemExit(f"bench_cluster: unknown profile '{name}' (known: {', '.join(known)})")
    p = known[name]
    return {"name": name, "delay_ms": p.get("delay_ms", 0.0), "jitter_ms": p.get("jitter_ms", 0.0),
            "rate_mbit": p.get("rate_mbit", 0.0), "loss_pct": p.get("loss_pct", 0.0)}


class Results:
    """results.jsonl (one record per line, appended as soon as measured) and run.json."""

    def __init__(self, out_dir, meta):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "results.jsonl")
        self.records = []
        open(self.path, "w").close()  # a run starts a fresh file
        with open(os.path.join(out_dir, "run.json"), "w") as f:
            json.dump(meta, f, indent=1)

    def add(self, rec, lab_cmd=None):
        if lab_cmd:
            rec["commands"].insert(0, lab_cmd)
        self.records.append(rec)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        m = rec["metrics"]
        brief = ", ".join(f"{k}={m[k]:.4g}" for k in ("decode_tps", "tg_tps", "ttft_ms", "load_s") if k in m)
        log(f"  {rec['system']:15s} {rec['model']['name']} S={rec['stages']} {rec['profile']['name']}: "
            f"{'ERROR ' + rec['error'] if rec['error'] else brief}")


def run_matrix(args, bins, ctx, results):
    """Every (model, profile, stage count, system) of the run, in that order;
    single-node systems once per model (in the first profile's lab: no link
    is used). Records are written as they come."""
    known = labmod.profiles(bins["colony-netem"])
    stage_list = sorted(set(args.stages))
    wanted = set(args.systems)
    for spec in args.model:
        model = load_model(spec, bins)
        log(f"model {model['name']}: {model['arch']}, {model['n_layer']} layers, n_embd {model['n_embd']}, "
            f"{model['file_bytes'] / 1e6:.1f} MB")
        for pi, pname in enumerate(args.profiles):
            prof = profile_record(pname, known)
            n_hosts = max(2, max(stage_list))
            log(f"lab: {n_hosts} hosts, profile {pname}")
            lab_cmd = (f"lab: COLONY_NETLAB_ID={args.lab_id} scripts/netlab/netlab.sh up {n_hosts} --profile {pname}; "
                       f"'host I: CMD' = scripts/netlab/netlab.sh exec I CMD")
            with labmod.Lab(n_hosts, pname, lab_id=args.lab_id, netem_bin=bins["colony-netem"]) as lab:
                if pi == 0 and 1 in stage_list:
                    local = dict(prof, name="local")
                    for key, fn in (("llama", systems.llama_alone), ("colony", systems.colony_alone)):
                        if key in wanted:
                            results.add(_guard(fn, ctx, lab, model, local, key), lab_cmd)
                    if "colony-cluster" in wanted:
                        results.add(systems.colony_cluster(ctx, lab, model, [model["n_layer"]], local), lab_cmd)
                for s in stage_list:
                    if s < 2:
                        continue
                    counts = split.parse_split(args.split, model["n_layer"], s)
                    if "rpc" in wanted:
                        results.add(systems.llama_rpc(ctx, lab, model, counts, prof), lab_cmd)
                    if "colony-cluster" in wanted:
                        results.add(systems.colony_cluster(ctx, lab, model, counts, prof), lab_cmd)


def _guard(fn, ctx, lab, model, prof, key):
    try:
        return fn(ctx, lab, model, prof)
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        name = {"llama": "llama.cpp", "colony": "colony"}[key]
        return systems.make_record(name, model, 1, [model["n_layer"]], prof, {}, [], error=f"{type(e).__name__}: {e}")


def cmd_run(args):
    if os.geteuid() != 0:
        return skip_missing(("root", "not running as root"))
    bins = find_bins(args.bin_dir)
    missing = missing_prerequisite(bins["colony-netem"])
    if missing:
        return skip_missing(missing)
    if args.split != "even" and len({s for s in args.stages if s >= 2}) > 1:
        raise SystemExit("bench_cluster: --split needs exactly one stage count of 2 or more in --stages")
    for s in args.systems:
        if s not in SYSTEMS:
            raise SystemExit(f"bench_cluster: unknown system '{s}' (known: {', '.join(SYSTEMS)})")
    meta = {"machine": machine_info(), "argv": sys.argv, "threads": args.threads, "reps": args.reps,
            "n_prompt": args.n_prompt, "n_gen": args.n_gen, "mem_limit_gib": args.mem_limit_gib,
            "systems": args.systems, "lab_id": args.lab_id}
    results = Results(args.out, meta)
    ctx = systems.Ctx(bins, os.path.abspath(args.out), threads=args.threads, reps=args.reps, n_prompt=args.n_prompt,
                      n_gen=args.n_gen, timeout=args.timeout, mem_limit_gib=args.mem_limit_gib,
                      streams=parse_list(args.streams, int), log=log)
    t0 = time.monotonic()
    try:
        run_matrix(args, bins, ctx, results)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    meta["wall_s"] = round(time.monotonic() - t0, 1)
    meta["machine"]["loadavg_end"] = read_loadavg()
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print_limits(results.records, args.n_prompt)
    log(f"done in {meta['wall_s']} s: {results.path}")
    errors = [r for r in results.records if r["error"]]
    return 1 if errors and args.strict else 0


def print_limits(records, n_prompt):
    """Prints, per pipeline record, the physical limit next to the measurement."""
    for r in records:
        if r["system"] not in report.PIPELINE or r["error"] or r["stages"] < 2:
            continue
        ref = report.single_node(records, r["model"]["name"])
        lim = report.limit_for(ref, r["model"], r["stages"], r["profile"], n_prompt)
        if not lim:
            continue
        got = r["metrics"].get("decode_tps")
        log(f"  limit: {r['model']['name']} S={r['stages']} {r['profile']['name']}: "
            f"{lim['total_ms']:.2f} ms/token = compute {lim['compute_ms']:.2f} + delays {lim['delay_ms']:.2f} + "
            f"transfers {lim['transfer_ms']:.3f} ({1e3 / lim['total_ms']:.1f} tok/s); "
            f"{r['system']}: {got:.1f} tok/s" if got else "")


def read_loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def cmd_report(args):
    runs = [report.load_results(d) for d in args.results]
    doc = report.write_report(runs, args.doc, args.plots, title=args.title, section=args.section)
    log(f"wrote {doc}")
    return 0


def cmd_limit(args):
    path = models.resolve(args.model, os.path.join(args.bin_dir, "colony"), log=log)
    info = gguf.model_info(path)
    bins_netem = os.path.join(args.bin_dir, "colony-netem")
    prof = profile_record(args.profile, labmod.profiles(bins_netem))
    d = limit.decode_limit_ms(args.compute_ms, args.stages, info["n_embd"], prof["delay_ms"], prof["rate_mbit"])
    print(json.dumps({"model": info["name"], "n_embd": info["n_embd"], "stages": args.stages, "profile": prof,
                      "decode_limit": d, "tokens_per_s": 1e3 / d["total_ms"]}, indent=1))
    return 0


def cmd_model(args):
    print(models.resolve(args.spec, os.path.join(args.bin_dir, "colony"), log=log))
    return 0


def cmd_smoke(args):
    """CI smoke run: stories260K, stages 1 and 2, loopback, quick settings;
    then the report; then every figure must be present and positive."""
    missing = missing_prerequisite(os.path.join(args.bin_dir, "colony-netem"))
    if missing:
        return skip_missing(missing)
    out = os.path.abspath(args.out)
    proc.run(["rm", "-rf", out], 60)
    run_args = argparse.Namespace(
        model=[args.model], stages=[1, 2], profiles=["loopback"], systems=args.systems, split="even", threads=1,
        reps=1, n_prompt=64, n_gen=16, timeout=60, mem_limit_gib=0.0, streams="1,4,8", lab_id=args.lab_id,
        bin_dir=args.bin_dir, out=os.path.join(out, "results"), strict=False)
    t0 = time.monotonic()
    rc = cmd_run(run_args)
    if rc != 0:
        return rc
    runs = [report.load_results(run_args.out)]
    doc = report.write_report(runs, os.path.join(out, "benchmarks.md"), os.path.join(out, "plots"),
                              title="smoke run")
    problems = report.check_complete(runs, doc, os.path.join(out, "plots"), args.systems)
    took = time.monotonic() - t0
    if problems:
        print("bench_cluster smoke: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"bench_cluster smoke: ok in {took:.1f} s ({doc})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"),
                        help="where colony, llama-bench, ggml-rpc-server, colony-bench-probe, colony-netem are "
                             "(default build/bin)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", parents=[common], help="measure")
    r.add_argument("--model", action="append", required=True, help="GGUF path or synth:PRESET:TYPE[:SEED]; repeatable")
    r.add_argument("--stages", type=lambda s: parse_list(s, int), default=[1, 2, 3], help="stage counts, e.g. 1,2,3")
    r.add_argument("--profiles", type=parse_list, default=["loopback"], help="link profiles, e.g. loopback,wifi")
    r.add_argument("--systems", type=parse_list, default=parse_list(DEFAULT_SYSTEMS),
                   help=f"of {','.join(SYSTEMS)} (default {DEFAULT_SYSTEMS})")
    r.add_argument("--split", default="even", help="layer split for a single stage count: even, 3,2 or 0:3,3:5")
    r.add_argument("-t", "--threads", type=int, default=1, help="threads of every process (default 1)")
    r.add_argument("-r", "--reps", type=int, default=3, help="repetitions (default 3)")
    r.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (default 512)")
    r.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (default 128)")
    r.add_argument("--streams", default="1,4,8", help="concurrent streams for colony's cluster (HTTP)")
    r.add_argument("--mem-limit-gib", type=float, default=0.0, help="memory limit of each worker host (cgroup)")
    r.add_argument("--timeout", type=float, default=900, help="seconds per command (default 900)")
    r.add_argument("--lab-id", default="bench", help="COLONY_NETLAB_ID of the lab (default bench)")
    r.add_argument("--out", required=True, help="results folder (results.jsonl, run.json, logs/)")
    r.add_argument("--strict", action="store_true", help="exit 1 when a measurement failed")
    r.set_defaults(fn=cmd_run)

    p = sub.add_parser("report", parents=[common], help="write docs/benchmarks.md sections and plots")
    p.add_argument("--results", action="append", required=True, help="results folder; repeatable")
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "benchmarks.md"))
    p.add_argument("--plots", default=os.path.join(REPO, "docs", "benchmarks"))
    p.add_argument("--title", default="Results")
    p.add_argument("--section", default="results",
                   help="marker name: the report replaces <!-- bench:NAME:begin/end --> in --doc")
    p.set_defaults(fn=cmd_report)

    lm = sub.add_parser("limit", parents=[common], help="print the physical limit of a pipeline")
    lm.add_argument("--model", required=True)
    lm.add_argument("--stages", type=int, required=True)
    lm.add_argument("--profile", required=True)
    lm.add_argument("--compute-ms", type=float, required=True, help="single-node time per decode token")
    lm.set_defaults(fn=cmd_limit)

    s = sub.add_parser("smoke", parents=[common], help="CI smoke run (77: skipped, root or namespaces missing)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--systems", type=parse_list, default=parse_list(DEFAULT_SYSTEMS))
    s.add_argument("--lab-id", default="bsmoke")
    s.set_defaults(fn=cmd_smoke)

    mo = sub.add_parser("model", parents=[common], help="resolve a model spec (writes a synthetic model once)")
    mo.add_argument("spec")
    mo.set_defaults(fn=cmd_model)

    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
