"""One measurement per system, each run in the network lab, each returning a
result record (a dict, one JSON line in results.jsonl; see make_record):

  llama_alone      llama.cpp on host 1: llama-bench + colony-bench-probe --engine llama
  colony_alone     colony as a cluster of one on host 1: colony bench --no-llama + probe --engine colony
  llama_rpc        llama.cpp's RPC backend: ggml-rpc-server on hosts 2..S, llama-bench /
                   probe with --rpc on host 1 (stage 0 = its CPU), same split via -ngl/-ts
  colony_cluster   colony's pipeline: colony serve on host 1, colony join on hosts 2..S,
                   measured over HTTP (benchlib.openai). THE HOOK: see its docstring.

Metric names (all optional; absent = not measured), units in the name:
  load_s, load2_s        model load incl. weight transfer; second load (caches warm)
  load_bytes             bytes on the wire during the load
  ttft_ms                TTFT of an n_prompt-token prompt (median of repetitions)
  prefill_tps            n_prompt / TTFT (probe) ; pp_tps, pp_sd: llama-bench/colony bench ppN
  decode_tps             1000 / mean time per token (probe, decode after the prompt)
  tg_tps, tg_sd          llama-bench/colony bench tgN (decode from an empty cache)
  tpot_p50_ms, tpot_p90_ms, tpot_p99_ms   time per output token percentiles
  bytes_per_token        bytes on the wire per generated token (decode)
  prefill_bytes          bytes on the wire for the prompt
  rss_kib                {host: peak RSS KiB}; rss_max_kib: the largest
  agg_tps                {"1": tok/s, "4": ..., "8": ...} concurrent streams (HTTP)
"""

import json
import os
import re
import shutil
import signal
import time

from . import openai, proc, split, stats
from .lab import REPO, counters_delta

RPC_PORT = 50052
COLONY_CONTROL_PORT = 7411
COLONY_API_PORT = 8080


