#!/usr/bin/env python3
"""colony pull and per-stage range downloads against fake_hub.py (a local
server that behaves like huggingface.co and its storage).

usage: pull_test.py COLONY MODELS_DIR CASE    (CASE: see CASES below, or all)
Exit 0 when every check of the case holds; each failed check is printed.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = "test-org/stories260K-GGUF"
F32 = "stories260K-f32.gguf"


class Env:
    def __init__(self, colony, models):
        self.colony, self.models = colony, models
        self.tmp = tempfile.mkdtemp(prefix="colony-pull-")
        self.root = os.path.join(self.tmp, "hub")
        self.cache = os.path.join(self.tmp, "cache")
        repo = os.path.join(self.root, REPO)
        os.makedirs(repo)
        for name in (F32, "stories260K-q8_0.gguf"):
            shutil.copy(os.path.join(models, name), repo)
        gated = os.path.join(self.root, "test-org/gated-GGUF")
        os.makedirs(gated)
        shutil.copy(os.path.join(models, "stories260K-q8_0.gguf"), gated)
        split = os.path.join(self.root, "test-org/split-GGUF")
        os.makedirs(split)
        for i in (1, 2):
            with open(os.path.join(split, "m-Q4_K_M-%05d-of-00002.gguf" % i), "wb") as f:
                f.write(b"GGUF")
        self.server = None
        self.failures = []

    def start(self, *faults):
        self.stop()
        self.log = os.path.join(self.tmp, "log-%d.jsonl" % time.monotonic_ns())
        ready = os.path.join(self.tmp, "ready.json")
        if os.path.exists(ready):
            os.remove(ready)
        self.server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_hub.py"), "--root", self.root, "--log", self.log,
             "--ready", ready, "--gated", "test-org/gated-GGUF", "--token", "hf_secret", *faults])
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        with open(ready) as f:
            self.urls = json.load(f)

    def stop(self):
        if self.server:
            self.server.kill()
            self.server.wait()
            self.server = None

    def entries(self, server=None):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            rows = [json.loads(line) for line in f]
        return [r for r in rows if server is None or r["server"] == server]

    def run(self, *argv, token=None, timeout=120):
        env = dict(os.environ, HF_ENDPOINT=self.urls["hub"], COLONY_MODEL_CACHE=self.cache)
        env.pop("HF_TOKEN", None)
        if token:
            env["HF_TOKEN"] = token
        p = subprocess.run([self.colony, *argv], env=env, capture_output=True, text=True, timeout=timeout)
        return p

    def check(self, ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else "\n     " + detail))
        if not ok:
            self.failures.append(what)

    def cached(self, repo=REPO, name=F32):
        return os.path.join(self.cache, repo, name)

    def source(self, name=F32):
        return os.path.join(self.models, name)


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def case_full(e):
    e.start()
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 0, "a full pull succeeds", p.stderr)
    e.check(p.stdout.strip() == e.cached(), "it prints the cached path", p.stdout)
    e.check(os.path.exists(e.cached()) and same_bytes(e.cached(), e.source()), "the file equals the hub's")
    with open(e.cached() + ".sha256") as f:
        e.check(f.read().strip() == sha256(e.source()), "the verified SHA-256 is recorded")
    gets = [r for r in e.entries("storage") if r["method"] == "GET"]
    e.check(len(gets) == 1 and gets[0]["sent"] == os.path.getsize(e.source()), "one GET of the whole file",
            str(gets))
    before = len(e.entries("storage"))
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 0 and "already in the cache" in p.stderr, "a second pull finds it cached", p.stderr)
    e.check(len(e.entries("storage")) == before, "and fetches nothing")


def case_quant(e):
    e.start()
    p = e.run("pull", "hf:%s:Q8_0" % REPO)
    e.check(p.returncode == 0 and p.stdout.strip() == e.cached(name="stories260K-q8_0.gguf"),
            "a quant type picks the repo's file of that type", p.stderr + p.stdout)
    p = e.run("pull", "%s:Q4_K_M" % REPO)
    e.check(p.returncode == 1 and "no single-file Q4_K_M" in p.stderr and "f32, q8_0" in p.stderr,
            "a missing quant type names those the repo has", p.stderr)
    p = e.run("pull", "test-org/split-GGUF")
    e.check(p.returncode == 1 and "split into several files" in p.stderr, "a split model is refused clearly",
            p.stderr)


def case_resume_in_run(e):
    e.start("--cut-after", "400000")
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 0 and same_bytes(e.cached(), e.source()), "a cut download completes in one run",
            p.stderr)
    gets = [r for r in e.entries("storage") if r["method"] == "GET"]
    e.check(len(gets) == 2 and gets[0]["sent"] == 400000 and gets[1]["range"] == "bytes=400000-",
            "it resumes at the cut with a Range request", str(gets))
    e.check(gets[1]["sent"] == os.path.getsize(e.source()) - 400000, "and fetches only the rest", str(gets))


def case_resume_next_run(e):
    e.start("--cut-after", "400000")
    p = e.run("pull", "--retries", "0", "%s:%s" % (REPO, F32))
    part = e.cached() + ".part"
    e.check(p.returncode == 1 and "cut" in p.stderr, "with --retries 0 a cut download fails clearly", p.stderr)
    e.check(os.path.exists(part) and os.path.getsize(part) == 400000, "the .part keeps what arrived")
    e.check(not os.path.exists(e.cached()), "and no model file appears")
    e.start()
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 0 and same_bytes(e.cached(), e.source()), "the next pull completes it", p.stderr)
    gets = [r for r in e.entries("storage") if r["method"] == "GET"]
    e.check(len(gets) == 1 and gets[0]["range"] == "bytes=400000-" and
            gets[0]["sent"] == os.path.getsize(e.source()) - 400000,
            "without re-downloading what it had", str(gets))
    e.check(not os.path.exists(part), "the .part is gone")


def case_ignore_range(e):
    e.start("--cut-after", "300000")
    e.run("pull", "--retries", "0", "%s:%s" % (REPO, F32))
    e.start("--ignore-range")
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 0 and same_bytes(e.cached(), e.source()),
            "a server that ignores Range gets a whole download", p.stderr)
    e.check("ignored the Range request" in p.stderr, "and the user is told", p.stderr)


def case_corrupt(e):
    e.start("--corrupt-at", "500000")
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 1 and "SHA-256" in p.stderr and "is not the hub's" in p.stderr,
            "a corrupted byte is refused", p.stderr)
    e.check(not os.path.exists(e.cached()) and not os.path.exists(e.cached() + ".part"),
            "nothing is left to load or resume")


def case_errors(e):
    e.start()
    p = e.run("pull", "%s:missing-Q4_K_M.gguf" % REPO)
    e.check(p.returncode == 1 and "not found on the hub" in p.stderr and "EntryNotFound" in p.stderr,
            "a missing file is a clear 404", p.stderr)
    p = e.run("pull", "test-org/no-such-repo:x.gguf")
    e.check(p.returncode == 1 and "HF_TOKEN" in p.stderr, "an unknown repo names HF_TOKEN", p.stderr)
    p = e.run("pull", "not a repo")
    e.check(p.returncode == 1 and "is not owner/repo" in p.stderr, "a malformed name is refused", p.stderr)
    e.stop()
    p = e.run("pull", "%s:%s" % (REPO, F32))
    e.check(p.returncode == 1 and "HEAD" in p.stderr, "a hub that does not answer is one line", p.stderr)


def case_gated(e):
    e.start()
    ref = "test-org/gated-GGUF:stories260K-q8_0.gguf"
    p = e.run("pull", ref)
    e.check(p.returncode == 1 and "HF_TOKEN" in p.stderr and "GatedRepo" in p.stderr,
            "a gated repo without a token says HF_TOKEN", p.stderr)
    p = e.run("pull", ref, token="hf_secret")
    e.check(p.returncode == 0, "with HF_TOKEN it downloads", p.stderr)
    hub = [r for r in e.entries("hub") if r["status"] == 302]
    e.check(hub and all(r["auth"] == "Bearer hf_secret" for r in hub), "the hub gets the token")
    e.check(all(r["auth"] is None for r in e.entries("storage")), "the storage it redirects to never does")


def case_shards(e):
    e.start()
    src = e.source()
    size = os.path.getsize(src)
    for layers in ("0:2", "2:5"):
        before = len(e.entries("storage"))
        out = os.path.join(e.tmp, "shard-%s.gguf" % layers.replace(":", "-"))
        ref = os.path.join(e.tmp, "ref-%s.gguf" % layers.replace(":", "-"))
        p = e.run("pull", "%s:%s" % (REPO, F32), "--layers", layers, "-o", out)
        e.check(p.returncode == 0, "the shard of blocks %s is pulled" % layers, p.stderr)
        r = subprocess.run([e.colony, "shard", "-m", src, "--layers", layers, "-o", ref], capture_output=True,
                           text=True)
        e.check(r.returncode == 0, "colony shard writes the reference", r.stderr)
        e.check(os.path.exists(out) and same_bytes(out, ref),
                "it is byte-identical to the shard made from the whole file (%s)" % layers)
        gets = [x for x in e.entries("storage")[before:] if x["method"] == "GET"]
        sent = sum(x["sent"] for x in gets)
        e.check(gets and all(x["range"] and x["status"] == 206 for x in gets),
                "every storage read is a Range request (%s)" % layers, str(gets))
        e.check(all(x["sent"] < size for x in gets) and sent < size,
                "no whole-file read: %d of %d bytes fetched (%s)" % (sent, size, layers), str(gets))
    e.check(not os.path.exists(e.cached()), "no model file was downloaded")


def case_generate(e):
    e.start()
    argv = ["-p", "Once upon a time", "-n", "24", "--temp", "0"]
    ref = subprocess.run([e.colony, "generate", "-m", e.source(), *argv], capture_output=True, text=True)
    p = e.run("generate", "-m", "hf:%s:%s" % (REPO, F32), *argv)
    e.check(p.returncode == 0 and ref.returncode == 0, "colony generate -m hf:REPO:FILE runs", p.stderr)
    e.check(p.stdout == ref.stdout and p.stdout.strip(), "with the local file's text", p.stdout + "|" + ref.stdout)
    e.check(os.path.exists(e.cached()), "the model was pulled into the cache")


def run_cluster(e, *faults, model=None, extra=()):
    """colony run -m MODEL (default hf:REPO:F32) with 2 workers: (process, the
    workers' logs, the local file's text)."""
    if model is None:
        e.start(*faults)
    argv = ["-p", "Once upon a time", "-n", "24", "--temp", "0"]
    ref = subprocess.run([e.colony, "generate", "-m", e.source(), *argv], capture_output=True, text=True)
    run = [e.colony, "run", "-m", model or "hf:%s:%s" % (REPO, F32), "--workers", "2", "--split",
           "0:1,1:3,3:5", "--keep-dir", *extra, *argv]
    p = e.run(*run[1:], timeout=240) if model is None else subprocess.run(
        run, capture_output=True, text=True, timeout=240)
    kept = [l.split("kept ", 1)[1].strip() for l in p.stderr.splitlines() if "colony run: kept " in l]
    logs = ""
    if kept:
        for name in sorted(os.listdir(kept[0])):
            if name.endswith(".log") and name.startswith("worker"):
                with open(os.path.join(kept[0], name)) as f:
                    logs += f.read()
        shutil.rmtree(kept[0], ignore_errors=True)
    return p, logs, ref.stdout


def case_cluster(e):
    p, logs, text = run_cluster(e)
    e.check(p.returncode == 0, "colony run -m hf:REPO:FILE --workers 2 runs", p.stderr[-3000:])
    e.check(p.stdout.strip() and text.strip() in p.stdout, "with one node's text", p.stdout + "|" + text)
    gets = [r for r in e.entries("storage") if r["method"] == "GET"]
    size = os.path.getsize(e.source())
    whole = [r for r in gets if r["range"] is None]
    ranges = [r for r in gets if r["range"]]
    e.check(len(whole) == 1 and whole[0]["sent"] == size, "the coordinator downloads the model once", str(whole))
    e.check(len([r for r in ranges if r["range"] == "bytes=0-65535"]) == 2,
            "each worker fetches the GGUF header by a Range request", str(ranges))
    e.check(ranges and all(r["status"] == 206 and r["sent"] < size for r in ranges),
            "and only byte ranges besides", str(ranges))
    e.check(logs.count("shard built from the hub") == 2, "both workers built their shards from the hub", logs[-3000:])
    e.check("fetching the shard" not in logs, "neither fell back to the coordinator", logs[-3000:])


def case_cluster_fallback(e):
    # a byte flipped in Range answers only: the coordinator's whole download is
    # intact, each worker's shard from the hub fails its hash
    p, logs, text = run_cluster(e, "--corrupt-ranges-at", "700000")
    e.check(p.returncode == 0, "colony run runs when a shard from the hub is corrupt", p.stderr[-3000:])
    e.check(p.stdout.strip() and text.strip() in p.stdout, "with one node's text", p.stdout + "|" + text)
    e.check("is not the coordinator's" in logs and "fetching the shard of layers" in logs,
            "the worker whose shard failed its hash asks the coordinator", logs[-3000:])


def case_model_dir(e):
    models = os.path.join(e.tmp, "models")
    os.makedirs(models)
    shutil.copy(e.source(), models)
    p, logs, text = run_cluster(e, model=e.source(), extra=("--model-dir", models))
    e.check(p.returncode == 0, "colony run --model-dir runs", p.stderr[-3000:])
    e.check(p.stdout.strip() and text.strip() in p.stdout, "with one node's text", p.stdout + "|" + text)
    e.check(logs.count("shard built from a local model file") == 2,
            "both workers cut their shards from the local model file", logs[-3000:])
    e.check("fetching the shard" not in logs, "and asked the coordinator for none", logs[-3000:])
    with open(os.path.join(models, F32 + ".sha256")) as f:
        e.check(f.read().split()[0] == sha256(e.source()), "the file's hash is recorded beside it")
    empty = os.path.join(e.tmp, "empty")
    os.makedirs(empty)
    p, logs, text = run_cluster(e, model=e.source(), extra=("--model-dir", empty))
    e.check(p.returncode == 0 and text.strip() in p.stdout, "a directory without the model still works",
            p.stderr[-3000:])
    e.check(logs.count("no model file with SHA-256") == 2 and logs.count("fetching the shard") == 2,
            "the workers say so and ask the coordinator", logs[-3000:])


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    if len(sys.argv) != 4 or (sys.argv[3] not in CASES and sys.argv[3] != "all"):
        print(__doc__ + "\ncases: " + " ".join(CASES), file=sys.stderr)
        return 2
    colony, models, case = sys.argv[1:]
    failures = []
    for name in (CASES if case == "all" else [case]):
        e = Env(colony, models)
        print("== " + name)
        try:
            CASES[name](e)
        finally:
            e.stop()
        failures += e.failures
        if not e.failures:
            shutil.rmtree(e.tmp, ignore_errors=True)
        else:
            print("kept " + e.tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
