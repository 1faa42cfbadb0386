"""Results (results.jsonl + run.json of one or more runs) -> a markdown section
of docs/benchmarks.md (machine, settings, tables, exact commands, physical
limits, headline ratios) and PNG plots drawn by gnuplot:

  <model>-tps-vs-stages.png   decode tokens/s against stages, per link profile
  <model>-tpot-vs-delay.png   time per token against one-way delay, per stage count

The section sits between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->
in the document: a new report replaces it and leaves the rest untouched.
"""

import json
import math
import os
import re
import shutil
import subprocess

from . import limit

SINGLE = ("llama.cpp", "colony")
PIPELINE = ("llama.cpp RPC", "colony cluster")

# what a complete record of each system holds (the smoke test checks these)
REQUIRED = {
    "llama.cpp": ["pp_tps", "tg_tps", "load_s", "ttft_ms", "prefill_tps", "decode_tps", "tpot_p50_ms",
                  "tpot_p90_ms", "tpot_p99_ms", "rss_max_kib"],
    "colony": ["pp_tps", "tg_tps", "load_s", "ttft_ms", "prefill_tps", "decode_tps", "tpot_p50_ms", "tpot_p90_ms",
               "tpot_p99_ms", "rss_max_kib"],
    "llama.cpp RPC": ["pp_tps", "tg_tps", "load_s", "load2_s", "load_bytes", "ttft_ms", "prefill_tps", "decode_tps",
                      "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms", "bytes_per_token", "rss_max_kib"],
    "colony cluster": ["load_s", "load2_s", "ttft_ms", "prefill_tps", "decode_tps", "bytes_per_token",
                       "rss_max_kib", "agg_tps"],
}
SYSTEM_KEYS = {"llama": "llama.cpp", "colony": "colony", "rpc": "llama.cpp RPC", "colony-cluster": "colony cluster"}


def read_text(path):
    """The file's text, "" when it does not exist."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def load_results(folder):
    """{"dir", "meta", "records"} of a results folder; skips blank lines,
    raises ValueError naming the line for a malformed one."""
    with open(os.path.join(folder, "run.json")) as f:
        meta = json.load(f)
    records = []
    with open(os.path.join(folder, "results.jsonl")) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{folder}/results.jsonl line {i}: {e}") from e
    return {"dir": folder, "meta": meta, "records": records}


# ---------------------------------------------------------------- formatting

def fmt(v, digits=3):
    """A number with `digits` significant digits (thousands kept whole); "n/a" for None."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    a = abs(v)
    if a >= 10 ** (digits - 1):
        return f"{v:.0f}"
    if a == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
    return f"{v:.{decimals}f}"


def fmt_sd(mean, sd):
    if mean is None:
        return "n/a"
    return f"{fmt(mean)} ± {fmt(sd, 2)}" if sd is not None else fmt(mean)


def mib(kib):
    return None if kib is None else kib / 1024


def fmt_bytes(b):
    if b is None:
        return "n/a"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= div:
            return f"{fmt(b / div)} {unit}"
    return f"{b:.0f} B"


def table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------- physical limit

def single_node(records, model_name):
    """The single-node reference of a model: the fastest decode (lowest mean
    time per token after the prompt) and TTFT among llama.cpp and colony."""
    best = {}
    for r in records:
        if r["model"]["name"] != model_name or r["system"] not in SINGLE or r["error"]:
            continue
        m = r["metrics"]
        if m.get("decode_tps"):
            tpot = 1e3 / m["decode_tps"]
            if "tpot_ms" not in best or tpot < best["tpot_ms"]:
                best.update(tpot_ms=tpot, tpot_from=r["system"])
        if m.get("ttft_ms") and ("ttft_ms" not in best or m["ttft_ms"] < best["ttft_ms"]):
            best.update(ttft_ms=m["ttft_ms"], ttft_from=r["system"])
    return best


