"""The network lab (docs/netlab.md) from Python: every call goes through
scripts/netlab/netlab-lib.sh, so the harness builds the same lab as the tests.

Lab(n, profile) brings up hosts 1..n on colony-netem with every link at the
profile; Lab.cmd(i, argv) is argv run in host i's namespace; counters() reads
colony-netem's per-direction counters ("show"), so bytes on the wire are
measured on the emulated links themselves.
"""

import os
import re
import subprocess
import time

from . import proc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NETLAB_LIB = os.path.join(REPO, "scripts", "netlab", "netlab-lib.sh")


class LabError(RuntimeError):
    """The lab could not be built or queried."""


def _bash(script, env, timeout=60):
    cmd = ["bash", "-c", f'source "{NETLAB_LIB}" && {script}']
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return r


def lab_env(lab_id, netem_bin):
    env = dict(os.environ)
    env["COLONY_NETLAB_ID"] = lab_id
    if netem_bin:
        env["COLONY_NETEM"] = netem_bin
    return env


def available(netem_bin=None):
    """(True, "") when this process can build a lab, else (False, why)."""
    r = _bash("netlab_available", lab_env("", netem_bin))
    return r.returncode == 0, r.stderr.strip()


def parse_profiles(text):
    """`colony-netem profiles` output -> {name: {delay_ms, jitter_ms, rate_mbit, loss_pct, ...}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        vals = {}
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            try:
                vals[k] = float(v)
            except ValueError as e:
                raise LabError(f"bad profile line: {line}") from e
        out[parts[0]] = vals
    return out


def profiles(netem_bin):
    """The link profiles that colony-netem knows, parsed."""
    r = subprocess.run([netem_bin, "profiles"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise LabError(f"{netem_bin} profiles failed: {r.stderr.strip()}")
    return parse_profiles(r.stdout)


_SHOW_RE = re.compile(r"^(\d+)->(\d+)\s+(.*)$")


def parse_counters(text):
    """colony-netem "show" output -> {(src, dst): {key: number}} (settings and counters)."""
    out = {}
    for line in text.splitlines():
        m = _SHOW_RE.match(line.strip())
        if not m:
            continue
        vals = {}
        for kv in m.group(3).split():
            k, _, v = kv.partition("=")
            try:
                vals[k] = float(v) if "." in v else int(v)
            except ValueError:
                continue
        out[(int(m.group(1)), int(m.group(2)))] = vals
    return out


def counters_delta(before, after, key="bytes_out"):
    """{(src, dst): after[key] - before[key]} over the directions of `after`."""
    return {d: after[d].get(key, 0) - before.get(d, {}).get(key, 0) for d in after}


class Lab:
    """A running lab; use as a context manager (down() on exit, always)."""

    def __init__(self, n_hosts, profile, lab_id="bench", netem_bin=None, seed=None):
        self.n = n_hosts
        self.profile = profile
        self.lab_id = lab_id
        self.env = lab_env(lab_id, netem_bin)
        args = f"{n_hosts} --profile {profile}" + (f" --seed {seed}" if seed is not None else "")
        for attempt in range(3):  # a lab very rarely fails to start on a busy machine; try again
            _bash("netlab_down", self.env)  # leftovers of an interrupted run of this lab id
            r = _bash(f"netlab_up {args}", self.env)
            if r.returncode == 0:
                break
            time.sleep(1)
        else:
            raise LabError(f"netlab_up {args} failed 3 times, last: {r.stderr.strip()}")
        self._ns = {}
        for i in range(1, n_hosts + 1):
            r = _bash(f"netlab_ns {i}", self.env)
            if r.returncode != 0:
                raise LabError(r.stderr.strip())
            self._ns[i] = r.stdout.strip()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def down(self):
        _bash("netlab_down", self.env)

    def addr(self, i):
        """Host i's IPv4 address (10.213.0.i)."""
        return f"10.213.0.{i}"

    def ns(self, i):
        return self._ns[i]

    def cmd(self, i, argv):
        """argv run in host i's network namespace."""
        return ["ip", "netns", "exec", self._ns[i]] + [str(a) for a in argv]

    def counters(self):
        r = _bash("netlab_ctl show", self.env)
        if r.returncode != 0:
            raise LabError(f"netlab_ctl show failed: {r.stderr.strip()}")
        return parse_counters(r.stdout)

    def set_link(self, a, b, *opts):
        r = _bash("netlab_set_link " + " ".join([str(a), str(b)] + [str(o) for o in opts]), self.env)
        if r.returncode != 0:
            raise LabError(r.stderr.strip())

    def wait_port(self, host, port, timeout=30.0):
        """Waits until a TCP port accepts connections in the lab (probed from
        host 1's namespace, or host 2's for host 1); raises LabError."""
        src = 2 if host == 1 and self.n >= 2 else 1
        probe = ("import socket,sys,time\n"
                 "d=time.time()+float(sys.argv[3])\n"
                 "while time.time()<d:\n"
                 "  try:\n"
                 "    socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1).close(); sys.exit(0)\n"
                 "  except OSError: time.sleep(0.05)\n"
                 "sys.exit(1)\n")
        r = proc.run(self.cmd(src, ["python3", "-c", probe, self.addr(host), port, timeout]), timeout + 10)
        if r.rc != 0:
            raise LabError(f"{self.addr(host)}:{port} did not accept connections within {timeout} s")
