#!/usr/bin/env python3
"""colony's chaos harness (docs/reliability.md): a 3-stage cluster with a
spare, a fault-free reference pass, then the same requests again while a
seeded schedule of faults hits the workers (SIGKILL, SIGSTOP, kill and
restart, a second kill during a recovery; with --netlab link cuts, a flap and
loss). Every request's text is compared with the reference.

  chaos.py [--seed S] [--requests N] [--concurrency K] [--netlab] [--doc docs/reliability.md]
  chaos.py --short [--no-recovery]           # CI: 12 requests, 3 faults, loopback

Exit code: 0 when every request of the faulted pass was answered with the
reference text (with --no-recovery: when at least one was lost or wrong, the
harness having seen the failure); 1 otherwise; 2 when the cluster or the
reference pass failed; 77 when a prerequisite is missing (--netlab without
root or namespaces; no colony binary).
"""

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))

from benchlib import lab as labmod  # noqa: E402
from chaoslib import client, report, rounds, schedule  # noqa: E402
from chaoslib.cluster import Cluster, ClusterError  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared", "models"))
SKIP, FAIL, BROKEN = 77, 1, 2


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(SHARED, "stories260K-f32.gguf"))
    ap.add_argument("--prompts", default=os.path.join(SHARED, "wiki.test.raw"), help="text the prompts are cut from")
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"), help="where colony (and colony-netem) are")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--requests", type=int, help="requests per pass (default 100; --short 12)")
    ap.add_argument("--concurrency", "-k", type=int, help="requests at a time (default 8; --short 4)")
    ap.add_argument("--split", default="0:2,2:4,4:5", help="layer ranges, coordinator first")
    ap.add_argument("--short", action="store_true", help="CI form: 3 faults, loopback, no document")
    ap.add_argument("--netlab", action="store_true", help="hosts in the network lab (root): also the link faults")
    ap.add_argument("--no-recovery", action="store_true",
                    help="negative control: colony serve --no-recovery; passes when failures are seen")
    ap.add_argument("--only", help="comma-separated fault kinds to run (" + ",".join(schedule.KINDS) + ")")
    ap.add_argument("--no-faults", action="store_true",
                    help="control: the second pass without faults (must reproduce the reference)")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument("--ready-timeout", type=float, default=60.0, help="seconds for the cluster to be whole again")
    ap.add_argument("--kv-type", default="",
                    help="KV cache type of every stage (f32: batch-independent answers; '' for colony's default)")
    ap.add_argument("--no-batch-invariant", action="store_true",
                    help="stages run colony's default kernels instead of --batch-invariant: a replay "
                         "may then differ in a matmul's last bits, so a mismatch that a fault-free "
                         "rerun reproduces is counted 'unstable', not wrong")
    ap.add_argument("--heartbeat-timeout-ms", type=int, help="passed to colony serve (its default: 3000)")
    ap.add_argument("--out", help="results and logs (default /tmp/colony-chaos-SEED-MODE)")
    ap.add_argument("--doc", help="document to write the report into (default docs/reliability.md; "
                                  "none with --short); '' for none")
    ap.add_argument("--lab-id", default="chaos", help="COLONY_NETLAB_ID of the lab")
    a = ap.parse_args(argv)
    if a.short and a.netlab:
        ap.error("--short runs on loopback only")
    a.requests = a.requests or (12 if a.short else 100)
    a.concurrency = a.concurrency or (4 if a.short else 8)
    if a.doc is None:
        a.doc = "" if a.short else os.path.join(REPO, "docs", "reliability.md")
    a.section = (("netlab" if a.netlab else "loopback") + ("-short" if a.short else "")
                 + ("-no-recovery" if a.no_recovery else "") + ("-no-faults" if a.no_faults else ""))
    a.out = a.out or f"/tmp/colony-chaos-{a.seed}-{a.section}"
    a.only = None if a.only is None else {k.strip() for k in a.only.split(",") if k.strip()}
    if a.only and a.only - set(schedule.KINDS):
        ap.error(f"unknown fault kinds: {', '.join(sorted(a.only - set(schedule.KINDS)))}")
    return a


def machine_info():
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": platform.processor() or "?", "cores": os.cpu_count(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["cpu"] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def snapshot_binary(colony, out_dir, tries=10):
    """Copies colony into OUT/bin and returns the copy's path, so that every
    start and restart of the run uses one binary even while a build replaces
    the original; retries while the original is being written (it must
    answer --version)."""
    dst_dir = os.path.join(out_dir, "bin")
    os.makedirs(dst_dir, exist_ok=True)
    dst = os.path.join(dst_dir, "colony")
    for _ in range(tries):
        try:
            shutil.copy2(colony, dst + ".tmp")
            os.replace(dst + ".tmp", dst)
            if subprocess.run([dst, "--version"], capture_output=True, timeout=20).returncode == 0:
                return dst
        except (OSError, subprocess.SubprocessError):
            pass
        time.sleep(2)
    raise ClusterError(f"cannot take a working copy of {colony}")


