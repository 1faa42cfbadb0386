"""A client of OpenAI's POST /v1/completions (colony serve, llama.cpp's
llama-server, any compatible endpoint) that measures what a user sees.

- stream=True: server-sent events (ref: platform.openai.com/docs/api-reference/
  completions, "stream"; each event is "data: <json chunk>", the last one
  "data: [DONE]"). TTFT is the arrival of the first chunk with text; the gaps
  between text chunks are the times per token (one token per chunk, as
  llama-server and OpenAI send them).
- stream=False: one JSON body; only the latency and usage.completion_tokens
  are known, so TTFT comes from a max_tokens=1 request and the mean time per
  token from (latency(n) - latency(1)) / (n - 1).
- run_streams(): C concurrent requests started together; aggregate tokens/s =
  completion tokens of all / wall time from the first send to the last reply.
"""

import http.client
import json
import threading
import time
import urllib.parse


class CompletionError(RuntimeError):
    """The endpoint answered with an error or something unreadable."""


def parse_sse(lines):
    """Yields the data payloads (str) of server-sent events from an iterable of
    text lines; multi-line data is joined with "\\n", comments (":") skipped,
    and an event ends at a blank line or at the end of the input."""
    buf = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if buf:
                yield "\n".join(buf)
                buf = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            buf.append(value)
    if buf:
        yield "\n".join(buf)


def chunk_text(chunk):
    """The text of a completion chunk or body: choices[0].text ("" if none)."""
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    return choices[0].get("text") or ""


def _split_url(base_url):
    u = urllib.parse.urlsplit(base_url)
    if u.scheme != "http" or not u.hostname:
        raise CompletionError(f"need an http://HOST:PORT base URL, got '{base_url}'")
    return u.hostname, u.port or 80, u.path.rstrip("/")


def completion(base_url, prompt, max_tokens, stream=False, timeout=600.0, extra=None, clock=time.monotonic):
    """Sends one completion request and times it. Returns a dict:
    ok, status, error, latency_ms, ttft_ms (stream only, else None),
    token_gaps_ms (stream: gaps between text chunks), completion_tokens,
    prompt_tokens (when the server reports usage), text."""
    host, port, path = _split_url(base_url)
    body = {"prompt": prompt, "max_tokens": int(max_tokens), "temperature": 0, "stream": bool(stream)}
    if stream:
        # usage in the last chunk: the token count, since one chunk may carry several tokens
        body["stream_options"] = {"include_usage": True}
    if extra:
        body.update(extra)
    data = json.dumps(body).encode()
    out = {"ok": False, "status": 0, "error": "", "latency_ms": 0.0, "ttft_ms": None, "token_gaps_ms": [],
           "completion_tokens": 0, "prompt_tokens": None, "text": ""}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = clock()
    try:
        conn.request("POST", path + "/v1/completions", body=data,
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream" if stream else
                              "application/json"})
        resp = conn.getresponse()
        out["status"] = resp.status
        if resp.status != 200:
            out["error"] = f"HTTP {resp.status}: {resp.read(2000).decode(errors='replace')}"
            return out
        if stream:
            _read_stream(resp, out, t0, clock)
        else:
            payload = json.loads(resp.read().decode())
            out["text"] = chunk_text(payload)
            usage = payload.get("usage") or {}
            out["completion_tokens"] = int(usage.get("completion_tokens", 0))
            out["prompt_tokens"] = usage.get("prompt_tokens")
        out["latency_ms"] = (clock() - t0) * 1e3
        out["ok"] = out["error"] == ""
    except (OSError, http.client.HTTPException, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out["latency_ms"] = (clock() - t0) * 1e3
    finally:
        conn.close()
    return out


def _lines(resp):
    while True:
        line = resp.readline()
        if not line:
            return
        yield line.decode("utf-8", errors="replace")


def _read_stream(resp, out, t0, clock):
    last = None
    n_text = 0
    usage_tokens = None
    for data in parse_sse(_lines(resp)):
        now = clock()
        if data.strip() == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            out["error"] = json.dumps(chunk["error"])
            break
        usage = chunk.get("usage") or {}
        if usage.get("completion_tokens") is not None:
            usage_tokens = int(usage["completion_tokens"])
            out["prompt_tokens"] = usage.get("prompt_tokens")
        text = chunk_text(chunk)
        if not text:
            continue
        n_text += 1
        out["text"] += text
        if last is None:
            out["ttft_ms"] = (now - t0) * 1e3
        else:
            out["token_gaps_ms"].append((now - last) * 1e3)
        last = now
    out["completion_tokens"] = usage_tokens if usage_tokens is not None else n_text


def run_streams(base_url, prompt, n_streams, max_tokens, stream=False, timeout=600.0, extra=None, vary=True):
    """n_streams requests sent at once (one thread each). With vary, request i
    sends "<i> " + prompt, so no two share a prefix (no prompt-cache reuse
    between streams). Returns a dict:
    streams, ok (all succeeded), wall_s, completion_tokens (sum),
    aggregate_tps, per_request (the completion() dicts), errors."""
    results = [None] * n_streams
    start = threading.Barrier(n_streams + 1)

    def worker(i):
        start.wait()
        text = f"{i} {prompt}" if vary else prompt
        results[i] = completion(base_url, text, max_tokens, stream=stream, timeout=timeout, extra=extra)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_streams)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(timeout + 5)
    wall = time.monotonic() - t0
    done = [r for r in results if r is not None]
    tokens = sum(r["completion_tokens"] for r in done if r["ok"])
    errors = [r["error"] for r in done if not r["ok"]] + ["no reply"] * (n_streams - len(done))
    return {"streams": n_streams, "ok": not errors, "wall_s": wall, "completion_tokens": tokens,
            "aggregate_tps": tokens / wall if wall > 0 else 0.0, "per_request": done, "errors": errors}


def wait_healthy(base_url, timeout=120.0, path="/health"):
    """Polls GET base_url + path until it answers 200; returns the seconds it
    took, or raises CompletionError after timeout seconds."""
    host, port, prefix = _split_url(base_url)
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", prefix + path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.monotonic() - t0
            last = f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        finally:
            conn.close()
        time.sleep(0.1)
    raise CompletionError(f"{base_url}{path} not healthy after {timeout:.0f} s ({last})")


def main(argv=None):
    """Command line, so that the client can run inside a lab host's network
    namespace (ip netns exec NS python3 openai.py ...). Prints one JSON object:
      complete --base URL --prompt-file F --max-tokens N [--stream] [--extra JSON]
      streams  --base URL --prompt-file F --max-tokens N --streams C [--stream] [--extra JSON]
      health   --base URL [--timeout S]"""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("what", choices=("complete", "streams", "health"))
    ap.add_argument("--base", required=True)
    ap.add_argument("--prompt-file")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--extra", default="{}")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    extra = json.loads(a.extra)
    if a.what == "health":
        out = {"seconds": wait_healthy(a.base, timeout=a.timeout)}
    else:
        with open(a.prompt_file) as f:
            prompt = f.read()
        if a.what == "complete":
            out = completion(a.base, prompt, a.max_tokens, stream=a.stream, timeout=a.timeout, extra=extra)
        else:
            out = run_streams(a.base, prompt, a.streams, a.max_tokens, stream=a.stream, timeout=a.timeout,
                              extra=extra)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
