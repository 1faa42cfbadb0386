#!/usr/bin/env python3
"""Speculative decoding through colony's pipeline (issue 13; docs/benchmarks.md).

For each link profile and stage count, a cluster runs in the network lab
(`colony serve` on host 1, `colony join` on hosts 2..S) once per draft
source: none (plain pipeline), n-gram (--spec-type ngram) and a draft model
(-md). Two prompt sets are asked with greedy decoding: "repetitive" text
(repeated sentences, lists, quotes: what n-gram drafts can copy) and "new"
text. Beside them, one device alone: `colony generate` with each source and
llama.cpp's own speculative decoding (llama-speculative-simple).

Reported per row: decode tokens/s (server timings: (n - 1) / (total - TTFT)),
speed-up over the plain pipeline, acceptance (accepted / drafted), and tokens
per traversal of the pipeline (n / (n - accepted): each traversal gives its
accepted drafts and one more token).

  sudo python3 bench/spec/bench_spec.py run --model ../shared/models/stories260K-f32.gguf \\
      --draft ../shared/models/stories260K-q4_0.gguf --stages 3,4 --profiles wifi,wifi-poor,wan \\
      -n 64 --out results/spec
  python3 bench/spec/bench_spec.py report --results results/spec   # markdown table on stdout

Root is needed for the lab's network namespaces.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from benchlib import gguf  # noqa: E402
from benchlib import lab as labmod  # noqa: E402
from benchlib import proc  # noqa: E402

PROMPTS = {
    "repetitive": [
        "Lily went to the park. She saw a big dog. Lily went to the park. She saw a big dog. Lily went to the park.",
        "1. red ball 2. blue car 3. green hat 4. red ball 5. blue car 6. green hat 7. red ball 8.",
        'Tom said, "I want to play." Mom said, "Tom said, I want to play." Dad said, "Tom said,',
    ],
    "new": ["Once upon a time", "One day, a little bird", "The sun was hot and"],
}
SOURCES = ("plain", "ngram", "draft")
CONTROL_PORT, API_PORT = 7411, 8080


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spec_args(source, draft):
    return {"plain": [], "ngram": ["--spec-type", "ngram"], "draft": ["-md", draft]}[source]


def http_completion(host, prompt, n, timeout=600):
    """POST /v1/completions (greedy, ignore_eos) to host:API_PORT; the reply's JSON."""
    conn = http.client.HTTPConnection(host, API_PORT, timeout=timeout)
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True}
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read().decode()
    conn.close()
    if resp.status != 200:
        raise proc.ProcError(f"HTTP {resp.status}: {data[:400]}")
    return json.loads(data)


def post_completion(lab, prompt, n, timeout=600):
    """http_completion from inside host 1's namespace (the root namespace
    cannot reach the lab; the client sits next to the coordinator)."""
    argv = ["python3", os.path.abspath(__file__), "post", "--host", lab.addr(1), "--prompt", prompt, "-n", n,
            "--timeout", timeout]
    r = proc.run(lab.cmd(1, argv), timeout + 30)
    if r.rc != 0:
        raise proc.ProcError(f"client failed ({r.rc}): {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout)


def measure(generations):
    """Decode tokens/s over every generation, acceptance, tokens per traversal."""
    tokens = sum(g["n"] for g in generations)
    decode_ms = sum(g["total_ms"] - g["ttft_ms"] for g in generations)
    drafted = sum(g["drafted"] for g in generations)
    accepted = sum(g["accepted"] for g in generations)
    steps = sum(g["n"] - 1 for g in generations)
    return {
        "decode_tps": round(steps * 1000.0 / decode_ms, 2) if decode_ms > 0 else 0.0,
        "drafted": drafted,
        "accepted": accepted,
        "acceptance": round(accepted / drafted, 3) if drafted else None,
        "tokens_per_traversal": round(tokens / (tokens - accepted), 2) if tokens > accepted else None,
        "n_tokens": tokens,
    }


def run_cluster(args, lab, stages, source, scratch):
    """Starts serve + joins in the lab, asks every prompt, stops; returns {set: measure}."""
    state = tempfile.mkdtemp(prefix=f"spec-{source}-", dir=scratch)
    ready = os.path.join(state, "ready.json")
    layers = args.n_layer
    bounds = [round(i * layers / stages) for i in range(stages + 1)]
    split = ",".join(f"{bounds[i]}:{bounds[i + 1]}" for i in range(stages))
    serve = [args.colony, "serve", "-m", args.model, "--host", lab.addr(1), "--port", CONTROL_PORT,
             "--api-host", lab.addr(1), "--api-port", API_PORT, "--split", split, "--workers-expected", stages - 1,
             "-t", args.threads, "-c", 2048, "--parallel", 1, "--ready-file", ready,
             "--config-dir", os.path.join(state, "h1-config"), "--cache-dir", os.path.join(state, "h1-cache")]
    serve += spec_args(source, args.draft)
    procs = [proc.Process(lab.cmd(1, serve), log_prefix=os.path.join(state, "serve"))]
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(ready):
            if not procs[0].alive() or time.monotonic() > deadline:
                raise proc.ProcError(f"colony serve did not start: {procs[0].output_so_far()[-1][-600:]}")
            time.sleep(0.05)
        with open(ready) as f:
            token = json.load(f)["token"]
        for h in range(2, stages + 1):
            join = [args.colony, "join", "--coordinator", f"{lab.addr(1)}:{CONTROL_PORT}", "--token", token,
                    "-t", args.threads, "--data-host", lab.addr(h), "--cache-dir", os.path.join(state, f"h{h}-cache"),
                    "--config-dir", os.path.join(state, f"h{h}-config")]
            procs.append(proc.Process(lab.cmd(h, join), log_prefix=os.path.join(state, f"join{h}")))
        while True:  # every stage loaded: a completion is answered
            try:
                post_completion(lab, "hello", 1, timeout=30)
                break
            except (OSError, http.client.HTTPException, proc.ProcError):
                if time.monotonic() > deadline + 120 or not all(p.alive() for p in procs):
                    raise
                time.sleep(0.3)
        out = {}
        for name, prompts in PROMPTS.items():
            gens = []
            for _ in range(args.reps):
                for p in prompts:
                    j = post_completion(lab, p, args.n_gen)
                    t = j.get("timings", {})
                    gens.append({"n": j["usage"]["completion_tokens"], "ttft_ms": t["ttft_ms"],
                                 "total_ms": t["total_ms"], "drafted": t.get("draft_n", 0),
                                 "accepted": t.get("draft_n_accepted", 0), "text": j["choices"][0]["text"]})
            out[name] = dict(measure(gens), texts=[g["text"] for g in gens])
        return out, proc.cmdline(serve)
    except BaseException:
        for i, p in enumerate(procs):
            log(f"process {i + 1} ({'alive' if p.alive() else 'exited'}): {p.output_so_far()[1][-800:]}")
        raise
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGINT)


