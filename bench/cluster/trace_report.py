#!/usr/bin/env python3
"""Where the time of one decode token goes, from colony's --trace files.

    python3 bench/cluster/trace_report.py TRACE.json [TRACE.json ...] [--skip N]

Reads the traces of one cluster run (each process's file, or the one file that
`colony run --trace` merged; format: src/util/trace.h). For every "wait" event
of the coordinator (a row sent into the pipeline until its token came back)
of a decode step (a ubatch of one token), it adds up what every process did
inside that window: forward passes, pack/unpack of hidden states, sampling,
send and receive. What is left of the window is the links: the network, and
ZeroMQ's I/O threads with CURVE, which the trace does not see. It prints the
median of each part over the decode steps (the first N skipped, default 2)
and that remainder per hop (S stages make S hops: S - 1 hidden states and the
token id back). Only meaningful for one request at a time.
"""
import argparse
import json
import statistics
import sys


def load(paths):
    events, names = [], {}
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip().rstrip(",")
                if not line.startswith("{") or not line.endswith("}"):
                    continue
                e = json.loads(line)
                if e.get("name") == "process_name":
                    names[e["pid"]] = e["args"]["name"]
                elif e.get("ph") == "X":
                    events.append(e)
    return events, names


def report(events, names, skip):
    waits = sorted((e for e in events if e["name"] == "wait"), key=lambda e: e["ts"])
    coordinator = next((pid for pid, n in names.items() if n == "coordinator"), None)
    parts = {}
    rows = 0
    alone = [w for i, w in enumerate(waits)
             if (i == 0 or waits[i - 1]["ts"] + waits[i - 1]["dur"] <= w["ts"])
             and (i + 1 == len(waits) or w["ts"] + w["dur"] <= waits[i + 1]["ts"])]
    for w in alone[skip:]:  # one row in flight: one request decoding alone
        t0, t1 = w["ts"], w["ts"] + w["dur"]
        inside = [e for e in events if e["ts"] >= t0 and e["ts"] + e["dur"] <= t1 and e["name"] != "wait"]
        fwd = [e for e in inside if e["name"] == "forward"]
        if not fwd or any(e.get("args", {}).get("n_tokens", 1) != 1 for e in fwd):
            continue  # not a decode step of one token
        rows += 1
        sums = {"total (wait)": w["dur"]}
        seen = 0
        for e in inside:
            if e["name"] not in ("forward", "pack", "unpack", "sample", "send", "receive"):
                continue
            key = f'{names.get(e["pid"], "?")} (pid {e["pid"]}): {e["name"]}'
            sums[key] = sums.get(key, 0) + e["dur"]
            seen += e["dur"]
        sums["links (network + ZeroMQ I/O, not traced)"] = w["dur"] - seen
        for k, v in sums.items():
            parts.setdefault(k, []).append(v / 1000.0)
    if not rows:
        print("no single-token decode steps found", file=sys.stderr)
        return 1
    n_stages = len({e["pid"] for e in events if e["name"] == "forward"})
    print(f"{rows} decode steps of one request alone, {n_stages} stages; median ms per token:")
    print("| part | ms |")
    print("| --- | ---: |")
    for k in sorted(parts, key=lambda k: (k != "total (wait)", k.startswith("links"), k)):
        print(f"| {k} | {statistics.median(parts[k]):.3f} |")
    links = statistics.median(parts["links (network + ZeroMQ I/O, not traced)"])
    print(f"\nlinks per hop ({n_stages} hops): {links / max(1, n_stages):.3f} ms")
    if coordinator is None:
        print("(no process named coordinator)", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--skip", type=int, default=2, help="decode steps to skip at the start")
    args = ap.parse_args()
    events, names = load(args.traces)
    return report(events, names, args.skip)


if __name__ == "__main__":
    sys.exit(main())