def limit_for(ref, model, stages, profile, n_prompt):
    """Decode limit dict (+ "ttft_ms") of a pipeline, or None without a reference."""
    if "tpot_ms" not in ref:
        return None
    d = limit.decode_limit_ms(ref["tpot_ms"], stages, model["n_embd"], profile["delay_ms"], profile["rate_mbit"])
    if "ttft_ms" in ref:
        d["ttft_ms"] = limit.ttft_limit_ms(ref["ttft_ms"], stages, model["n_embd"], n_prompt, profile["delay_ms"],
                                           profile["rate_mbit"])
    return d


# ---------------------------------------------------------------- sections

def machine_section(runs):
    lines = []
    for run in runs:
        mi = run["meta"].get("machine", {})
        meta = run["meta"]
        lines.append(f"- Run `{os.path.basename(os.path.normpath(run['dir']))}`: {mi.get('date', '?')}, "
                     f"{mi.get('cpu', '?')} ({mi.get('cores', '?')} cores, {mi.get('simd', '')}), "
                     f"{mi.get('mem_gib', '?')} GiB RAM, Linux {mi.get('kernel', '?')}, colony `{mi.get('git', '?')}`; "
                     f"load average {' '.join(mi.get('loadavg_start', []))} at start, "
                     f"{' '.join(mi.get('loadavg_end', []))} at the end; "
                     f"{meta.get('threads')} thread(s) per process, {meta.get('reps')} repetitions, "
                     f"prompt {meta.get('n_prompt')} tokens, {meta.get('n_gen')} generated"
                     + (f", memory limit {meta['mem_limit_gib']} GiB per worker host (2..S; host 1 unlimited)"
                        if meta.get("mem_limit_gib") else "")
                     + (f", {meta['wall_s']} s in all" if meta.get("wall_s") else "") + ".")
    return "\n".join(lines)


def single_table(recs):
    rows = []
    for r in recs:
        m = r["metrics"]
        rows.append([r["system"], fmt_sd(m.get("pp_tps"), m.get("pp_sd")), fmt_sd(m.get("tg_tps"), m.get("tg_sd")),
                     fmt(m.get("load_s")), fmt(m.get("ttft_ms")), fmt(m.get("prefill_tps")), fmt(m.get("decode_tps")),
                     f"{fmt(m.get('tpot_p50_ms'))} / {fmt(m.get('tpot_p90_ms'))} / {fmt(m.get('tpot_p99_ms'))}",
                     fmt(mib(m.get("rss_max_kib")))])
    return table(["system", "ppN tok/s", "tgN tok/s", "load s", "TTFT ms", "prefill tok/s", "decode tok/s",
                  "p50 / p90 / p99 ms", "peak RSS MiB"], rows)


def pipeline_table(recs, refs, n_prompt):
    rows = []
    for r in recs:
        m = r["metrics"]
        prof = r["profile"]
        lim = limit_for(refs, r["model"], r["stages"], prof, n_prompt)
        rss = m.get("rss_kib") or {}
        rss_txt = " / ".join(fmt(mib(rss[h])) for h in sorted(rss, key=lambda h: int(h[1:]))) if rss else "n/a"
        agg = m.get("agg_tps") or {}
        agg_txt = " / ".join(fmt(agg.get(k)) for k in sorted(agg, key=int)) if agg else "n/a"
        gap = None
        if lim and m.get("decode_tps") and lim["hops"] > 0:
            gap = (1e3 / m["decode_tps"] - lim["total_ms"]) / lim["hops"]
        rows.append([r["system"], r["stages"], "/".join(str(c) for c in r["split"]), prof["name"],
                     fmt(m.get("load_s")), fmt(m.get("load2_s")), fmt(m.get("ttft_ms")),
                     fmt_sd(m.get("pp_tps"), m.get("pp_sd")), fmt_sd(m.get("tg_tps"), m.get("tg_sd")),
                     fmt(m.get("decode_tps")),
                     f"{fmt(m.get('tpot_p50_ms'))} / {fmt(m.get('tpot_p90_ms'))} / {fmt(m.get('tpot_p99_ms'))}",
                     fmt_bytes(m.get("bytes_per_token")), rss_txt, agg_txt,
                     fmt(1e3 / lim["total_ms"]) if lim else "n/a", fmt(gap)])
    return table(["system", "stages", "split", "link", "load s", "2nd load s", "TTFT ms", "ppN tok/s", "tgN tok/s",
                  "decode tok/s", "p50 / p90 / p99 ms", "wire bytes/token", "peak RSS MiB per host",
                  "agg tok/s 1/4/8", "limit tok/s", "ms/hop over limit"], rows)