def run_alone(args, lab, source):
    """`colony generate` on host 1 (no link): {set: measure}."""
    out = {}
    for name, prompts in PROMPTS.items():
        tps, drafted, accepted = [], 0, 0
        for p in prompts:
            cmd = [args.colony, "generate", "-m", args.model, "-p", p, "-n", args.n_gen, "--temp", 0,
                   "--ignore-eos", "-t", args.threads] + spec_args(source, args.draft)
            r = proc.run(lab.cmd(1, cmd), timeout=600).check("colony generate")
            line = r.stderr.strip().splitlines()[-1]
            tps.append(float(re.search(r"decode ([0-9.]+) tok/s", line).group(1)))
            m = re.search(r"([0-9]+) drafted, ([0-9]+) accepted", line)
            if m:
                drafted += int(m.group(1))
                accepted += int(m.group(2))
        n = args.n_gen * len(prompts)
        out[name] = {"decode_tps": round(statistics.mean(tps), 2), "drafted": drafted, "accepted": accepted,
                     "acceptance": round(accepted / drafted, 3) if drafted else None,
                     "tokens_per_traversal": round(n / (n - accepted), 2) if n > accepted else None}
    return out


def grab(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        raise proc.ProcError(f"{what}: no match for {pattern!r} in:\n{text[-1500:]}")
    return m.group(1)


def run_llama(args, lab, source):
    """llama.cpp's speculative decoding on one node (llama-speculative-simple)."""
    out = {}
    spec = {"draft": ["-md", args.draft, "--spec-type", "draft-simple"],
            "ngram": ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3"]}[source]
    for name, prompts in PROMPTS.items():
        tps, drafted, accepted = [], 0, 0
        for p in prompts:
            cmd = [args.llama_spec, "-m", args.model, "-p", p, "-n", args.n_gen, "--temp", 0, "-t", args.threads,
                   "--spec-draft-n-max", 16] + spec
            r = proc.run(lab.cmd(1, cmd), timeout=600).check("llama-speculative-simple")
            text = r.stderr + r.stdout
            what = "llama-speculative-simple"
            tps.append(float(grab(r"decoded +[0-9]+ tokens in +[0-9.]+ seconds, speed: +([0-9.]+) t/s", text, what)))
            drafted += int(grab(r"n_drafted = ([0-9]+)", text, what))
            accepted += int(grab(r"n_accept += ([0-9]+)", text, what))
        out[name] = {"decode_tps": round(statistics.mean(tps), 2), "drafted": drafted, "accepted": accepted,
                     "acceptance": round(accepted / drafted, 3) if drafted else None}
    return out


def cmd_run(args):
    if os.geteuid() != 0:
        print("bench_spec: the network lab needs root", file=sys.stderr)
        return 77
    bins = os.path.abspath(args.bin_dir)
    args.colony = os.path.join(bins, "colony")
    args.llama_spec = os.path.join(bins, "llama-speculative-simple")
    netem = os.path.join(bins, "colony-netem")
    args.model, args.draft = os.path.abspath(args.model), os.path.abspath(args.draft)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(),
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    args.n_layer = gguf.model_info(args.model)["n_layer"]
    os.makedirs(args.out, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="bench-spec-")
    records = []
    stages = [int(s) for s in args.stages.split(",")]
    try:
        for pi, prof in enumerate(args.profiles.split(",")):
            with labmod.Lab(max(stages), prof, lab_id=args.lab_id, netem_bin=netem) as lab:
                if pi == 0:
                    for source in SOURCES:
                        log(f"one device: colony generate, {source}")
                        records.append({"system": "colony", "stages": 1, "profile": "local", "source": source,
                                        "sets": run_alone(args, lab, source)})
                    for source in ("ngram", "draft"):
                        log(f"one device: llama-speculative-simple, {source}")
                        records.append({"system": "llama.cpp", "stages": 1, "profile": "local", "source": source,
                                        "sets": run_llama(args, lab, source)})
                for s in stages:
                    for source in SOURCES:
                        log(f"{prof}: {s} stages, {source}")
                        sets, cmd = run_cluster(args, lab, s, source, scratch)
                        records.append({"system": "colony", "stages": s, "profile": prof, "source": source,
                                        "sets": sets, "serve": cmd})
                        with open(os.path.join(args.out, "results.json"), "w") as f:
                            json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items() if k != "fn"}, "records": records}, f, indent=1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items() if k != "fn"}, "records": records}, f, indent=1)
    check_same_text(records)
    print(report(records))
    return 0


