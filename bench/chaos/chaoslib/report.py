"""Results of a chaos run -> the per-fault table, the totals and a section
of docs/reliability.md between <!-- chaos:NAME:begin --> and
<!-- chaos:NAME:end --> (NAME: loopback, netlab, loopback-no-recovery, ...;
a new report replaces its section and keeps the text around it).

Recovery figures come from the coordinator's GET /v1/cluster "recoveries"
(one entry per recovery: epoch, lost, reason, detected_unix_ms,
resumed_unix_ms, replacement, requests_replayed, tokens_recomputed). A binary
without that array gets "n/a" in those columns.
"""

import os



def markers(name):
    return f"<!-- chaos:{name}:begin -->", f"<!-- chaos:{name}:end -->"

HEADER = ["#", "fault", "target", "phase", "injected (unix ms)", "at injection", "requests", "ok", "lost",
          "wrong", "stall ms", "detect ms", "resume ms", "recomputed tokens", "served by"]


def match_recoveries(faults, recoveries, slack_ms=500):
    """{fault index: [recovery entries]}: an entry belongs to the last fault
    injected at most slack_ms before it was detected. recoveries None (the
    binary reports none) -> None."""
    if recoveries is None:
        return None
    injected = sorted((f["t_inject_ms"], f["index"]) for f in faults if f.get("t_inject_ms"))
    out = {f["index"]: [] for f in faults}
    for e in recoveries:
        t = e.get("detected_unix_ms") or 0
        owner = None
        for t_inj, idx in injected:
            if t_inj - slack_ms <= t:
                owner = idx
        if owner is not None:
            out[owner].append(e)
    return out


def recovery_figures(fault, entries):
    """detect_ms, resume_ms, recomputed, replayed, served_by of one fault from
    its recovery entries; every figure None when entries is None."""
    none = {"detect_ms": None, "resume_ms": None, "recomputed": None, "replayed": None, "served_by": None}
    if entries is None or not fault.get("t_inject_ms"):
        return none
    if not entries:
        return dict(none, served_by="no recovery")
    t = fault["t_inject_ms"]
    detected = min(e.get("detected_unix_ms") or 0 for e in entries)
    resumed = [e.get("resumed_unix_ms") or 0 for e in entries]
    return {
        "detect_ms": detected - t if detected else None,
        "resume_ms": max(resumed) - t if all(resumed) else None,
        "recomputed": sum(int(e.get("tokens_recomputed") or 0) for e in entries),
        "replayed": sum(int(e.get("requests_replayed") or 0) for e in entries),
        "served_by": ", ".join(str(e.get("replacement") or "?") + (" (failed)" if e.get("failed") else "")
                               for e in entries),
    }


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.0f}"


def fault_row(f):
    if f.get("not_run"):
        return [f["index"], f["kind"], f.get("target", ""), f.get("phase", ""), "not run", f["not_run"]] + \
            [""] * (len(HEADER) - 6)
    fig = f.get("recovery") or {}
    c = f.get("counts") or {}
    return [f["index"], f["kind"], f.get("target_desc", f.get("target", "")), f.get("phase", ""),
            f.get("t_inject_ms") and f"{f['t_inject_ms']:.0f}" or "n/a", f.get("at_injection", ""),
            c.get("requests", 0), c.get("ok", 0), c.get("lost", 0),
            f"{c.get('wrong', 0)}" + (f" (+{c['unstable']} unstable)" if c.get("unstable") else ""),
            fmt_ms(f.get("stall_ms")), fmt_ms(fig.get("detect_ms")), fmt_ms(fig.get("resume_ms")),
            "n/a" if fig.get("recomputed") is None else fig["recomputed"], fig.get("served_by") or "n/a"]


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def totals(results):
    """{requests, ok, lost, wrong, unstable} of the faulted pass."""
    t = {"requests": 0, "ok": 0, "lost": 0, "wrong": 0, "unstable": 0}
    for r in results["requests"]:
        if r.get("fault") is None:
            continue  # not sent in the faulted pass (its fault did not run)
        t["requests"] += 1
        t[r["verdict"]] += 1
    return t


def render(results, max_failures=25):
    """The markdown section: how it was run, the totals, one row per fault,
    the failed requests."""
    meta, tot = results["meta"], totals(results)
    lines = [f"### {meta['title']}", "",
             f"Run on {meta['machine']['date']}: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
             f"kernel {meta['machine']['kernel']}; {'network lab' if meta['netlab'] else 'loopback'}; "
             f"seed {meta['seed']}; binary `{meta['binary']}` ({meta['binary_version']}, built "
             f"{meta['binary_mtime']}); recovery reports in /v1/cluster: "
             f"{'yes' if meta['has_recoveries'] else 'no (n/a below)'}.", "",
             "```", meta["command"], "```", ""]
    if meta.get("notes"):
        lines += ["Notes: " + "; ".join(meta["notes"]) + ".", ""]
    exact = meta.get("batch_invariant", False)
    lines += [f"Reference (two fault-free passes, the second in reverse order; KV cache "
              f"{meta.get('kv_type') or 'default'}; stages "
              f"{'--batch-invariant' if exact else 'with the default kernels'}): {meta['reference_ok']} of "
              f"{meta['requests']} requests answered by both in {meta['reference_s']:.1f} s; "
              f"{meta.get('unstable', 0)} gave two different texts "
              f"{'(bit-exact stages: they must agree)' if exact else '(either is accepted)'}.", "",
              "| requests | ok | lost | wrong | unstable |", "|---:|---:|---:|---:|---:|",
              f"| {tot['requests']} | {tot['ok']} | {tot['lost']} | {tot['wrong']} | {tot['unstable']} |", "",
              table(HEADER, [fault_row(f) for f in results["faults"]]), ""]
    acts = [f"{f['index']}. {'; '.join(f.get('actions') or [])}" + (f" ({'; '.join(f['notes'])})"
            if f.get("notes") else "") for f in results["faults"] if f.get("actions")]
    if acts:
        lines += ["What each fault did (seconds after the injection):", ""] + acts + [""]
    failed = [r for r in results["requests"] if r.get("fault") is not None and r["verdict"] != "ok"]
    if failed:
        lines += [f"Requests not ok ({len(failed)}{', first ' + str(max_failures) if len(failed) > max_failures else ''}):",
                  "", table(["request", "fault", "stream", "verdict", "why"],
                            [[r["id"], r["fault"], "yes" if r["stream"] else "no", r["verdict"], r["why"][:160]]
                             for r in failed[:max_failures]]), ""]
    return "\n".join(lines)


def print_table(results, out):
    tot = totals(results)
    out.write(table(HEADER, [fault_row(f) for f in results["faults"]]) + "\n")
    out.write(f"\nfaulted pass: {tot['requests']} requests, {tot['ok']} ok, {tot['lost']} lost, "
              f"{tot['wrong']} wrong, {tot['unstable']} unstable\n")


def write_doc(path, section, name):
    """Replaces section NAME (between its markers) in path, or appends it
    with its markers when they are missing."""
    BEGIN, END = markers(name)
    text = "# Reliability\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
