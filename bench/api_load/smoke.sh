#!/usr/bin/env bash
# The API load generator's short form for CI: `colony serve` on a model, then
# load.mjs --smoke (closed loop 1 and 2 streams, open loop 4 req/s) with 200
# idle connections held open beside the active streams, each kind (silent,
# an unfinished request) in turn. Fails when any request fails or times out
# (--timeout 20 s: idle clients that starved the server's threads made the
# active streams wait 5-35 s before the connection pool of openai_server.cpp).
#
#   bench/api_load/smoke.sh COLONY_BIN MODEL.gguf
set -euo pipefail
colony=${1:?usage: smoke.sh COLONY_BIN MODEL.gguf}
model=${2:?usage: smoke.sh COLONY_BIN MODEL.gguf}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

"$colony" serve -m "$model" --api-port 0 -t 1 --ready-file "$dir/ready.json" >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [[ -s "$dir/ready.json" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log"; echo "smoke.sh: colony serve exited"; exit 1; }
  sleep 0.1
done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_port"])' "$dir/ready.json")
node "$here/load.mjs" --url "http://127.0.0.1:$port" --endpoint completions --smoke --idle 200 \
  --timeout 20