def limit_table(model, pipeline_recs, refs, n_prompt):
    seen, rows = set(), []
    for r in pipeline_recs:
        key = (r["stages"], r["profile"]["name"])
        if key in seen:
            continue
        seen.add(key)
        lim = limit_for(refs, model, r["stages"], r["profile"], n_prompt)
        if not lim:
            continue
        p = r["profile"]
        rows.append([r["stages"], p["name"], fmt(p["delay_ms"]), fmt(p["rate_mbit"]) if p["rate_mbit"] else "∞",
                     fmt(lim["compute_ms"]), fmt(lim["delay_ms"]), fmt(lim["transfer_ms"]), fmt(lim["total_ms"]),
                     fmt(1e3 / lim["total_ms"]), fmt(lim.get("ttft_ms"))])
    if not rows:
        return ""
    return table(["stages", "link", "one-way ms", "Mbit/s", "compute ms", "delays ms", "transfers ms",
                  "limit ms/token", "limit tok/s", f"limit TTFT ms ({n_prompt})"], rows)


def ratios(records, model_name):
    """Headline ratios against the goals of issue 6 (only where both sides exist)."""
    out = []
    by = {}
    for r in records:
        if r["model"]["name"] == model_name and not r["error"]:
            by[(r["system"], r["stages"], r["profile"]["name"])] = r["metrics"]
    lc, co = by.get(("llama.cpp", 1, "local")), by.get(("colony", 1, "local"))
    if lc and co:
        for k, label in (("pp_tps", "prefill (ppN)"), ("tg_tps", "decode (tgN)"), ("decode_tps", "decode after the prompt")):
            if lc.get(k) and co.get(k):
                out.append(f"colony / llama.cpp, cluster of one, {label}: {co[k] / lc[k]:.3f} (goal ≥ 0.95)")
    for (sysname, s, prof), m in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if sysname != "colony cluster":
            continue
        rpc = by.get(("llama.cpp RPC", s, prof))
        if rpc and rpc.get("decode_tps") and m.get("decode_tps"):
            goal = " (goal ≥ 1.5)" if prof == "wifi-poor" and s == 3 else " (goal > 1)"
            out.append(f"colony / llama.cpp RPC decode, {s} stages, {prof}: {m['decode_tps'] / rpc['decode_tps']:.2f}{goal}")
        if rpc and rpc.get("load2_s") and m.get("load2_s"):
            out.append(f"llama.cpp RPC / colony second load, {s} stages, {prof}: {rpc['load2_s'] / m['load2_s']:.2f} (goal ≥ 5)")
    return out


def commands_block(recs):
    """The exact commands of every record, grouped by system, stages and link."""
    lines = []
    for r in recs:
        if r["commands"]:
            lines.append(f"# {r['system']}, {r['stages']} stage(s), {r['profile']['name']}")
            lines += r["commands"]
    if not lines:
        return ""
    return "<details><summary>Exact commands</summary>\n\n```\n" + "\n".join(lines) + "\n```\n\n</details>"


