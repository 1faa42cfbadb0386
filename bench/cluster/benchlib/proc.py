"""Processes for the benchmark: every run has a timeout, is reaped with
wait4(2), and has its peak resident set measured.

Peak RSS: a sampler thread reads VmHWM (the high-water mark of the resident
set, KiB) from /proc/PID/status every 20 ms while the process runs, and once
more right before stop() signals it. VmHWM belongs to the address space that
exec created, so it is the program's own peak. wait4's ru_maxrss is NOT used:
Linux carries the parent's high-water mark across fork + exec into
ru_maxrss, so every child of this Python driver would read >= the driver's
RSS (~20 MiB). `ip netns exec` and the cgroup wrapper exec in place (same
pid), so the sampled pid is the measured program once it has started; the
short-lived ip/sh images before it are a few MiB. A process that grows in its
last 20 ms is under-read by that growth; long runs peak at load anyway.

Memory limits for the "too big for one device" scenario use a memory cgroup:
v2 (memory.max, memory.peak) when /sys/fs/cgroup has the memory controller,
else v1 (/sys/fs/cgroup/memory: memory.limit_in_bytes, memory.max_usage_in_bytes).
"""

import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time


class ProcError(RuntimeError):
    """A command failed, timed out or could not start."""


class Result:
    """Outcome of a finished process: exit code (negative = killed by that
    signal), captured output, wall time (s), peak RSS (KiB) and timed_out."""

    def __init__(self, cmd, rc, stdout, stderr, wall_s, maxrss_kib, timed_out):
        # maxrss_kib: the sampled VmHWM peak (see the module doc)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.wall_s = wall_s
        self.maxrss_kib = maxrss_kib
        self.timed_out = timed_out

    def check(self, what):
        """Raises ProcError naming `what` unless the process exited with 0."""
        if self.timed_out:
            raise ProcError(f"{what}: timed out after {self.wall_s:.0f} s: {cmdline(self.cmd)}")
        if self.rc != 0:
            tail = (self.stderr or "").strip().splitlines()[-5:]
            raise ProcError(f"{what}: exit code {self.rc}: {cmdline(self.cmd)}\n  " + "\n  ".join(tail))
        return self


def cmdline(cmd):
    """A shell-quoted command line, for logs and the report."""
    return " ".join(shlex.quote(str(c)) for c in cmd)


def _reap(pid, deadline):
    """wait4 with a deadline: (status, rusage) or None when the deadline passed."""
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return status, ru
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class Process:
    """A started process in its own session (so a timeout kills its whole
    group); output goes to files. stop()/wait() reap it with wait4."""

    def __init__(self, cmd, env=None, cwd=None, log_prefix=None):
        self.cmd = [str(c) for c in cmd]
        self._temp = not log_prefix
        if self._temp:
            fd, log_prefix = tempfile.mkstemp(prefix="colony-bench-proc-")
            os.close(fd)
            os.unlink(log_prefix)
        self._paths = (log_prefix + ".out", log_prefix + ".err")
        self._out = open(self._paths[0], "w+")
        self._err = open(self._paths[1], "w+")
        self.t0 = time.monotonic()
        try:
            self._p = subprocess.Popen(self.cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                       env=env, cwd=cwd, start_new_session=True)
        except OSError as e:
            raise ProcError(f"cannot start {cmdline(self.cmd)}: {e}") from e
        self.pid = self._p.pid
        self.result = None
        self.peak_kib = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    def _sample_once(self):
        v = read_vmhwm_kib(self.pid)
        if v > self.peak_kib:
            self.peak_kib = v

    def _sample_loop(self):
        while self._sampling:
            self._sample_once()
            time.sleep(0.02)

    def alive(self):
        if self.result is not None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            return state != "Z"  # a zombie has exited and waits to be reaped
        except OSError:
            return False

    def wait(self, timeout=None):
        """Waits up to timeout seconds (None: forever); on timeout kills the
        group (TERM, then KILL after 3 s). Returns a Result."""
        if self.result is not None:
            return self.result
        deadline = None if timeout is None else time.monotonic() + timeout
        got = _reap(self.pid, deadline)
        timed_out = got is None
        if timed_out:
            got = self._terminate()
        return self._finish(got, timed_out)

    def stop(self, sig=signal.SIGTERM, grace=5.0):
        """Sends sig to the group, waits grace seconds, then KILL. Returns a Result."""
        if self.result is not None:
            return self.result
        self._sample_once()
        _kill_group(self.pid, sig)
        got = _reap(self.pid, time.monotonic() + grace)
        if got is None:
            _kill_group(self.pid, signal.SIGKILL)
            got = _reap(self.pid, None)
        return self._finish(got, False)

    def _terminate(self):
        _kill_group(self.pid, signal.SIGTERM)
        got = _reap(self.pid, time.monotonic() + 3)
        if got is None:
            _kill_group(self.pid, signal.SIGKILL)
            got = _reap(self.pid, None)
        return got

    def _finish(self, got, timed_out):
        status, _ = got
        self._sampling = False
        self._sampler.join()
        self._p.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        outs = []
        for f, path in zip((self._out, self._err), self._paths):
            f.close()
            with open(path, errors="replace") as r:
                outs.append(r.read())
            if self._temp:
                os.unlink(path)
        self.result = Result(self.cmd, self._p.returncode, outs[0], outs[1], time.monotonic() - self.t0,
                             self.peak_kib, timed_out)
        return self.result

    def output_so_far(self):
        """stdout and stderr written so far (the process may still run). Read
        through a new open file: seeking the shared descriptor would move the
        child's write offset."""
        if self.result is not None:
            return [self.result.stdout, self.result.stderr]
        texts = []
        for path in self._paths:
            with open(path, errors="replace") as r:
                texts.append(r.read())
        return texts


