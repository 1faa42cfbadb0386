"""The cluster under test: one `colony serve` (the coordinator, stage 0, the
API) and three `colony join` workers w1, w2, w3 (w3 joins last and is the
spare), on loopback or in the network lab (host 1 the coordinator, hosts
2..4 the workers). Each worker keeps its config dir (its key) and shard
cache, so a restarted worker is the same node again.

Interface of colony it relies on (src/cli/cmd_serve.cpp, cmd_join.cpp):
  colony serve -m M --split R --wire-type f32 -ctk f32 -ctv f32 --planner static --host H --port P
               --api-port A --ready-file F (JSON: api_port, control_port, token)
               --config-dir D --cache-dir D --name coordinator --no-beacon
               [--no-recovery, when `colony serve --help` lists it]
  colony join --coordinator H:P --token T --name wN --config-dir D --cache-dir D
              --data-host H -ctk f32 -ctv f32
  GET /health (200 when serving), GET /v1/cluster (nodes: name, role, stage,
  state; "recoveries" when the binary has recovery).

Every process runs in its own session (benchlib.proc.Process); stop_all()
continues stopped ones and ends every process this object started.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cluster"))
from benchlib import lab as labmod  # noqa: E402
from benchlib import proc  # noqa: E402

from .client import Endpoint  # noqa: E402

WORKERS = ("w1", "w2", "w3")
HOST_OF = {"coordinator": 1, "w1": 2, "w2": 3, "w3": 4}
CONTROL_PORT, API_PORT = 7411, 8080


class ClusterError(RuntimeError):
    """The cluster could not be started or answered nothing."""


class ChaosLab(labmod.Lab):
    """The network lab with cuts (benchlib's Lab sets links only). Cuts and
    restores go straight to colony-netem's control socket (one request line
    per connection, the reply ending in "ok" or "error: ..."; docs/netlab.md),
    so that a cut takes effect within a millisecond of the call, not after a
    shell has started."""

    def ctl(self, line):
        path = f"/run/colony-netlab/{self.lab_id}/ctl.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(line.encode() + b"\n")
            reply = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        last = reply.decode(errors="replace").strip().splitlines()[-1:] or ["(no reply)"]
        if last[0] != "ok":
            raise labmod.LabError(f"colony-netem {line}: {last[0]}")

    def _cut_restore(self, op, a, b, oneway):
        self.ctl(f"{op} {a} {b}")
        if not oneway:
            self.ctl(f"{op} {b} {a}")

    def cut(self, a, b, oneway=False):
        self._cut_restore("cut", a, b, oneway)

    def restore(self, a, b, oneway=False):
        self._cut_restore("restore", a, b, oneway)

    def set_all(self, *opts):
        self.set_link("all", "all", *opts)


def supports_flag(colony, sub, flag):
    """Whether `colony SUB --help` lists flag."""
    try:
        r = subprocess.run([colony, sub, "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return flag in (r.stdout + r.stderr)


def stage_count(split):
    return len(split.split(","))


class Cluster:
    """Start with start(); always stop_all() (chaos.py does it in finally)."""

    def __init__(self, colony, model, out_dir, split, parallel=8, ctx=4096, netlab=False, lab_id="chaos",
                 netem=None, no_recovery=False, kv_type="f32", serve_extra=(), join_extra=()):
        self.colony, self.model, self.out, self.split = colony, model, out_dir, split
        self.stages = stage_count(split)
        self.parallel, self.ctx = parallel, ctx
        self.netlab, self.lab_id, self.netem = netlab, lab_id, netem
        self.no_recovery = no_recovery
        self.serve_extra = [str(a) for a in serve_extra]
        kv = ["-ctk", kv_type, "-ctv", kv_type] if kv_type else []
        self.serve_extra = kv + self.serve_extra
        self.join_extra = kv + [str(a) for a in join_extra]
        self.lab = None
        self.serve = None
        self.procs = {}    # worker name -> proc.Process (the latest start)
        self.starts = {}   # worker name -> how many times started
        self.ended = []    # processes already reaped (killed workers)
        self.info = {}
        self.ep = None
        self.notes = []

    # ------------------------------------------------------------- processes

    def _cmd(self, name, argv):
        return self.lab.cmd(HOST_OF[name], argv) if self.lab else argv

    def _addr(self, name):
        return self.lab.addr(HOST_OF[name]) if self.lab else "127.0.0.1"

    def _dir(self, name):
        return os.path.join(self.out, "nodes", name)

    def serve_argv(self):
        d = self._dir("coordinator")
        argv = [self.colony, "serve", "-m", self.model, "--split", self.split, "--wire-type", "f32",
                "--planner", "static", "--name", "coordinator", "--no-beacon", "-t", 1,
                "--parallel", self.parallel, "-c", self.ctx,
                "--host", self._addr("coordinator"), "--port", CONTROL_PORT if self.lab else 0,
                "--api-port", API_PORT if self.lab else 0,
                "--config-dir", os.path.join(d, "config"), "--cache-dir", os.path.join(d, "cache"),
                "--ready-file", os.path.join(d, "ready.json")]
        if self.no_recovery:
            if supports_flag(self.colony, "serve", "--no-recovery"):
                argv.append("--no-recovery")
            else:
                self.notes.append("colony serve has no --no-recovery flag: it runs without recovery anyway")
        return [str(a) for a in argv + self.serve_extra]

    def join_argv(self, name):
        d = self._dir(name)
        return [str(a) for a in (
            self.colony, "join", "--coordinator", f"{self._addr('coordinator')}:{self.info['control_port']}",
            "--token", self.info["token"], "--name", name, "-t", 1, "--data-host", self._addr(name),
            "--config-dir", os.path.join(d, "config"), "--cache-dir", os.path.join(d, "cache"))] + self.join_extra

    def _log(self, name):
        n = self.starts.get(name, 0)
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        return os.path.join(self.out, "logs", f"{name}-{n}")

    def start(self, ready_timeout=60.0):
        """Lab (optional), coordinator, w1 and w2 (the stages, one at a
        time so w1 takes stage 1), then w3 once the plan is ready (the spare)."""
        if self.netlab:
            self.lab = ChaosLab(4, "loopback", lab_id=self.lab_id, netem_bin=self.netem)
        argv = self.serve_argv()
        ready = argv[argv.index("--ready-file") + 1]
        os.makedirs(os.path.dirname(ready), exist_ok=True)
        if os.path.exists(ready):
            os.unlink(ready)
        self.starts["coordinator"] = 1
        try:
            self.serve = proc.Process(self._cmd("coordinator", argv), log_prefix=self._log("coordinator"))
        except proc.ProcError as e:
            raise ClusterError(str(e)) from e
        deadline = time.monotonic() + ready_timeout
        while not os.path.exists(ready):
            if not self.serve.alive() or time.monotonic() > deadline:
                raise ClusterError("colony serve did not start: " + self.serve.output_so_far()[1][-600:])
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written whole, but give a partial write a moment
        with open(ready) as f:
            self.info = json.load(f)
        netns = self.lab.ns(1) if self.lab else None
        self.ep = Endpoint(self._addr("coordinator"), self.info["api_port"], netns)
        for name in WORKERS:
            if name == "w3" and not self.wait_ready(deadline - time.monotonic(), want_spare=False)[0]:
                raise ClusterError("the cluster did not become ready with w1 and w2: " + self.describe())
            self.start_worker(name)
            if not self._wait_member(name, deadline):
                raise ClusterError(f"{name} did not join: " + self.describe())
        ok, why = self.wait_ready(deadline - time.monotonic())
        if not ok:
            raise ClusterError("the cluster did not become ready: " + why)

    def start_worker(self, name):
        self.starts[name] = self.starts.get(name, 0) + 1
        try:
            self.procs[name] = proc.Process(self._cmd(name, self.join_argv(name)), log_prefix=self._log(name))
        except proc.ProcError as e:
            raise ClusterError(str(e)) from e
        return self.procs[name]

    def _wait_member(self, name, deadline):
        while time.monotonic() < deadline:
            st = self.state()
            if st and name in st["members"]:
                return True
            time.sleep(0.1)
        return False

    def signal(self, name, sig):
        """Sends sig to the worker's process group; False when it has exited."""
        p = self.procs.get(name)
        if p is None or not p.alive():
            return False
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self, name):
        ok = self.signal(name, signal.SIGKILL)
        if name in self.procs:
            self.ended.append(self.procs[name].wait(10))
        return ok

    def restart(self, name):
        """Starts the worker again with the same config and cache dirs (the
        same key); kills the old process first if it still runs."""
        old = self.procs.get(name)
        if old is not None and old.alive():
            self.signal(name, signal.SIGCONT)
            self.kill(name)
        return self.start_worker(name)

    def check_processes(self):
        """Notes for workers that exited on their own (and restarts them);
        raises ClusterError when the coordinator is gone."""
        if self.serve is None or not self.serve.alive():
            err = self.serve.output_so_far()[1][-600:] if self.serve else ""
            raise ClusterError("the coordinator exited: " + err)
        notes = []
        for name, p in self.procs.items():
            if not p.alive():
                r = p.wait(5)
                notes.append(f"{name} had exited by itself ({r.rc}); restarted")
                self.start_worker(name)
        return notes

    def stop_all(self):
        """Continues and ends every process started here, then the lab."""
        everyone = list(self.procs.values()) + ([self.serve] if self.serve else [])
        for p in everyone:
            if p.alive():
                try:
                    os.killpg(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        for p in everyone:
            try:
                p.stop(signal.SIGTERM, grace=3.0)
            except Exception:  # noqa: BLE001 (keep stopping the others)
                pass
        if self.lab:
            self.lab.down()
            self.lab = None

    # ------------------------------------------------------------- state

    def state(self):
        """The cluster as GET /v1/cluster shows it: {ready, stages {stage:
        name}, spares, members (not lost), lost, recoveries (None when the
        binary reports none)} or None when the API does not answer."""
        status, body = self.ep.get_json("/v1/cluster")
        if status != 200 or not isinstance(body, dict):
            return None
        stages, spares, members, lost = {}, [], [], []
        for n in body.get("nodes") or []:
            if n.get("role") != "worker":
                continue
            if n.get("state") == "lost":
                lost.append(n.get("name"))
                continue
            members.append(n.get("name"))
            if n.get("state") == "spare":
                spares.append(n.get("name"))
            elif isinstance(n.get("stage"), int) and n["stage"] >= 1 and n.get("state") == "ready":
                stages[n["stage"]] = n.get("name")
        rec = body.get("recoveries")
        if rec is None and isinstance(body.get("pipeline"), dict):
            rec = body["pipeline"].get("recoveries")
        pipeline = body.get("pipeline") or {}
        return {"ready": bool(pipeline.get("ready")) and not pipeline.get("replanning"),
                "epoch": pipeline.get("epoch"), "stages": stages, "spares": sorted(spares),
                "members": sorted(members), "lost": sorted(lost), "recoveries": rec}

    def describe(self):
        st = self.state()
        if st is None:
            return "the API does not answer"
        stages = ", ".join(f"stage {k}: {v}" for k, v in sorted(st["stages"].items()))
        return (f"ready={st['ready']} {stages or 'no worker stages'}; spares {st['spares'] or 'none'}; "
                f"lost {st['lost'] or 'none'}")

    def wait_ready(self, timeout, want_spare=True):
        """Waits until /health is 200, every worker stage is ready and (with
        want_spare) a spare is there too, the same in two looks 0.3 s apart
        (a re-plan may be about to start). (ok, description)."""
        deadline = time.monotonic() + max(timeout, 0.5)
        last = None
        while True:
            health, _ = self.ep.get_json("/health")
            st = self.state()
            whole = (health == 200 and st and st["ready"] and len(st["stages"]) == self.stages - 1
                     and (st["spares"] or not want_spare))
            seen = (st["epoch"], st["stages"], st["spares"]) if whole else None
            if seen is not None and seen == last:
                return True, self.describe()
            last = seen
            if time.monotonic() > deadline:
                return False, f"/health {health}; " + self.describe()
            time.sleep(0.3)

    def resolve(self, target, st):
        """A position ("first", "middle", "last", "spare") -> (worker name or
        None, what it is)."""
        if target == "spare":
            return (st["spares"][0], "spare") if st["spares"] else (None, "no spare")
        stage = {"first": 1, "middle": self.stages // 2, "last": self.stages - 1}.get(target)
        if stage is None:
            return None, f"unknown target {target}"
        name = st["stages"].get(stage)
        return name, f"stage {stage}" if name else f"no worker on stage {stage}"