def model_section(model, records, plots_rel, n_prompt):
    name = model["name"]
    recs = [r for r in records if r["model"]["name"] == name]
    singles = [r for r in recs if r["stages"] == 1 and r["system"] in SINGLE and not r["error"]]
    pipes = [r for r in recs if r["system"] in PIPELINE and not r["error"]]
    pipes.sort(key=lambda r: (r["profile"].get("delay_ms", 0), r["profile"]["name"], r["stages"], r["system"]))
    errors = [r for r in recs if r["error"]]
    refs = single_node(records, name)
    parts = [f"#### {name}",
             f"{model['arch']}, {model['n_layer']} layers, n_embd {model['n_embd']}, vocabulary {model['n_vocab']}, "
             f"file {fmt_bytes(model['file_bytes'])} (`{model['spec']}`)."]
    if singles:
        parts += ["Single node (host 1 of the lab, no link):", single_table(singles)]
    if pipes:
        parts += ["Pipelines (stage 0 on host 1; split = layers per stage; peak RSS host 1 first):",
                  pipeline_table(pipes, refs, n_prompt)]
        lt = limit_table(model, pipes, refs, n_prompt)
        if lt:
            parts += [f"Physical limit (single-node decode {fmt(refs.get('tpot_ms'))} ms/token from "
                      f"{refs.get('tpot_from')}, hidden state f16 = {2 * model['n_embd']} bytes/token/hop):", lt]
    rat = ratios(records, name)
    if rat:
        parts += ["Headline ratios:", "\n".join(f"- {x}" for x in rat)]
    for p in plots_rel:
        parts.append(f"![{os.path.basename(p)}]({p})")
    notes = []
    for r in recs:
        for n in r.get("notes", []):
            line = f"{r['system']}: {n}"
            if line not in notes:
                notes.append(line)
    if notes:
        parts += ["Notes:", "\n".join(f"- {n}" for n in notes)]
    if errors:
        parts += ["Failed measurements:", "\n".join(f"- {r['system']}, {r['stages']} stage(s), "
                                                  f"{r['profile']['name']}: {r['error'][:300]}" for r in errors)]
    cb = commands_block(recs)
    if cb:
        parts.append(cb)
    return "\n\n".join(parts)


# ---------------------------------------------------------------- plots

def _series_tps_vs_stages(records, name):
    """{(system, profile): [(stages, tok/s)]}; stage 1 is the single-node
    point of the same engine family, and the limit is a system of its own."""
    refs = single_node(records, name)
    singles = {r["system"]: r["metrics"] for r in records
               if r["model"]["name"] == name and r["system"] in SINGLE and not r["error"]}
    series = {}
    model = None
    for r in records:
        if r["model"]["name"] != name or r["system"] not in PIPELINE or r["error"] or r["stages"] < 2:
            continue
        model = r["model"]
        m, prof = r["metrics"], r["profile"]
        if m.get("decode_tps"):
            series.setdefault((r["system"], prof["name"]), []).append((r["stages"], m["decode_tps"]))
        lim = limit_for(refs, model, r["stages"], prof, 0)
        if lim:
            pts = series.setdefault(("limit", prof["name"]), [])
            if all(p[0] != r["stages"] for p in pts):
                pts.append((r["stages"], 1e3 / lim["total_ms"]))
    for (system, prof), pts in series.items():
        base = {"llama.cpp RPC": "llama.cpp", "colony cluster": "colony"}.get(system)
        ref = singles.get(base, {}).get("decode_tps") if base else (1e3 / refs["tpot_ms"] if "tpot_ms" in refs else None)
        if ref and all(p[0] != 1 for p in pts):
            pts.append((1, ref))
        pts.sort()
    if series and not any(k[0] == "colony cluster" for k in series) and singles.get("colony", {}).get("decode_tps"):
        series[("colony", "cluster of one")] = [(1, singles["colony"]["decode_tps"])]
    return series