def read_vmhwm_kib(pid):
    """VmHWM of a running process in KiB; 0 when it has exited or has no memory."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run(cmd, timeout, env=None, cwd=None):
    """Runs cmd to completion (or timeout seconds) and returns its Result."""
    return Process(cmd, env=env, cwd=cwd).wait(timeout)


class MemoryCgroup:
    """A memory cgroup with a hard limit, for one process tree. wrap(cmd)
    returns a command that joins the group, then execs cmd. Remove with
    remove() (the processes must have exited)."""

    V2_ROOT = "/sys/fs/cgroup"
    V1_ROOT = "/sys/fs/cgroup/memory"

    def __init__(self, name, limit_bytes):
        self.limit_bytes = int(limit_bytes)
        self.version, root = self.detect()
        if self.version is None:
            raise ProcError("no writable memory cgroup (neither v2 with the memory controller nor v1)")
        parent = os.path.join(root, "colony-bench")
        os.makedirs(parent, exist_ok=True)
        if self.version == 2:
            _enable_v2_memory(root, parent)
        self.path = os.path.join(parent, name)
        if os.path.isdir(self.path):
            os.rmdir(self.path)
        os.mkdir(self.path)
        if self.version == 2:
            self._write("memory.max", self.limit_bytes)
            if os.path.exists(os.path.join(self.path, "memory.swap.max")):
                self._write("memory.swap.max", 0)
        else:
            self._write("memory.limit_in_bytes", self.limit_bytes)

    @classmethod
    def detect(cls):
        """(2, root), (1, root) or (None, None): which memory cgroup can be used."""
        ctrl = os.path.join(cls.V2_ROOT, "cgroup.controllers")
        try:
            with open(ctrl) as f:
                if "memory" in f.read().split() and os.access(cls.V2_ROOT, os.W_OK):
                    return 2, cls.V2_ROOT
        except OSError:
            pass
        if os.path.exists(os.path.join(cls.V1_ROOT, "memory.limit_in_bytes")) and os.access(cls.V1_ROOT, os.W_OK):
            return 1, cls.V1_ROOT
        return None, None

    def _write(self, leaf, value):
        with open(os.path.join(self.path, leaf), "w") as f:
            f.write(str(value))

    def _read(self, leaf):
        try:
            with open(os.path.join(self.path, leaf)) as f:
                return f.read()
        except OSError:
            return ""

    def wrap(self, cmd):
        procs = os.path.join(self.path, "cgroup.procs")
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + [str(c) for c in cmd]

    def peak_bytes(self):
        """Peak memory charged to the group (page cache included), 0 if unknown."""
        leaf = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = self._read(leaf).strip()
        return int(text) if text.isdigit() else 0

    def oom_kills(self):
        """OOM kills in the group (0 when the kernel does not count them)."""
        leaf = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in self._read(leaf).splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill" and v.strip().isdigit():
                return int(v)
        return 0

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def _enable_v2_memory(root, parent):
    for d in (root, parent):
        try:
            with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                f.write("+memory")
        except OSError:
            pass
