#!/usr/bin/env python3
"""A mixed cluster: an x86-64 coordinator and x86-64 worker with an aarch64
worker (the cross build, run by qemu-user) in one pipeline. Its greedy text
must equal one x86-64 node's (`colony generate --temp 0`), and so must the
aarch64 build's own single-node text. Run by scripts/test-aarch64.sh.

  mixed_cluster.py --x86 build/bin/colony --aarch64 build-aarch64/bin/colony
                   --qemu-cpu cortex-a76 --models ../shared/models --types f32 q8_0

Exit 0 when every type matches; otherwise prints what differed and exits 1.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

PROMPT = "Once upon a time"
N_TOKENS = 48


def qemu():
    for name in ("qemu-aarch64-static", "qemu-aarch64"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("mixed_cluster: qemu-aarch64 is not installed (scripts/build-aarch64.sh --deps-only)")


def generate(cmd, model):
    r = subprocess.run(cmd + ["generate", "-m", model, "-p", PROMPT, "-n", str(N_TOKENS),
                              "--temp", "0", "-t", "1"],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} generate failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def http(port, path, body=None, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return 0, {}


def wait(pred, timeout_s, procs):
    end = time.time() + timeout_s
    while time.time() < end:
        if pred():
            return True
        if any(p.poll() is not None for p in procs):
            return False
        time.sleep(0.5)
    return False


def run_cluster(x86, arm, model, work):
    """Greedy text of the mixed cluster and the nodes' arch and layers."""
    ready = os.path.join(work, "ready.json")
    procs = []

    def start(cmd, name):
        out = open(os.path.join(work, name + ".log"), "w")
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))

    def logs():
        text = ""
        for name in ("serve", "join-x86", "join-aarch64"):
            path = os.path.join(work, name + ".log")
            if os.path.exists(path):
                text += f"--- {name} ---\n" + open(path).read()[-3000:]
        return text

    try:
        start(x86 + ["serve", "-m", model, "--host", "127.0.0.1", "--port", "0", "--api-port", "0",
                     "--workers-expected", "2", "--planner", "static", "--config-dir",
                     os.path.join(work, "serve-config"), "--cache-dir",
                     os.path.join(work, "serve-cache"), "--ready-file", ready, "-t", "1",
                     "--no-beacon"], "serve")
        if not wait(lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 60, procs):
            raise RuntimeError("colony serve did not start\n" + logs())
        time.sleep(0.2)
        info = json.load(open(ready))
        for name, cmd in (("join-x86", x86), ("join-aarch64", arm)):
            start(cmd + ["join", "--coordinator", f"127.0.0.1:{info['control_port']}",
                         "--token", info["token"], "--data-host", "127.0.0.1", "-t", "1",
                         "--name", name, "--config-dir", os.path.join(work, name + "-config"),
                         "--cache-dir", os.path.join(work, name + "-cache")], name)
        port = info["api_port"]
        if not wait(lambda: http(port, "/health")[1].get("status") == "ok", 600, procs):
            raise RuntimeError("the cluster did not become healthy\n" + logs())
        status, body = http(port, "/v1/completions",
                            {"prompt": PROMPT, "max_tokens": N_TOKENS, "temperature": 0})
        if status != 200:
            raise RuntimeError(f"completion: HTTP {status} {body}\n" + logs())
        _, cluster = http(port, "/v1/cluster")
        return PROMPT + body["choices"][0]["text"] + "\n", cluster, logs()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def stages_by_arch(cluster):
    """{node name: (arch, layers)} of the nodes that hold layers."""
    out = {}
    for n in cluster.get("nodes", []):
        layers = n.get("layers") or n.get("layer_range")
        out[n.get("name", "?")] = (n.get("arch") or "?", layers)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x86", required=True)
    ap.add_argument("--aarch64", required=True)
    ap.add_argument("--qemu-cpu", default="max")
    ap.add_argument("--models", required=True)
    ap.add_argument("--types", nargs="+", default=["f32"])
    a = ap.parse_args()
    x86 = [os.path.abspath(a.x86)]
    arm = [qemu(), "-cpu", a.qemu_cpu, os.path.abspath(a.aarch64)]
    failures = []
    for t in a.types:
        model = os.path.abspath(os.path.join(a.models, f"stories260K-{t}.gguf"))
        t0 = time.time()
        ref = generate(x86, model)
        arm_one = generate(arm, model)
        if arm_one != ref:
            failures.append(f"{t}: aarch64 single node differs from x86-64:\n"
                            f"  x86-64:  {ref!r}\n  aarch64: {arm_one!r}")
        work = tempfile.mkdtemp(prefix=f"colony-mixed-{t}-")
        try:
            text, cluster, logs = run_cluster(x86, arm, model, work)
        except RuntimeError as e:
            failures.append(f"{t}: {e}")
            continue
        finally:
            shutil.rmtree(work, ignore_errors=True)
        nodes = stages_by_arch(cluster)
        arch, layers = nodes.get("join-aarch64", ("?", None))
        if arch != "aarch64" or not layers or layers["last"] <= layers["first"]:
            failures.append(f"{t}: the aarch64 worker holds no layers, or /v1/cluster does not "
                            f"say it is aarch64: {nodes}")
        if text != ref:
            failures.append(f"{t}: mixed cluster differs from one x86-64 node:\n"
                            f"  x86-64 node: {ref!r}\n  cluster:     {text!r}\n{logs}")
        print(f"mixed_cluster: {t}: nodes {nodes}; {len(text.split())} words "
              f"{'equal' if text == ref else 'DIFFER'}; {time.time() - t0:.0f} s", flush=True)
    for f in failures:
        print("mixed_cluster: FAIL " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
