#!/usr/bin/env python3
"""The pause a client sees when a stage is lost, against what it costs to
recompute that stage (issue 10's goal; docs/reliability.md).

    python3 bench/recovery/recovery_bench.py [--model GGUF] [--split 0:6,6:11,11:16]
        [--prompt-chars 2300] [--tokens 64] [--kill-at 16] [--runs 2]

Starts `colony serve` with two `colony join` workers and a third as a spare
on 127.0.0.1, waits until the spare holds the middle range (a hot spare),
streams a greedy completion of a long prompt cut from wiki.test.raw once
without a fault and then, per run, with `kill -9` of the worker that holds
the middle range after --kill-at tokens. Prints, per run: the longest gap
between two streamed tokens (the stall), whether the text equals the
fault-free text, and the recovery record of /v1/cluster; and the fault-free
TTFT with the lost stage's share of it (its layers / all layers: what only
that stage would recompute with a per-hop log of hidden states). Not a
test: a program that prints numbers (docs/benchmarks.md).
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def get_json(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        return json.loads(r.read() or b"null")
    except (OSError, ValueError):
        return None


def stream(port, prompt, n, on_token=None):
    """Streams a greedy completion; returns (text, token times, usage, error)."""
    body = json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    text, times, usage, error = "", [], None, None
    t0 = time.monotonic()
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if "error" in ev:
            error = ev["error"]
            continue
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev.get("choices") or []:
            if ch.get("text"):
                text += ch["text"]
                times.append(time.monotonic() - t0)
                if on_token:
                    on_token(len(times))
    return text, times, usage, error


class Cluster:
    def __init__(self, args, tmp):
        self.args, self.tmp, self.procs = args, tmp, {}
        ready = os.path.join(tmp, "ready.json")
        self.start("coordinator", [args.bin, "serve", "-m", args.model, "--split", args.split,
                                   "--host", "127.0.0.1", "--port", "0", "--api-port", "0",
                                   "--config-dir", os.path.join(tmp, "c/config"),
                                   "--cache-dir", os.path.join(tmp, "c/cache"),
                                   "--ready-file", ready, "-t", str(args.threads),
                                   "-c", "4096", "--parallel", "1", "--planner", "static"])
        info = wait(lambda: os.path.exists(ready) and json.load(open(ready)), 120, "serve")
        self.api, self.control, self.token = info["api_port"], info["control_port"], info["token"]
        for name in ("w1", "w2"):
            self.join(name)
        wait(lambda: (get_json(self.api, "/health") or {}).get("status") == "ok", 600,
             "the cluster to serve")
        self.join("w3")

    def start(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log)

    def join(self, name):
        self.start(name, [self.args.bin, "join", "--coordinator", f"127.0.0.1:{self.control}",
                          "--token", self.token, "--name", name, "--data-host", "127.0.0.1",
                          "--config-dir", os.path.join(self.tmp, name, "config"),
                          "--cache-dir", os.path.join(self.tmp, name, "cache"),
                          "-t", str(self.args.threads)])

    def nodes(self):
        return (get_json(self.api, "/v1/cluster") or {}).get("nodes", [])

    def holder(self, first):
        for n in self.nodes():
            if n.get("role") == "worker" and n.get("stage", -1) >= 0 and \
                    (n.get("layers") or {}).get("first") == first:
                return n["name"]
        return None

    def hot_spare(self):
        for n in self.nodes():
            if n.get("state") == "spare" and "hot spare: holds" in n.get("detail", ""):
                return n["name"], n["detail"]
        return None

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "colony"))
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/colony/models/llama-3.2-1b-synth-q4_k_m.gguf"))
    ap.add_argument("--split", default="0:6,6:11,11:16")
    ap.add_argument("--prompt-chars", type=int, default=2300)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--kill-at", type=int, default=16)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    wiki = open(os.path.join(REPO, "..", "shared", "models", "wiki.test.raw")).read()
    prompt = " ".join(wiki[5000:5000 + args.prompt_chars].split())
    ranges = [tuple(map(int, r.split(":"))) for r in args.split.split(",")]
    middle, n_layer = ranges[1], ranges[-1][1]
    with tempfile.TemporaryDirectory(prefix="colony-recovery-bench-") as tmp:
        c = Cluster(args, tmp)
        try:
            print(f"cluster up: split {args.split}; waiting for the spare to hold a range",
                  flush=True)
            spare = wait(c.hot_spare, 600, "a hot spare")
            print(f"spare {spare[0]}: {spare[1]}", flush=True)
            ref, ref_times, usage, err = stream(c.api, prompt, args.tokens)
            assert err is None, err
            ttft = ref_times[0]
            share = (middle[1] - middle[0]) / n_layer
            print(f"fault-free: {usage['prompt_tokens']} prompt tokens, TTFT {ttft * 1000:.0f} ms "
                  f"(the middle stage's share, {middle[1] - middle[0]}/{n_layer} of the layers: "
                  f"{ttft * share * 1000:.0f} ms), longest gap "
                  f"{max(b - a for a, b in zip(ref_times, ref_times[1:])) * 1000:.0f} ms",
                  flush=True)
            rows = []
            for run in range(args.runs):
                wait(c.hot_spare, 600, "a hot spare")
                victim = c.holder(middle[0])
                killed = {}

                def fault(n, victim=victim):
                    if n == args.kill_at and not killed:
                        killed["t"] = time.time()
                        c.procs[victim].send_signal(signal.SIGKILL)

                text, times, usage, err = stream(c.api, prompt, args.tokens, fault)
                gaps = [b - a for a, b in zip(times, times[1:])]
                rec = ((get_json(c.api, "/v1/cluster") or {}).get("recoveries") or [{}])[-1]
                rows.append((run + 1, victim, max(gaps) * 1000, text == ref, err,
                             usage and usage.get("completion_tokens"), rec))
                print(f"run {run + 1}: killed {victim}; stall {max(gaps) * 1000:.0f} ms; "
                      f"same text {text == ref}; error {err}; recovery {json.dumps(rec)}",
                      flush=True)
                c.procs[victim].wait()
                c.join(victim)  # back, as a spare
            print()
            print("| run | killed | stall ms | budget ms (stage share + 1000) | same text | "
                  "completion_tokens | detect ms | replacement | tokens recomputed |")
            print("| ---: | --- | ---: | ---: | --- | ---: | ---: | --- | ---: |")
            for run, victim, stall, same, err, n, rec in rows:
                print(f"| {run} | {victim} | {stall:.0f} | {ttft * share * 1000 + 1000:.0f} | "
                      f"{same} | {n} | {rec.get('detect_ms')} | {rec.get('replacement')} | "
                      f"{rec.get('tokens_recomputed')} |")
        finally:
            c.stop()


if __name__ == "__main__":
    sys.exit(main())