def check_same_text(records):
    """Speculation must not change greedy text: every source's texts equal the plain pipeline's."""
    plain = {(r["profile"], r["stages"]): r for r in records if r["source"] == "plain" and r["stages"] > 1}
    for r in records:
        base = plain.get((r["profile"], r["stages"]))
        if not base or r is base:
            continue
        for name in PROMPTS:
            if r["sets"][name]["texts"] != base["sets"][name]["texts"]:
                log(f"WARNING: {r['profile']} {r['stages']} stages {r['source']}: {name} text differs from plain")


def report(records):
    plain = {(r["profile"], r["stages"]): r for r in records if r["source"] == "plain" and r["system"] == "colony"}
    best_alone = {name: max((r["sets"][name]["decode_tps"] for r in records
                             if r["stages"] == 1 and r["system"] == "colony"), default=0)
                  for name in PROMPTS}
    lines = ["| system | profile | stages | drafts | prompts | decode tok/s | vs plain | vs best single "
             "device | acceptance | tokens per traversal |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        for name in PROMPTS:
            m = r["sets"][name]
            base = plain.get((r["profile"], r["stages"]))
            ratio = (f"{m['decode_tps'] / base['sets'][name]['decode_tps']:.2f}x"
                     if base and base["sets"][name]["decode_tps"] else "")
            alone = f"{m['decode_tps'] / best_alone[name]:.2f}x" if best_alone[name] else ""
            acc = f"{100 * m['acceptance']:.0f} %" if m.get("acceptance") is not None else ""
            tpt = m.get("tokens_per_traversal") or ""
            lines.append(f"| {r['system']} | {r['profile']} | {r['stages']} | {r['source']} | {name} | "
                         f"{m['decode_tps']:.1f} | {ratio} | {alone} | {acc} | {tpt} |")
    return "\n".join(lines)


def cmd_report(args):
    with open(os.path.join(args.results, "results.json")) as f:
        print(report(json.load(f)["records"]))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure in the network lab (root)")
    r.add_argument("--model", required=True, help="target GGUF")
    r.add_argument("--draft", required=True, help="draft GGUF with the target's vocabulary")
    r.add_argument("--stages", default="3,4")
    r.add_argument("--profiles", default="wifi,wifi-poor,wan")
    r.add_argument("-n", "--n-gen", type=int, default=64)
    r.add_argument("-r", "--reps", type=int, default=1)
    r.add_argument("-t", "--threads", type=int, default=1)
    r.add_argument("--bin-dir", default="build/bin")
    r.add_argument("--lab-id", default="spec")
    r.add_argument("--out", required=True)
    r.set_defaults(fn=cmd_run)
    c = sub.add_parser("post", help="(internal) one completion, JSON on stdout")
    c.add_argument("--host", required=True)
    c.add_argument("--prompt", required=True)
    c.add_argument("-n", type=int, required=True)
    c.add_argument("--timeout", type=float, default=600)
    c.set_defaults(fn=lambda a: print(json.dumps(http_completion(a.host, a.prompt, a.n, a.timeout))) or 0)
    p = sub.add_parser("report", help="the markdown table of a run")
    p.add_argument("--results", required=True)
    p.set_defaults(fn=cmd_report)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