def binary_info(colony):
    try:
        version = subprocess.run([colony, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = "?"
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(colony)).isoformat(timespec="seconds")
    return version or "?", mtime


class Terminated(Exception):
    """SIGTERM: unwinds like Ctrl-C so that every process is stopped."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_reference(cl, a, requests):
    """Two fault-free passes, the second in reverse order (other batch mixes).
    Returns ({id: [accepted texts]}, answered by both, differing, seconds).
    Two texts are accepted when the passes differ: matrix products give other
    last bits for other batch shapes, and a near tie can turn on them."""
    refs, t0 = {r["id"]: [] for r in requests}, time.monotonic()
    failed = set()
    for name, order in (("reference A", requests), ("reference B", requests[::-1])):
        log(f"{name}: {len(order)} requests, {a.concurrency} at a time, no faults")
        rnd = rounds.Round(cl.ep, order, a.concurrency, a.request_timeout).start()
        recs = rnd.wait_done(on_batch=lambda d, name=name: log(f"  {name}: {d}/{len(order)} done"))
        for req, rec in zip(order, recs):
            v, why = client.verdict(req, rec, [rec["text"]] if rec else None)
            if v != "ok":
                failed.add(req["id"])
                log(f"  {name}: request {req['id']} failed: {why}")
            elif rec["text"] not in refs[req["id"]]:
                refs[req["id"]].append(rec["text"])
    for i in failed:
        refs[i] = []
    unstable = sum(1 for v in refs.values() if len(v) > 1)
    secs = time.monotonic() - t0
    log(f"reference: {len(requests) - len(failed)}/{len(requests)} answered by both passes in {secs:.1f} s; "
        f"{unstable} with two different texts")
    return refs, len(requests) - len(failed), unstable, secs


def run_fault(cl, a, f, by_id, ref, hb_ms, recoveries):
    """One round: wait for a whole cluster, resolve the targets, send the
    round's requests, inject at the phase, wait. Fills f in place and returns
    the round's request results."""
    f["notes"] = list(cl.check_processes())
    ok, why = cl.wait_ready(a.ready_timeout, want_spare=True)
    if not ok:
        f["notes"].append(f"cluster not whole after {a.ready_timeout:.0f} s ({why})")
    st = cl.state() or {"stages": {}, "spares": [], "recoveries": None}
    names = {}
    if f["kind"] in ("loss", "none"):
        f["target_desc"] = {"loss": "every link", "none": "-"}[f["kind"]]
    else:
        t2 = "last" if f["kind"] == "cut-workers" else f.get("target2")
        for key, pos in (("target", f["target"]), ("target2", t2)):
            if pos:
                names[key], what = cl.resolve(pos, st)
                if names[key] is None:
                    f["not_run"] = f"{pos}: {what} at the round's start"
                    log(f"fault {f['index']} {f['kind']}: not run ({f['not_run']})")
                    return []
        f["target_desc"] = " then ".join(f"{pos}={names[k]}" for k, pos in (("target", f["target"]), ("target2", t2))
                                         if pos)
    reqs = [by_id[i] for i in f["requests"]]
    # requests last a fraction of a second here: all start at once, so that the
    # fault finds them running; only the 60 s of loss spreads them over its first half
    spread = f["duration_s"] * 0.5 if f["kind"] == "loss" else 0.0
    log(f"fault {f['index']} {f['kind']} {f['target_desc']} in {f['phase']}: {len(reqs)} requests, "
        f"{a.concurrency} at a time")
    rnd = rounds.Round(cl.ep, reqs, a.concurrency, a.request_timeout, spread_s=spread).start()
    late = rnd.wait_phase(f["phase"], f["delay_ms"])
    if late:
        f["notes"].append(late)
    f["at_injection"] = rnd.snapshot()
    out = rounds.inject(cl, f, names, hb_ms, log)
    f.update(t_inject_ms=out["t_inject_ms"], t_end_ms=out["t_end_ms"], actions=out["actions"])
    f["notes"] += out["notes"]
    recs = rnd.wait_done()
    f["stall_ms"] = client.stall_at(recs, f["t_inject_ms"], f["t_end_ms"])
    st = cl.state()
    if st is not None and st["recoveries"] is not None:
        for e in st["recoveries"]:
            recoveries[(e.get("epoch"), e.get("lost"), e.get("detected_unix_ms"))] = e
    results, counts = [], {"requests": len(reqs), "ok": 0, "lost": 0, "wrong": 0}
    for req, rec in zip(reqs, recs):
        v, why = client.verdict(req, rec, ref.get(req["id"]))
        counts[v] += 1
        results.append({"id": req["id"], "fault": f["index"], "stream": req["stream"], "verdict": v, "why": why,
                        "record": rec})
    f["counts"] = counts
    log(f"fault {f['index']} {f['kind']}: {counts['ok']} ok, {counts['lost']} lost, {counts['wrong']} wrong; "
        f"stall {report.fmt_ms(f['stall_ms'])} ms" + (f"; {'; '.join(f['notes'])}" if f["notes"] else ""))
    return results


def recheck_wrong(cl, a, results, requests, limit=10, tries=12):
    """Re-runs each wrong answer's request without faults, alone or among
    K-1 other requests (other batch shapes), up to `tries` times. When one of
    those fault-free answers equals the faulted text, the difference is the
    batch's numerics (a near tie that flips with the matrix shapes), not the
    recovery: the verdict becomes "unstable". At most `limit` requests."""
    wrong = [r for r in results if r["verdict"] == "wrong" and r["record"] and not r["record"]["error"]]
    rng = random.Random(f"recheck:{a.seed}")
    for r in wrong[:limit]:
        req = next(q for q in requests if q["id"] == r["id"])
        others = [q for q in requests if q["id"] != r["id"]]
        seen = 0
        for t in range(tries):
            mix = [req] + (rng.sample(others, min(len(others), a.concurrency - 1)) if t % 3 else [])
            rec = rounds.Round(cl.ep, mix, a.concurrency, a.request_timeout).start().wait_done()[0]
            if rec and not rec["error"] and rec["text"] == r["record"]["text"]:
                seen += 1
        if seen:
            r["verdict"] = "unstable"
            r["why"] += f"; {seen} of {tries} fault-free reruns gave the same text"
        else:
            r["why"] += f"; none of {tries} fault-free reruns gave this text"
        log(f"recheck of request {r['id']}: {r['verdict']} ({r['why']})")
    for r in wrong[limit:]:
        r["why"] += "; not rechecked"


def main(argv=None):
    a = parse_args(argv)
    colony, netem = os.path.join(a.bin_dir, "colony"), os.path.join(a.bin_dir, "colony-netem")
    if not os.access(colony, os.X_OK):
        print(f"SKIP: prerequisite missing: colony ({colony} not found; cmake --build build --target colony)")
        return SKIP
    if a.netlab:
        if os.geteuid() != 0:
            print("SKIP: prerequisite missing: root (--netlab needs network namespaces)")
            return SKIP
        ok, why = labmod.available(netem)
        if not ok:
            print(f"SKIP: prerequisite missing: network namespaces ({why})")
            return SKIP
    with open(a.prompts, errors="replace") as fh:
        text = fh.read(400_000)
    requests, faults = schedule.build(a.seed, a.requests, text, short=a.short, netlab=a.netlab, only=a.only,
                                        no_faults=a.no_faults)
    by_id = {r["id"]: r for r in requests}
    for sub in ("nodes", "logs"):  # a fresh cluster: no keys, shards or logs of an earlier run
        shutil.rmtree(os.path.join(a.out, sub), ignore_errors=True)
    os.makedirs(a.out, exist_ok=True)
    hb_ms = a.heartbeat_timeout_ms or 3000
    serve_extra = ["--heartbeat-timeout-ms", a.heartbeat_timeout_ms] if a.heartbeat_timeout_ms else []
    # bit-exact stages (runtime/stage.h, Invariance::kFull): every text must
    # equal the reference, with no leniency
    exact = not a.no_batch_invariant
    join_extra = ["--batch-invariant"] if exact else []
    serve_extra += join_extra
    cmdline = "python3 bench/chaos/chaos.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    log(f"chaos: seed {a.seed}, {len(requests)} requests, {sum(1 for f in faults if not f.get('not_run'))} faults"
        f" ({'network lab' if a.netlab else 'loopback'}{', no recovery' if a.no_recovery else ''}); out {a.out}")
    for f in faults:
        log(f"  {f['index']:2d}. {f['kind']:<12} {f['target']:<7} {f['phase']:<8}"
            + (f" not run: {f['not_run']}" if f.get("not_run") else f" {len(f['requests'])} requests"))
    signal.signal(signal.SIGTERM, _on_sigterm)
    # the streams' threads hold the GIL while tokens pour in; a short switch
    # interval lets the driver inject within a millisecond of the phase it waits for
    sys.setswitchinterval(0.0005)
    version, mtime = binary_info(colony)
    try:
        run_bin = snapshot_binary(colony, a.out)
    except ClusterError as e:
        log(f"chaos: {e}")
        return BROKEN
    cl = Cluster(run_bin, a.model, a.out, a.split, parallel=max(a.concurrency, 4), ctx=max(4096, 512 * a.concurrency),
                 netlab=a.netlab, lab_id=a.lab_id, netem=netem, no_recovery=a.no_recovery, kv_type=a.kv_type,
                 serve_extra=serve_extra, join_extra=join_extra)
    results = {"requests": [], "faults": faults}
    recoveries = {}
    rc = BROKEN
    try:
        log("starting the cluster: coordinator, w1, w2, then the spare w3")
        cl.start(a.ready_timeout)
        log("cluster ready: " + cl.describe())
        ref, ref_ok, unstable, ref_s = run_reference(cl, a, requests)
        if ref_ok < len(requests):
            log("the fault-free pass failed some requests: the faulted pass cannot be judged; see " + a.out)
        has_recoveries = (cl.state() or {}).get("recoveries") is not None
        for f in faults:
            if f.get("not_run"):
                log(f"fault {f['index']} {f['kind']}: not run ({f['not_run']})")
                continue
            results["requests"] += run_fault(cl, a, f, by_id, ref, hb_ms, recoveries)
        ok, why = cl.wait_ready(a.ready_timeout, want_spare=False)
        log(("cluster whole again: " if ok else "cluster NOT whole at the end: ") + why)
        if not exact:
            recheck_wrong(cl, a, results["requests"], requests)
        for f in faults:
            if f.get("counts"):
                mine = [r for r in results["requests"] if r["fault"] == f["index"]]
                f["counts"]["unstable"] = sum(1 for r in mine if r["verdict"] == "unstable")
                f["counts"]["wrong"] = sum(1 for r in mine if r["verdict"] == "wrong")
        st = cl.state()
        if st is not None and st["recoveries"] is not None:
            has_recoveries = True
            for e in st["recoveries"]:
                recoveries[(e.get("epoch"), e.get("lost"), e.get("detected_unix_ms"))] = e
        matched = report.match_recoveries(faults, list(recoveries.values()) if has_recoveries else None)
        for f in faults:
            if not f.get("not_run"):
                f["recovery"] = report.recovery_figures(f, None if matched is None else matched[f["index"]])
        results["meta"] = {
            "title": (f"{'Network lab' if a.netlab else 'Loopback'}{', short' if a.short else ''}"
                      f"{', without recovery (negative control)' if a.no_recovery else ''}"
                      f"{', no faults (control)' if a.no_faults else ''}, seed {a.seed}"),
            "machine": machine_info(), "netlab": a.netlab, "seed": a.seed, "binary": colony,
            "binary_version": version, "binary_mtime": mtime, "has_recoveries": has_recoveries,
            "command": cmdline, "notes": cl.notes, "requests": len(requests), "reference_ok": ref_ok,
            "reference_s": ref_s, "unstable": unstable, "kv_type": a.kv_type, "batch_invariant": exact,
            "recoveries": list(recoveries.values())}
        tot = report.totals(results)
        if exact and unstable:
            log(f"chaos: {unstable} requests got two texts in two fault-free passes of bit-exact stages: a bug")
            rc = FAIL
        elif ref_ok < len(requests):
            rc = BROKEN
        elif a.no_recovery:
            rc = 0 if tot["lost"] + tot["wrong"] > 0 else FAIL
        else:
            rc = 0 if tot["lost"] + tot["wrong"] == 0 and tot["requests"] > 0 else FAIL
    except ClusterError as e:
        log(f"chaos: the cluster failed: {e}")
        return BROKEN
    except (KeyboardInterrupt, Terminated):
        log("chaos: interrupted; stopping every process")
        return 130
    except Exception:  # noqa: BLE001 (a harness bug or an unexpected failure: still stop everything)
        log("chaos: unexpected error; stopping every process\n" + traceback.format_exc())
        return BROKEN
    finally:
        cl.stop_all()
        with open(os.path.join(a.out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    print()
    report.print_table(results, sys.stdout)
    if a.doc:
        report.write_doc(a.doc, report.render(results), a.section)
        log(f"wrote {a.doc}")
    for note in results.get("meta", {}).get("notes") or []:
        log(f"note: {note}")
    verdict = {0: "PASSED", FAIL: "FAILED", BROKEN: "BROKEN"}[rc]
    if a.no_recovery:
        log(f"chaos (negative control): {verdict}: the harness "
            + ("saw the failures" if rc == 0 else "saw no failure without recovery"))
    else:
        log(f"chaos: {verdict}; results in {a.out}/results.json")
    return rc


if __name__ == "__main__":
    sys.exit(main())
