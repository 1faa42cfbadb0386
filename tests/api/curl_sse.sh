#!/usr/bin/env bash
# The raw SSE stream as curl sees it: headers, "data: {json}" events separated
# by blank lines, a final chunk with finish_reason, the usage chunk, then
# "data: [DONE]". Also a non-streaming request and an error body.
#   COLONY_SERVE=<colony-serve-local> COLONY_STORIES=<gguf> bash curl_sse.sh
set -euo pipefail
: "${COLONY_SERVE:?set COLONY_SERVE}" "${COLONY_STORIES:?set COLONY_STORIES}"
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "curl_sse: FAIL: $*" >&2; exit 1; }

"$COLONY_SERVE" -m "$COLONY_STORIES" --api-port 0 -t 2 --parallel 2 -c 1024 >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 1 300); do
  grep -q "ready" "$work/out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/err" >&2; fail "server exited"; }
  sleep 0.1
done
url=$(sed -n 's|^colony: listening on \(http://[^ ]*\)/$|\1|p' "$work/out")
[ -n "$url" ] || fail "no 'listening on' line: $(cat "$work/out")"

# streaming completion
curl -sS -N -D "$work/headers" -H 'Content-Type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' \
  "$url/v1/completions" >"$work/sse"
grep -qi '^content-type: text/event-stream' "$work/headers" || fail "content type: $(cat "$work/headers")"
grep -qi '^transfer-encoding: chunked' "$work/headers" || fail "not chunked"
python3 - "$work/sse" <<'EOF' || fail "SSE framing"
import json, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8")
events = raw.split("\n\n")
assert events[-1] == "", "stream must end with a blank line"
events = events[:-1]
assert all(e.startswith("data: ") and "\n" not in e for e in events), events
payloads = [e[len("data: "):] for e in events]
assert payloads[-1] == "[DONE]", payloads[-1]
chunks = [json.loads(p) for p in payloads[:-1]]
usage = chunks[-1]
assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 8, usage
final = chunks[-2]
assert final["choices"][0]["finish_reason"] == "length", final
text = "".join(c["choices"][0]["text"] for c in chunks[:-1])
assert len(text) > 0
assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks[:-1])
assert len({c["id"] for c in chunks}) == 1
print("curl_sse: %d events, text %r" % (len(events), text))
EOF

# non-streaming completion
code=$(curl -sS -o "$work/whole" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"ignore_eos":true}' "$url/v1/completions")
[ "$code" = 200 ] || fail "completion status $code"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["usage"]["completion_tokens"]==8, j' "$work/whole" \
  || fail "completion body"

# an error: malformed JSON, OpenAI's error shape
code=$(curl -sS -o "$work/err.json" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"prompt":' "$url/v1/completions")
[ "$code" = 400 ] || fail "malformed JSON status $code"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["type"]=="invalid_request_error" and "message" in e, e' \
  "$work/err.json" || fail "error body: $(cat "$work/err.json")"
echo "curl_sse: ok"