class Ctx:
    """Settings shared by every measurement of one run."""

    def __init__(self, bins, out_dir, threads=1, reps=3, n_prompt=512, n_gen=128, timeout=900,
                 mem_limit_gib=0.0, streams=(1, 4, 8), stream_tokens=64, log=print):
        self.bins = bins  # name -> path: colony, llama-bench, ggml-rpc-server, colony-bench-probe, colony-netem
        self.out_dir = out_dir
        self.threads = threads
        self.reps = reps
        self.n_prompt = n_prompt
        self.n_gen = n_gen
        self.timeout = timeout
        self.mem_limit_gib = mem_limit_gib  # per worker host (hosts 2..S); 0 = none
        self.streams = tuple(streams)
        self.stream_tokens = stream_tokens
        self.log = log
        self.log_dir = os.path.join(out_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        # caches (rpc-server -c, colony shards) and keys: large, deleted after each system
        self.scratch = os.environ.get("COLONY_BENCH_SCRATCH") or os.path.join(
            os.environ.get("TMPDIR", "/tmp"), f"colony-bench-{os.getpid()}")
        self._seq = 0

    def log_prefix(self, name):
        self._seq += 1
        return os.path.join(self.log_dir, f"{self._seq:03d}-{name}")


def make_record(system, model, stages, counts, profile, metrics, commands, notes=None, error=None):
    """A result record: system, model {spec, name, path, n_layer, n_embd,
    n_vocab, file_bytes}, stages, split (layer counts), profile {name, delay_ms,
    jitter_ms, rate_mbit, loss_pct}, metrics (see the module doc), commands
    (as run), notes, error (None when the measurement completed)."""
    return {"schema": 1, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "system": system, "model": model,
            "stages": stages, "split": list(counts), "profile": profile, "metrics": metrics,
            "commands": commands, "notes": notes or [], "error": error}


def pretty(cmd):
    """A command for the report: the repository and HOME shortened."""
    text = proc.cmdline(cmd)
    text = text.replace(REPO + "/", "")
    home = os.path.expanduser("~")
    return text.replace(home + "/", "~/")


# ---------------------------------------------------------------- parsers

def parse_llama_bench(text):
    """llama-bench -o json output -> {"pp": (avg_ts, stddev_ts, n_prompt),
    "tg": (avg_ts, stddev_ts, n_gen)}; raises ValueError when a test is missing."""
    rows = json.loads(text)
    out = {}
    for row in rows:
        if row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            out["tg"] = (float(row["avg_ts"]), float(row["stddev_ts"]), int(row["n_gen"]))
        elif row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            out["pp"] = (float(row["avg_ts"]), float(row["stddev_ts"]), int(row["n_prompt"]))
    if "pp" not in out or "tg" not in out:
        raise ValueError("llama-bench output lacks the pp or tg test")
    return out


_CELL = re.compile(r"^\s*([0-9.]+)\s*±\s*([0-9.]+)\s*$")


def parse_colony_bench(text):
    """`colony bench --no-llama` markdown table -> {"pp": (mean, sd, n), "tg": (mean, sd, n)}."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.match(r"^(pp|tg)\d+$", cells[2]):
            continue
        m = _CELL.match(cells[3])
        if not m:
            continue
        out[cells[2][:2]] = (float(m.group(1)), float(m.group(2)), int(cells[2][2:]))
    if "pp" not in out or "tg" not in out:
        raise ValueError("colony bench output lacks the pp or tg row")
    return out


def summarize_probe(doc):
    """colony-bench-probe JSON -> metrics: load_s, load_bytes, ttft_ms (median),
    prefill_tps, decode_tps, tpot_p50/p90/p99_ms, bytes_per_token,
    prefill_bytes, peak_rss_kib."""
    reps = doc["reps"]
    if not reps:
        raise ValueError("probe output has no repetitions")
    steps = [s for r in reps for s in r["step_ms"]]
    ttft = stats.median([r["ttft_ms"] for r in reps])
    m = {
        "load_s": doc["load_ms"] / 1e3,
        "ttft_ms": ttft,
        "prefill_tps": doc["n_prompt"] / (ttft / 1e3),
        "decode_tps": 1e3 / stats.mean(steps),
        "tpot_p50_ms": stats.percentile(steps, 50),
        "tpot_p90_ms": stats.percentile(steps, 90),
        "tpot_p99_ms": stats.percentile(steps, 99),
        "peak_rss_kib": doc.get("peak_rss_kib", 0),
    }
    if doc.get("iface"):
        m["load_bytes"] = doc["load_bytes"]
        m["bytes_per_token"] = stats.mean([r["decode_bytes"] / len(r["step_ms"]) for r in reps])
        m["prefill_bytes"] = stats.median([r["prefill_bytes"] for r in reps])
    return m


# ---------------------------------------------------------------- helpers

def _run_in(ctx, lab, host, argv, name, timeout=None, env=None):
    """argv in lab host `host`, to completion; raises ProcError on failure."""
    p = proc.Process(lab.cmd(host, argv), env=env, log_prefix=ctx.log_prefix(name))
    r = p.wait(timeout or ctx.timeout)
    return r.check(name)


def _probe(ctx, lab, host, model_path, engine, extra=(), n_prompt=None, n_gen=None, reps=None, name="probe"):
    argv = [ctx.bins["colony-bench-probe"], "--engine", engine, "-m", model_path, "-t", ctx.threads,
            "-p", n_prompt or ctx.n_prompt, "-n", n_gen or ctx.n_gen, "-r", reps or ctx.reps] + list(extra)
    r = _run_in(ctx, lab, host, argv, name)
    return json.loads(r.stdout.strip().splitlines()[-1]), r, argv


def _bench_argv(ctx, model_path, extra=()):
    return [ctx.bins["llama-bench"], "-m", model_path, "-p", ctx.n_prompt, "-n", ctx.n_gen, "-fa", 1,
            "-t", ctx.threads, "-r", ctx.reps, "-o", "json"] + list(extra)


# ---------------------------------------------------------------- single node

def _single_node(ctx, lab, model, profile, system, engine, argv, parse):
    """One engine alone on host 1: `argv` (a llama-bench-like run, read by
    `parse`) for ppN/tgN, then the probe with --engine `engine` for load, TTFT
    and time-per-token percentiles."""
    cmds, m = [], {}
    r = _run_in(ctx, lab, 1, argv, f"{engine}-bench")
    b = parse(r.stdout)
    cmds.append("host 1: " + pretty(argv))
    m.update(pp_tps=b["pp"][0], pp_sd=b["pp"][1], tg_tps=b["tg"][0], tg_sd=b["tg"][1])
    doc, r2, pargv = _probe(ctx, lab, 1, model["path"], engine, name=f"probe-{engine}")
    cmds.append("host 1: " + pretty(pargv))
    m.update(summarize_probe(doc))
    m["rss_kib"] = {"h1": max(r.maxrss_kib, r2.maxrss_kib, doc.get("peak_rss_kib", 0))}
    m["rss_max_kib"] = m["rss_kib"]["h1"]
    return make_record(system, model, 1, [model["n_layer"]], profile, m, cmds)


def llama_alone(ctx, lab, model, profile):
    """llama.cpp alone on host 1: llama-bench ppN/tgN and the probe's load,
    TTFT and time-per-token percentiles."""
    return _single_node(ctx, lab, model, profile, "llama.cpp", "llama",
                        _bench_argv(ctx, model["path"]), parse_llama_bench)


def colony_alone(ctx, lab, model, profile):
    """colony as a cluster of one on host 1: colony bench --no-llama and the
    probe with --engine colony (colony's Stage over every layer)."""
    argv = [ctx.bins["colony"], "bench", "-m", model["path"], "-t", ctx.threads, "-p", ctx.n_prompt,
            "-n", ctx.n_gen, "-r", ctx.reps, "--no-llama"]
    return _single_node(ctx, lab, model, profile, "colony", "colony", argv, parse_colony_bench)


# ---------------------------------------------------------------- llama.cpp RPC

class _Workers:
    """Server processes on hosts 2..S, each optionally in a memory cgroup;
    stop() returns {host: peak RSS KiB} and cgroup peaks / OOM kills."""

    def __init__(self, ctx, lab, tag):
        self.ctx, self.lab, self.tag = ctx, lab, tag
        self.procs = {}
        self.cgroups = {}

    def start(self, host, argv, env=None):
        cmd = self.lab.cmd(host, argv)
        if self.ctx.mem_limit_gib > 0:
            # join the cgroup BEFORE `ip netns exec`: it remounts /sys for the
            # namespace, and that sysfs has no /sys/fs/cgroup; membership survives exec
            cg = proc.MemoryCgroup(f"{self.tag}-h{host}-{os.getpid()}", self.ctx.mem_limit_gib * (1 << 30))
            self.cgroups[host] = cg
            cmd = cg.wrap(cmd)
        self.procs[host] = proc.Process(cmd, env=env, log_prefix=self.ctx.log_prefix(f"{self.tag}-h{host}"))
        return self.procs[host]

    def check_alive(self):
        for h, p in self.procs.items():
            if not p.alive():
                r = p.wait(1)
                oom = self.cgroups[h].oom_kills() if h in self.cgroups else 0
                raise proc.ProcError(f"{self.tag} on host {h} exited ({r.rc}){' after an OOM kill' if oom else ''}: "
                                     f"{r.stderr.strip()[-300:]}")

    def stop(self, sig=signal.SIGTERM):
        rss, peaks, ooms = {}, {}, {}
        for h, p in self.procs.items():
            r = p.stop(sig)
            rss[f"h{h}"] = r.maxrss_kib
        for h, cg in self.cgroups.items():
            peaks[f"h{h}"] = cg.peak_bytes()
            ooms[f"h{h}"] = cg.oom_kills()
            cg.remove()
        self.procs, self.cgroups = {}, {}
        return rss, peaks, ooms


def llama_rpc(ctx, lab, model, counts, profile):
    """llama.cpp RPC with the split `counts`: ggml-rpc-server (-c: the local
    tensor cache, in a fresh folder so the first load is cold) on hosts
    2..S; host 1 runs the probe (load, TTFT, time per token, wire bytes on
    its eth0: every RPC byte goes to or from host 1), a second probe for the
    second load (cache warm), then llama-bench ppN/tgN with the same flags."""
    path, n_layer = model["path"], model["n_layer"]
    stages = len(counts)
    ngl, ts = split.rpc_args(counts, n_layer)
    endpoints = ",".join(f"{lab.addr(h)}:{RPC_PORT}" for h in range(2, stages + 1))
    rpc_flags = ["--rpc", endpoints, "-ngl", ngl, "-ts", ts]
    cache_root = os.path.join(ctx.scratch, "rpc-cache")
    workers = _Workers(ctx, lab, "rpc-server")
    cmds, m, notes = [], {}, []
    before = lab.counters()
    try:
        for h in range(2, stages + 1):
            cache = os.path.join(cache_root, f"h{h}")
            shutil.rmtree(cache, ignore_errors=True)
            os.makedirs(cache)
            env = dict(os.environ, LLAMA_CACHE=cache)
            argv = [ctx.bins["ggml-rpc-server"], "-H", lab.addr(h), "-p", RPC_PORT, "-t", ctx.threads, "-c"]
            workers.start(h, argv, env)
            cmds.append(f"host {h}: LLAMA_CACHE={pretty([cache])} " + pretty(argv))
        for h in range(2, stages + 1):
            try:
                lab.wait_port(h, RPC_PORT)
            except Exception:
                workers.check_alive()  # a server that died says why
                raise
        doc, r1, pargv = _probe(ctx, lab, 1, path, "llama", extra=rpc_flags + ["--iface", "eth0"], name="probe-rpc")
        cmds.append("host 1: " + pretty(pargv))
        m.update(summarize_probe(doc))
        workers.check_alive()
        doc2, r2, pargv2 = _probe(ctx, lab, 1, path, "llama", extra=rpc_flags + ["--iface", "eth0"],
                                  n_prompt=16, n_gen=4, reps=1, name="probe-rpc-reload")
        cmds.append("host 1 (second load): " + pretty(pargv2))
        m["load2_s"] = doc2["load_ms"] / 1e3
        m["load2_bytes"] = doc2["load_bytes"]
        argv = _bench_argv(ctx, path, rpc_flags)
        r3 = _run_in(ctx, lab, 1, argv, "llama-bench-rpc")
        b = parse_llama_bench(r3.stdout)
        cmds.append("host 1: " + pretty(argv))
        m.update(pp_tps=b["pp"][0], pp_sd=b["pp"][1], tg_tps=b["tg"][0], tg_sd=b["tg"][1])
        workers.check_alive()
        client_rss = max(r1.maxrss_kib, r2.maxrss_kib, r3.maxrss_kib, doc.get("peak_rss_kib", 0),
                         doc2.get("peak_rss_kib", 0))
    except Exception as e:  # a failed measurement is a record with an error, not a crashed run
        rss, peaks, ooms = workers.stop()
        shutil.rmtree(cache_root, ignore_errors=True)
        err = f"{type(e).__name__}: {e}"
        if any(ooms.values()):
            err += f" (OOM kills: {ooms})"
        return make_record("llama.cpp RPC", model, stages, counts, profile, m, cmds, notes, error=err)
    rss, peaks, ooms = workers.stop()
    shutil.rmtree(cache_root, ignore_errors=True)
    after = lab.counters()
    m["rss_kib"] = {"h1": client_rss, **rss}
    m["rss_max_kib"] = max(m["rss_kib"].values())
    if peaks:
        m["cgroup_peak_bytes"] = peaks
        notes.append(f"hosts 2..{stages} limited to {ctx.mem_limit_gib} GiB (memory cgroup v{proc.MemoryCgroup.detect()[0]}); "
                     "cgroup peaks, page cache included: "
                     + ", ".join(f"{h} {v / (1 << 20):.0f} MiB" for h, v in peaks.items())
                     + f"; OOM kills: {sum(ooms.values())}")
    m["wire_bytes_total"] = sum(counters_delta(before, after).values())
    m["ngl"], m["ts"] = ngl, ts
    return make_record("llama.cpp RPC", model, stages, counts, profile, m, cmds, notes)


# ---------------------------------------------------------------- colony's cluster (the hook)

def filler_prompt(n_words):
    """Plain English filler text of n_words words (tokenizes predictably)."""
    words = ("the quick brown fox jumps over the lazy dog while a small cat watches from the warm "
             "window and the old farmer walks slowly along the river to the village market").split()
    return " ".join(words[i % len(words)] for i in range(n_words))


def _wait_joined(serve, n, timeout=15.0):
    """Waits until colony serve's log shows n workers joined ("... joined as
    node ..."), so that workers join in host order and host h runs stage
    h-1. Gives up quietly after timeout s (a changed log line only costs the
    order)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, err = serve.output_so_far()
        if len(re.findall(r"joined as node", err)) >= n:
            return True
        time.sleep(0.05)
    return False


class LabClient:
    """The OpenAI client (benchlib/openai.py) run inside a lab host's network
    namespace: the driver itself lives in the root namespace, which cannot
    reach the lab. Host 1 by default: the user sits next to the coordinator,
    so no emulated link is between the client and the API. Same results as
    openai.completion / openai.run_streams; the timing happens in the host."""

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai.py")

    def __init__(self, ctx, lab, host=1):
        self.ctx, self.lab, self.host = ctx, lab, host
        self._prompts = {}

    def _prompt_file(self, prompt):
        if prompt not in self._prompts:
            path = os.path.join(self.ctx.log_dir, f"prompt-{len(self._prompts)}.txt")
            with open(path, "w") as f:
                f.write(prompt)
            self._prompts[prompt] = path
        return self._prompts[prompt]

    def _call(self, what, base, prompt, max_tokens, stream=False, extra=None, streams=1, timeout=None):
        timeout = timeout or self.ctx.timeout
        argv = ["python3", self.SCRIPT, what, "--base", base, "--prompt-file", self._prompt_file(prompt),
                "--max-tokens", max_tokens, "--streams", streams, "--extra", json.dumps(extra or {}),
                "--timeout", timeout] + (["--stream"] if stream else [])
        r = proc.run(self.lab.cmd(self.host, argv), timeout + 30)
        if r.rc != 0 or not r.stdout.strip():
            raise openai.CompletionError(f"client in host {self.host} failed ({r.rc}): {r.stderr.strip()[-300:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def completion(self, base, prompt, max_tokens, stream=False, extra=None, timeout=None):
        return self._call("complete", base, prompt, max_tokens, stream, extra, timeout=timeout)

    def run_streams(self, base, prompt, n, max_tokens, stream=False, extra=None):
        return self._call("streams", base, prompt, max_tokens, stream, extra, streams=n)


def calibrate_prompt(base_url, n_tokens, tries=3, send=openai.completion):
    """A prompt of about n_tokens tokens, found with max_tokens=1 requests
    that report usage.prompt_tokens; returns (prompt, prompt_tokens or None).
    It starts at n_tokens / 4 words (a small vocabulary takes up to ~3 tokens
    per English word) so the first try stays within the context."""
    words = max(4, n_tokens // 4)
    got = None
    for _ in range(tries):
        prompt = filler_prompt(words)
        r = send(base_url, prompt, 1)
        if not r["ok"]:
            raise openai.CompletionError(r["error"])
        got = r.get("prompt_tokens")
        if not got:
            return prompt, None
        if abs(got - n_tokens) <= max(2, n_tokens // 100):
            return prompt, got
        words = max(1, round(words * n_tokens / got))
    return filler_prompt(words), got


def _trace_args(host, tag, stages, profile):
    """--trace for host `host` of a colony cluster when $COLONY_BENCH_TRACE_DIR
    is set: one Chrome/Perfetto trace per process (src/util/trace.h), named
    S{stages}-{profile}-{tag}-h{host}.json; merge them with `colony`'s format
    (one event per line) or open them side by side in ui.perfetto.dev."""
    d = os.environ.get("COLONY_BENCH_TRACE_DIR")
    if not d:
        return []
    os.makedirs(d, exist_ok=True)
    name = profile.get("name", "profile") if isinstance(profile, dict) else str(profile)
    return ["--trace", os.path.join(os.path.abspath(d), f"S{stages}-{name}-{tag}-h{host}.json")]


def colony_cluster(ctx, lab, model, counts, profile, stream=True):
    """colony's pipeline with the split `counts`: coordinator (`colony serve`,
    stage 0 and the HTTP API) on host 1, `colony join` workers on hosts 2..S.

    THE HOOK. It assumes this interface of the pipeline (src/cli/cmd_serve.cpp,
    cmd_join.cpp), and is the one place to adapt when it changes:
      colony serve -m M --host H1 --port 7411 --api-host H1 --api-port 8080
                   --split RANGES --workers-expected S-1 -t T -c CELLS --parallel 8
                   --ready-file F --config-dir D --cache-dir D   (F: JSON with "token")
      colony join --coordinator H1:7411 --token TOKEN -t T --data-host Hi
                  --cache-dir D --config-dir D
      POST /v1/completions {prompt, max_tokens, temperature, stream, ignore_eos}
    Measured: load_s (serve start -> first completion answered: shards
    transferred and loaded), load2_s (the same with the shard caches warm),
    ttft_ms (stream: first text chunk; else a max_tokens=1 request),
    tpot percentiles (stream: chunk gaps; else the mean from two latencies),
    bytes_per_token (colony-netem counters around the decode), agg_tps with
    ctx.streams concurrent requests, rss_kib per host (wait4 at shutdown).
    With stream=True and a server that refuses streaming, it falls back to
    stream=False and notes it."""
    path = model["path"]
    stages = len(counts)
    cmds, m, notes = [], {}, []
    base = f"http://{lab.addr(1)}:{COLONY_API_PORT}"
    state = os.path.join(ctx.scratch, "colony-state")
    cells = 8 * (2 * ctx.n_prompt + ctx.n_gen + 64)  # --parallel 8 sequences, headroom for calibration

    def start_cluster(tag):
        ready = os.path.join(state, f"ready-{tag}.json")
        if os.path.exists(ready):
            os.unlink(ready)
        serve = [ctx.bins["colony"], "serve", "-m", path, "--host", lab.addr(1), "--port", COLONY_CONTROL_PORT,
                 "--api-host", lab.addr(1), "--api-port", COLONY_API_PORT, "--split", split.colony_ranges(counts),
                 "--workers-expected", stages - 1, "-t", ctx.threads, "-c", cells, "--parallel", 8,
                 "--ready-file", ready, "--config-dir", os.path.join(state, "h1-config"),
                 "--cache-dir", os.path.join(state, "h1-cache")]
        serve += _trace_args(1, tag, stages, profile)
        t0 = time.monotonic()
        procs = {1: proc.Process(lab.cmd(1, serve), log_prefix=ctx.log_prefix(f"colony-serve-{tag}"))}
        workers = _Workers(ctx, lab, f"colony-join-{tag}")
        try:
            deadline = time.monotonic() + ctx.timeout
            while not os.path.exists(ready):
                if not procs[1].alive():
                    r = procs[1].wait(1)
                    raise proc.ProcError(f"colony serve exited ({r.rc}): {r.stderr.strip()[-400:]}")
                if time.monotonic() > deadline:
                    raise proc.ProcError("colony serve wrote no ready file")
                time.sleep(0.05)
            with open(ready) as f:
                info = json.load(f)
            for h in range(2, stages + 1):
                join = [ctx.bins["colony"], "join", "--coordinator", f"{lab.addr(1)}:{info.get('control_port', COLONY_CONTROL_PORT)}",
                        "--token", info["token"], "-t", ctx.threads, "--data-host", lab.addr(h),
                        "--cache-dir", os.path.join(state, f"h{h}-cache"), "--config-dir", os.path.join(state, f"h{h}-config")]
                join += _trace_args(h, tag, stages, profile)
                workers.start(h, join)
                _wait_joined(procs[1], h - 1)  # host h = stage h-1: join one at a time
                if tag == "cold":
                    cmds.append(f"host {h}: " + pretty(join).replace(info["token"], "TOKEN"))
            if tag == "cold":
                cmds.insert(0, "host 1: " + pretty(serve))
            # ready = the first completion answered (every stage loaded its shard)
            while True:
                r = client.completion(base, "hello", 1, timeout=30)
                if r["ok"]:
                    break
                workers.check_alive()
                if not procs[1].alive() or time.monotonic() > deadline:
                    raise proc.ProcError(f"colony cluster never answered: {r['error']}")
                time.sleep(0.2)
        except BaseException:
            stop_cluster(procs[1], workers)
            raise
        return time.monotonic() - t0, procs[1], workers

    def stop_cluster(serve, workers):
        rss, _, _ = workers.stop(signal.SIGINT)
        rss["h1"] = serve.stop(signal.SIGINT).maxrss_kib
        return rss

    client = LabClient(ctx, lab, 1)
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    serve = workers = None
    try:
        m["load_s"], serve, workers = start_cluster("cold")
        prompt, ptoks = calibrate_prompt(base, ctx.n_prompt, send=client.completion)
        if ptoks:
            m["prompt_tokens"] = ptoks
        extra = {"ignore_eos": True}
        use_stream = stream
        if use_stream:
            probe = client.completion(base, prompt, 2, stream=True, extra=extra)
            if not probe["ok"] or probe["ttft_ms"] is None:
                use_stream = False
                notes.append(f"streaming unavailable ({probe['error'][:120] or 'no text chunks'}); "
                             "TTFT from max_tokens=1, mean time per token from two latencies")
        ttfts, gaps, lat1, latn = [], [], [], []
        stream_ms, stream_tokens = 0.0, 0  # first to last text chunk, and the tokens after the first
        bpt = []
        for rep in range(ctx.reps):
            # a different first word per request: no prefix can be served from a prompt cache
            c0 = lab.counters()
            one = client.completion(base, f"a{rep} {prompt}", 1, stream=use_stream, extra=extra)
            c1 = lab.counters()
            full = client.completion(base, f"b{rep} {prompt}", ctx.n_gen, stream=use_stream, extra=extra)
            c2 = lab.counters()
            for r in (one, full):
                if not r["ok"]:
                    raise openai.CompletionError(r["error"])
            if full["completion_tokens"] < 2:
                raise openai.CompletionError("the server generated fewer than 2 tokens despite ignore_eos")
            lat1.append(one["latency_ms"])
            latn.append(full["latency_ms"])
            ttfts.append(full["ttft_ms"] if use_stream else one["latency_ms"])
            gaps.extend(full["token_gaps_ms"])
            stream_ms += sum(full["token_gaps_ms"])
            stream_tokens += full["completion_tokens"] - 1
            b1 = sum(counters_delta(c0, c1).values())
            bn = sum(counters_delta(c1, c2).values())
            bpt.append(max(0.0, (bn - b1) / (full["completion_tokens"] - 1)))
            m.setdefault("prefill_bytes", b1)
        m["ttft_ms"] = stats.median(ttfts)
        m["prefill_tps"] = (ptoks or ctx.n_prompt) / (m["ttft_ms"] / 1e3)
        if gaps:
            m["tpot_p50_ms"] = stats.percentile(gaps, 50)
            m["tpot_p90_ms"] = stats.percentile(gaps, 90)
            m["tpot_p99_ms"] = stats.percentile(gaps, 99)
            # A chunk can carry several tokens when they come faster than the
            # server writes (stories260K): count tokens (usage), not chunks.
            m["decode_tps"] = 1e3 * stream_tokens / stream_ms
        else:
            mean_tpot = (stats.median(latn) - stats.median(lat1)) / (ctx.n_gen - 1)
            if mean_tpot > 0:
                m["tpot_mean_ms"] = mean_tpot
                m["decode_tps"] = 1e3 / mean_tpot
            else:  # noise larger than the decode time: too few tokens (-n) for this method
                notes.append(f"decode not measurable without streaming: latency({ctx.n_gen}) <= latency(1)")
        if stages > 1:  # a cluster of one sends nothing over the links
            m["bytes_per_token"] = stats.mean(bpt)
        else:
            m.pop("prefill_bytes", None)
        m["agg_tps"] = {}
        for n in ctx.streams:
            s = client.run_streams(base, prompt, n, ctx.stream_tokens, stream=False, extra=extra)
            if not s["ok"]:
                raise openai.CompletionError(f"{n} streams: {s['errors'][:2]}")
            m["agg_tps"][str(n)] = s["aggregate_tps"]
        rss = stop_cluster(serve, workers)
        serve = None
        m["load2_s"], serve, workers = start_cluster("warm")
        rss2 = stop_cluster(serve, workers)
        serve = None
        m["rss_kib"] = {h: max(rss.get(h, 0), rss2.get(h, 0)) for h in set(rss) | set(rss2)}
        m["rss_max_kib"] = max(m["rss_kib"].values())
    except Exception as e:
        if serve is not None:
            stop_cluster(serve, workers)
        shutil.rmtree(state, ignore_errors=True)
        return make_record("colony cluster", model, stages, counts, profile, m, cmds, notes,
                           error=f"{type(e).__name__}: {e}")
    shutil.rmtree(state, ignore_errors=True)
    return make_record("colony cluster", model, stages, counts, profile, m, cmds, notes)