def _series_tpot_vs_delay(records, name):
    """{(system, stages): [(one-way delay ms, ms/token)]}, limit included."""
    refs = single_node(records, name)
    series = {}
    for r in records:
        if r["model"]["name"] != name or r["system"] not in PIPELINE or r["error"] or r["stages"] < 2:
            continue
        m, prof = r["metrics"], r["profile"]
        if m.get("decode_tps"):
            series.setdefault((r["system"], r["stages"]), []).append((prof["delay_ms"], 1e3 / m["decode_tps"]))
        lim = limit_for(refs, r["model"], r["stages"], prof, 0)
        if lim:
            pts = series.setdefault(("limit", r["stages"]), [])
            if all(p[0] != prof["delay_ms"] for p in pts):
                pts.append((prof["delay_ms"], lim["total_ms"]))
    for pts in series.values():
        pts.sort()
    return series


STYLE = {"llama.cpp RPC": ("2", "7"), "colony cluster": ("1", "5"), "colony": ("1", "9"),
         "limit": ("3", "1")}  # dashtype, pointtype


def _gnuplot(script, cwd):
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, cwd=cwd, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {r.stderr.strip()[:500]}")


def _plot(path, title, xlabel, ylabel, series, label_fn, color_key, logy=False, xtics=None):
    """Writes one PNG: series {key: [(x, y)]} as lines with points; returns path."""
    d = os.path.dirname(path)
    base = os.path.splitext(os.path.basename(path))[0]
    keys = sorted(series, key=lambda k: (str(color_key(k)), str(k)))
    colors = {}
    plots = []
    for i, k in enumerate(keys):
        dat = os.path.join(d, f"{base}.{i}.dat")
        with open(dat, "w") as f:
            for x, y in series[k]:
                f.write(f"{x} {y}\n")
        c = colors.setdefault(color_key(k), len(colors) + 1)
        dt, pt = STYLE.get(k[0], ("1", "6"))
        plots.append(f"'{os.path.basename(dat)}' using 1:2 with linespoints lc {c} dt {dt} pt {pt} ps 1.3 lw 2 "
                     f"title \"{label_fn(k)}\"")
    script = "\n".join([
        "set terminal pngcairo size 900,560 noenhanced font 'DejaVu Sans,11'",
        f"set output '{os.path.basename(path)}'",
        f"set title \"{title}\"", f"set xlabel \"{xlabel}\"", f"set ylabel \"{ylabel}\"",
        "set grid", "set key outside right top", "set yrange [0:*]" if not logy else "set logscale y",
        xtics or "", "plot " + ", \\\n  ".join(plots), ""])
    _gnuplot(script, d)
    for i in range(len(keys)):
        os.unlink(os.path.join(d, f"{base}.{i}.dat"))
    return path


def make_plots(records, model, plots_dir):
    """The model's two PNGs in plots_dir (empty list when there is nothing to
    plot or gnuplot is missing)."""
    if not shutil.which("gnuplot"):
        return []
    os.makedirs(plots_dir, exist_ok=True)
    name = model["name"]
    out = []
    s1 = _series_tps_vs_stages(records, name)
    if s1:
        stages = sorted({p[0] for pts in s1.values() for p in pts})
        out.append(_plot(os.path.join(plots_dir, f"{slug(name)}-tps-vs-stages.png"),
                         f"{name}: decode tokens/s against stages", "stages (hosts)", "decode tokens/s",
                         s1, lambda k: f"{k[0]}, {k[1]}", lambda k: k[1],
                         xtics="set xtics (" + ", ".join(f"'{s}' {s}" for s in stages) + ")"))
    s2 = _series_tpot_vs_delay(records, name)
    if s2:
        out.append(_plot(os.path.join(plots_dir, f"{slug(name)}-tpot-vs-delay.png"),
                         f"{name}: time per token against one-way delay", "one-way delay of the link profile (ms)",
                         "ms per token (decode)", s2, lambda k: f"{k[0]}, {k[1]} stages", lambda k: k[1]))
    return out


# ---------------------------------------------------------------- document

