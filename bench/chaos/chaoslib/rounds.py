"""One round of the chaos run: a batch of requests sent K at a time while one
fault is injected, and the fault actions themselves.

Round sends its requests on K threads (each inside the API's network
namespace, see client.py), counts what was sent and which streams have
text, and lets the driver wait for the fault's phase: "prefill" (the first
request sent, plus delay_ms), "decode" (a streamed request holds a few
tokens). inject() then runs the fault on the driver's thread and blocks for
its duration (restarts and restores happen inside it, in finally blocks, so
an interrupted run leaves no stopped process or cut link behind).
"""

import signal
import threading
import time

from . import client
from .cluster import HOST_OF

DECODE_EVENTS = 4  # text events a stream must have received before a "decode" fault


class Round:
    def __init__(self, ep, requests, concurrency, timeout_s, spread_s=0.0):
        self.ep, self.requests, self.timeout_s = ep, list(requests), timeout_s
        self.k = max(1, min(concurrency, len(self.requests)))
        n = len(self.requests)
        self.offsets = [spread_s * j / n for j in range(n)] if n else []
        self.records = {r["id"]: None for r in self.requests}
        self.sent, self.events = set(), {}
        self.cv = threading.Condition()
        self.next = 0
        self.threads = []
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        self.threads = [self.ep.spawn(self._worker) for _ in range(self.k)]
        return self

    def _take(self):
        with self.cv:
            if self.next >= len(self.requests):
                return None, None
            j = self.next
            self.next += 1
            return j, self.requests[j]

    def _worker(self):
        while True:
            j, req = self._take()
            if req is None:
                return
            wait = self.t0 + self.offsets[j] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self.cv:
                self.sent.add(req["id"])
                self.cv.notify_all()
            rec = client.complete(self.ep, req, self.timeout_s, progress=self._progress)
            with self.cv:
                self.records[req["id"]] = rec
                self.cv.notify_all()

    def _progress(self, rid, n_events):
        with self.cv:
            self.events[rid] = n_events
            if n_events == DECODE_EVENTS:
                self.cv.notify_all()

    def done_count(self):
        return sum(1 for r in self.records.values() if r is not None)

    def wait_phase(self, phase, delay_ms, timeout=15.0):
        """Blocks until the fault's moment: "start": the first request sent;
        "prefill": delay_ms after it; "decode": a stream has DECODE_EVENTS
        text events (a round without streams: 150 ms after the first send).
        Returns a note when the moment was not seen."""
        deadline = time.monotonic() + timeout
        streams = any(r["stream"] for r in self.requests)
        with self.cv:
            while not self.sent and time.monotonic() < deadline:
                self.cv.wait(0.05)
            if phase in ("start", "prefill") or not streams:
                pass
            else:
                while (not any(n >= DECODE_EVENTS for n in self.events.values())
                       and self.done_count() < len(self.requests) and time.monotonic() < deadline):
                    self.cv.wait(0.02)
                if not any(n >= DECODE_EVENTS for n in self.events.values()):
                    return "no stream was decoding: injected late"
        if phase == "prefill":
            time.sleep(delay_ms / 1e3)
        elif phase == "decode" and not streams:
            time.sleep(0.15)
        return ""

    def snapshot(self):
        """"R running, D decoding" at this moment (D: streams with text)."""
        with self.cv:
            running = [i for i in self.sent if self.records[i] is None]
            decoding = [i for i in running if self.events.get(i, 0) > 0]
        return f"{len(running)} running, {len(decoding)} streaming tokens"

    def wait_done(self, extra_s=30.0, on_batch=None):
        """Waits for every request (each has its own timeout; extra_s more
        for the harness), calling on_batch(done) each time another K
        finish. Returns the records in request order (None: never finished)."""
        deadline = time.monotonic() + self.timeout_s * (len(self.requests) / self.k + 1) + extra_s
        reported = 0
        with self.cv:
            while self.done_count() < len(self.requests) and time.monotonic() < deadline:
                self.cv.wait(0.5)
                d = self.done_count()
                if on_batch and d - reported >= self.k and d < len(self.requests):
                    reported = d
                    on_batch(d)
        return [self.records[r["id"]] for r in self.requests]


