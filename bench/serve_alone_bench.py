#!/usr/bin/env python3
"""Decode tokens/s of a running `colony serve` through the HTTP API.

    python3 bench/serve_alone_bench.py PORT [LABEL] [--runs N]

Each run times a greedy 1-token and a 65-token completion (ignore_eos) and
reports 64 / (t65 - t1): the decode rate with HTTP and the scheduler in the
loop. Not a test: a program that prints numbers (docs/benchmarks.md).
"""
import argparse
import json
import statistics
import time
import urllib.request


def completion_seconds(port, n):
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": n, "temperature": 0,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    t = time.monotonic()
    urllib.request.urlopen(req, timeout=600).read()
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("label", nargs="?", default="colony serve")
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    completion_seconds(args.port, 4)  # warm-up
    rates = []
    for _ in range(args.runs):
        t1 = completion_seconds(args.port, 1)
        t65 = completion_seconds(args.port, 65)
        rates.append(64 / (t65 - t1))
    print(f"{args.label}: decode tok/s per run: {' '.join(f'{r:.2f}' for r in rates)}; "
          f"median {statistics.median(rates):.2f}")


if __name__ == "__main__":
    main()