def build_section(runs, plots_dir, doc_dir, title):
    records = [r for run in runs for r in run["records"]]
    n_prompt = runs[0]["meta"].get("n_prompt", 512) if runs else 512
    models = []
    for r in records:
        if r["model"]["name"] not in [m["name"] for m in models]:
            models.append(r["model"])
    parts = [f"### {title}", "Machine and settings:", machine_section(runs)]
    for model in models:
        pngs = make_plots(records, model, plots_dir)
        rel = [os.path.relpath(p, doc_dir) for p in pngs]
        parts.append(model_section(model, records, rel, n_prompt))
    return "\n\n".join(parts) + "\n"


def write_report(runs, doc_path, plots_dir, title="Results", section="results"):
    """Writes (or replaces) the section in doc_path and the plots; returns doc_path."""
    doc_dir = os.path.dirname(os.path.abspath(doc_path))
    os.makedirs(doc_dir, exist_ok=True)
    body = build_section(runs, os.path.abspath(plots_dir), doc_dir, title)
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{body}{end}\n"
    text = read_text(doc_path)
    if begin in text and end in text:
        pre = text[:text.index(begin)]
        post = text[text.index(end) + len(end):].lstrip("\n")
        text = pre + block + ("\n" + post if post else "")
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + block
    with open(doc_path, "w") as f:
        f.write(text)
    return doc_path


# ---------------------------------------------------------------- completeness (smoke test)

def _positive(v):
    if isinstance(v, dict):
        return bool(v) and all(_positive(x) for x in v.values())
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_complete(runs, doc_path, plots_dir, systems):
    """Problems (strings; empty = complete): every wanted system has a record
    without error, every REQUIRED figure present and positive (RSS for every
    host of the pipeline), the document has the tables and no NaN, and each
    plot is a non-empty PNG."""
    problems = []
    records = [r for run in runs for r in run["records"]]
    for key in systems:
        name = SYSTEM_KEYS[key]
        recs = [r for r in records if r["system"] == name]
        if not recs:
            problems.append(f"{name}: no record")
        for r in recs:
            where = f"{name} S={r['stages']} {r['profile']['name']}"
            if r["error"]:
                problems.append(f"{where}: {r['error']}")
                continue
            for k in REQUIRED[name]:
                if k in ("bytes_per_token", "load_bytes") and r["stages"] < 2:
                    continue  # nothing crosses a link
                if not _positive(r["metrics"].get(k)):
                    problems.append(f"{where}: {k} missing or not positive ({r['metrics'].get(k)!r})")
            rss = r["metrics"].get("rss_kib") or {}
            hosts = {f"h{i}" for i in range(1, r["stages"] + 1)}
            if set(rss) != hosts or not _positive(rss):
                problems.append(f"{where}: peak RSS per host incomplete: {rss}")
            if not r["commands"]:
                problems.append(f"{where}: no commands recorded")
    text = read_text(doc_path)
    if not text:
        problems.append(f"{doc_path}: missing or empty")
    for bad in ("nan", "inf ", "None"):
        if re.search(rf"\|\s*{bad}", text):
            problems.append(f"{doc_path}: a cell reads '{bad.strip()}'")
    for key in systems:
        if f"| {SYSTEM_KEYS[key]} |" not in text:
            problems.append(f"{doc_path}: no table row for {SYSTEM_KEYS[key]}")
    if shutil.which("gnuplot"):
        pngs = [f for f in os.listdir(plots_dir)] if os.path.isdir(plots_dir) else []
        pngs = [f for f in pngs if f.endswith(".png")]
        if len(pngs) < 2:
            problems.append(f"{plots_dir}: expected 2 plots per model, found {pngs}")
        for f in pngs:
            with open(os.path.join(plots_dir, f), "rb") as fh:
                head = fh.read(8)
            if head != b"\x89PNG\r\n\x1a\n" or os.path.getsize(os.path.join(plots_dir, f)) < 2000:
                problems.append(f"{f}: not a PNG or nearly empty")
            if f"({os.path.relpath(os.path.join(plots_dir, f), os.path.dirname(os.path.abspath(doc_path)))})" not in text:
                problems.append(f"{f}: not referenced by the document")
    return problems
