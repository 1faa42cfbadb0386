#!/usr/bin/env bash
# --dynamic-skip through a cluster gives one node's text: `colony run` on 3
# stages (worker processes; the gate's options travel in ASSIGN) equals
# `colony generate` with the same options, which skips some block
# evaluations and so differs from the whole model's text (the comparison can
# fail).
#
#   dynamic_skip_cluster.sh COLONY MODEL
set -uo pipefail
colony="$1" model="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="Lily went to the park. She saw a big dog and"
common=(-m "$model" -n 60 --temp 0 -p "$prompt")
fail() { echo "FAIL: $*"; exit 1; }
# one node, with the reference attention every stage of a cluster runs
"$colony" generate "${common[@]}" -t 2 --ref-attention >"$tmp/whole" 2>/dev/null ||
  fail "generate without skipping"
"$colony" generate "${common[@]}" -t 2 --ref-attention --dynamic-skip 0.93 >"$tmp/one" \
  2>"$tmp/one.err" || { cat "$tmp/one.err"; fail "generate --dynamic-skip 0.93"; }
grep -qE "dynamic skip: [1-9][0-9]* of [0-9]+ block evaluations skipped" "$tmp/one.err" ||
  fail "no block evaluation skipped: $(tail -1 "$tmp/one.err")"
cmp -s "$tmp/whole" "$tmp/one" && fail "--dynamic-skip 0.93 changed nothing"
"$colony" run "${common[@]}" --workers 2 --split 0:2,2:4,4:5 --wire-type f32 \
  --dynamic-skip 0.93 >"$tmp/three" 2>"$tmp/three.err" || { tail -5 "$tmp/three.err"; fail "run"; }
cmp -s "$tmp/one" "$tmp/three" || { diff "$tmp/one" "$tmp/three" | head; fail "3 stages differ"; }
echo "ok: 3 stages with --dynamic-skip 0.93 give one node's $(wc -c <"$tmp/one") bytes"