def _sleep(s):
    if s > 0:
        time.sleep(s)


def _wait_recovering(cl, t_ms, timeout_s):
    """Polls /v1/cluster until a recovery detected after t_ms shows up (the
    moment for a second kill). Returns (seen, resumed_already)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = cl.state()
        rec = (st or {}).get("recoveries")
        if rec is None and st is not None:
            return False, False  # the binary reports no recoveries: the caller waits a fixed time
        for e in rec or []:
            if e.get("detected_unix_ms", 0) >= t_ms - 100:
                return True, bool(e.get("resumed_unix_ms"))
        time.sleep(0.05)
    return False, False


def inject(cl, fault, names, hb_ms, log):
    """Runs the fault (blocking for its duration) against the resolved
    worker names {"target": name, "target2": name}. Returns {t_inject_ms,
    t_end_ms (the signal, restore or restart that ended it), actions: [str],
    notes: [str]}. A kill's window ends at the kill: what runs after it is
    the recovery's doing."""
    kind, name = fault["kind"], names.get("target")
    out = {"t_inject_ms": None, "t_end_ms": None, "actions": [], "notes": []}

    def act(text):
        out["actions"].append(f"+{(client.now_ms() - out['t_inject_ms']) / 1e3:.2f}s {text}")

    def mark(text):
        out["t_inject_ms"] = client.now_ms()
        act(text)

    if kind == "none":
        mark("no fault")
    elif kind in ("kill", "kill-restart"):
        mark(f"SIGKILL {name}")
        if not cl.kill(name):
            out["notes"].append(f"{name} was not running")
        _sleep(fault["restart_after_s"])
        cl.restart(name)
        act(f"restart {name}")
    elif kind == "stop":
        mark(f"SIGSTOP {name}")
        try:
            cl.signal(name, signal.SIGSTOP)
            _sleep(fault["duration_s"])
        finally:
            cl.signal(name, signal.SIGCONT)
            act(f"SIGCONT {name}")
    elif kind == "double-kill":
        name2 = names.get("target2")
        mark(f"SIGKILL {name}")
        cl.kill(name)
        seen, resumed = _wait_recovering(cl, out["t_inject_ms"], hb_ms / 1e3 + 3.0)
        if not seen:
            # no recovery report: kill when the coordinator has just noticed the loss
            _sleep(out["t_inject_ms"] / 1e3 + hb_ms / 1e3 + 0.3 - time.time())
            out["notes"].append("no recovery report: second kill at heartbeat timeout + 0.3 s")
        elif resumed:
            out["notes"].append("the recovery had already resumed at the second kill")
        if name2:
            cl.kill(name2)
            act(f"SIGKILL {name2} (during recovery)")
        _sleep(fault["restart_after_s"])
        for n in (name, name2):
            if n:
                cl.restart(n)
                act(f"restart {n}")
    elif kind in ("cut", "oneway-cut", "flap", "cut-workers"):
        if kind == "cut-workers":
            a, b = HOST_OF[names["target"]], HOST_OF[names["target2"]]
        else:
            a, b = HOST_OF["coordinator"], HOST_OF[name]
        oneway = kind == "oneway-cut"
        arrow = "->" if oneway else "<->"
        mark(f"cut host {a} {arrow} host {b}")
        try:
            cl.lab.cut(a, b, oneway=oneway)
            _sleep(fault["duration_s"])
        finally:
            cl.lab.restore(a, b, oneway=oneway)
            act(f"restore host {a} {arrow} host {b}")
    elif kind == "loss":
        mark("10% loss on every link")
        try:
            cl.lab.set_all("loopback", "--loss-pct", 10)
            _sleep(fault["duration_s"])
        finally:
            cl.lab.set_all("loopback")
            act("links back to loopback")
    else:
        raise ValueError(f"unknown fault kind {kind}")
    if kind in ("stop", "cut", "oneway-cut", "flap", "cut-workers", "loss"):
        out["t_end_ms"] = client.now_ms()
    log(f"  fault {fault['index']}: " + "; ".join(out["actions"]))
    return out
