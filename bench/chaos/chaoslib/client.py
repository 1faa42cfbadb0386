"""The chaos harness's HTTP side: completion requests that record what a
client sees (status, text, every SSE event's arrival in unix ms, error
events, [DONE], finish_reason, usage), the verdict against a fault-free
reference, and GETs of /health and /v1/cluster.

In the network lab the API listens inside host 1's namespace, which the
driver's namespace cannot reach. Every HTTP call therefore runs on a thread
that first joins that namespace with setns(2) (CLONE_NEWNET): a thread's
network namespace is its own, so the driver's main thread, its processes and
its signals stay where they are. On loopback the threads join nothing.
"""

import ctypes
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cluster"))
from benchlib.openai import chunk_text, parse_sse  # noqa: E402

CLONE_NEWNET = 0x40000000


def now_ms():
    return time.time() * 1e3


def enter_netns(name):
    """Moves the calling thread into network namespace /run/netns/NAME."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Endpoint:
    """The API at host:port, reached from namespace `netns` (None: this one)."""

    def __init__(self, host, port, netns=None):
        self.host, self.port, self.netns = host, int(port), netns

    def spawn(self, fn, *args):
        """fn(*args) on a new daemon thread inside the namespace; returns the thread."""
        def body():
            if self.netns:
                enter_netns(self.netns)
            fn(*args)
        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t

    def call(self, fn, *args, timeout=30.0):
        """fn(*args) inside the namespace, waited for up to timeout s; its
        result, or None when it raised or did not finish."""
        box = {}

        def run():
            try:
                box["v"] = fn(*args)
            except Exception as e:  # noqa: BLE001 (reported as None; callers poll again)
                box["e"] = e
        self.spawn(run).join(timeout)
        return box.get("v")

    def get_json(self, path, timeout=5.0):
        """(status, parsed body or None); status 0 when unreachable."""
        def get():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                try:
                    return resp.status, json.loads(body)
                except ValueError:
                    return resp.status, None
            except (OSError, http.client.HTTPException):
                return 0, None
            finally:
                conn.close()
        return self.call(get, timeout=timeout + 2) or (0, None)


def request_body(req):
    body = {"prompt": req["prompt"], "max_tokens": req["max_tokens"], "temperature": req["temperature"],
            "ignore_eos": True, "stream": req["stream"]}
    if req["seed"] is not None:
        body["seed"] = req["seed"]
    if req["stream"]:
        body["stream_options"] = {"include_usage": True}
    return body


def complete(ep, req, timeout_s, progress=None):
    """Sends one request (on the calling thread, which must be in the
    namespace) and returns its record: id, status, error, text,
    finish_reason, completion_tokens, sent_ms, end_ms, events_ms (stream:
    arrival of every text event), done (stream: [DONE] seen). progress(id,
    n_text_events) is called after each text event."""
    rec = {"id": req["id"], "stream": req["stream"], "status": 0, "error": "", "text": "", "finish_reason": None,
           "completion_tokens": None, "sent_ms": now_ms(), "end_ms": None, "events_ms": [], "done": False}
    deadline = time.monotonic() + timeout_s
    # the socket timeout bounds each read; the deadline bounds the whole request
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=min(timeout_s, 60.0))
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(request_body(req)).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        rec["status"] = resp.status
        if resp.status != 200:
            rec["error"] = f"HTTP {resp.status}: {resp.read(600).decode(errors='replace')}"
        elif req["stream"]:
            _read_stream(resp, rec, deadline, progress)
        else:
            payload = json.loads(resp.read().decode())
            rec["text"] = chunk_text(payload)
            choices = payload.get("choices") or [{}]
            rec["finish_reason"] = choices[0].get("finish_reason")
            rec["completion_tokens"] = (payload.get("usage") or {}).get("completion_tokens")
    except (OSError, http.client.HTTPException, ValueError) as e:
        rec["error"] = rec["error"] or f"{type(e).__name__}: {e}"
    finally:
        conn.close()
        rec["end_ms"] = now_ms()
    return rec


def _lines(resp, deadline):
    while time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            return
        yield line.decode("utf-8", errors="replace")
    raise TimeoutError("request deadline passed")


def _read_stream(resp, rec, deadline, progress):
    for data in parse_sse(_lines(resp, deadline)):
        if data.strip() == "[DONE]":
            rec["done"] = True
            break
        chunk = json.loads(data)
        if "error" in chunk:
            rec["error"] = "error event: " + json.dumps(chunk["error"])[:400]
            continue  # [DONE] may follow; the request is lost either way
        usage = chunk.get("usage") or {}
        if usage.get("completion_tokens") is not None:
            rec["completion_tokens"] = usage["completion_tokens"]
        choices = chunk.get("choices") or []
        if choices and choices[0].get("finish_reason"):
            rec["finish_reason"] = choices[0]["finish_reason"]
        text = chunk_text(chunk)
        if text:
            rec["text"] += text
            rec["events_ms"].append(now_ms())
            if progress:
                progress(rec["id"], len(rec["events_ms"]))


def verdict(req, rec, refs):
    """("ok" | "lost" | "wrong", why) of a record against the reference texts
    (the fault-free passes' answers: one text, or two when they differed).
    lost: no complete answer (HTTP error, transport error, timeout, an error
    event, no [DONE]); wrong: a complete answer that differs from every
    reference, stops early or for another reason, or counts other tokens."""
    if rec is None:
        return "lost", "no record (the harness gave up waiting)"
    if rec["error"]:
        return "lost", rec["error"][:200]
    if rec["stream"] and not rec["done"]:
        return "lost", "stream ended without [DONE]"
    if not refs:
        return "wrong", "no reference (the fault-free passes failed this request)"
    if rec["text"] not in refs:
        return "wrong", text_difference(refs[0], rec["text"])
    if rec["completion_tokens"] != req["max_tokens"]:
        return "wrong", f"usage.completion_tokens {rec['completion_tokens']}, asked {req['max_tokens']}"
    if rec["finish_reason"] != "length":
        return "wrong", f"finish_reason {rec['finish_reason']!r}, expected 'length' (ignore_eos)"
    return "ok", ""


def text_difference(ref, got):
    """A short description of how got differs from ref."""
    if got.startswith(ref):
        return f"extra text after the reference ({len(got) - len(ref)} chars; duplicated?)"
    if ref.startswith(got):
        return f"missing text: {len(ref) - len(got)} of {len(ref)} chars"
    i = next((k for k, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    return f"differs at char {i}: expected {ref[i:i + 12]!r}, got {got[i:i + 12]!r}"


def largest_gap_ms(rec):
    """Largest gap between consecutive events of a streamed record: the send,
    each text event, and the end (the last event, the error or [DONE])."""
    points = [rec["sent_ms"]] + rec["events_ms"] + ([rec["end_ms"]] if rec["end_ms"] else [])
    return max((b - a for a, b in zip(points, points[1:])), default=None)


def stall_at(records, t_ms, t_end_ms=None):
    """The largest gap over the streamed records running at some time in
    [t_ms, t_end_ms] (the fault's window; a kill's is one instant); None
    when none was running."""
    t_end_ms = t_ms if t_end_ms is None else t_end_ms
    gaps = [largest_gap_ms(r) for r in records
            if r and r["stream"] and r["sent_ms"] <= t_end_ms and t_ms <= (r["end_ms"] or float("inf"))]
    gaps = [g for g in gaps if g is not None]
    return max(gaps) if gaps else None
