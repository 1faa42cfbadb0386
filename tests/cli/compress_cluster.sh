#!/usr/bin/env bash
# A compressed model (`colony compress`) through a cluster gives one node's
# text: `colony run` on 3 stages with a file whose feed-forward matrices are
# rank-48 factors equals `colony generate` on it, and differs from the whole
# model's text (so the comparison can fail). The full-rank factors give the
# whole model's text.
#
#   compress_cluster.sh COLONY MODEL
set -uo pipefail
colony="$1" model="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="Lily went to the park. She saw a big dog and"
fail() { echo "FAIL: $*"; exit 1; }
same() {  # same FILE_A FILE_B WHAT
  cmp -s "$1" "$2" || { echo "FAIL: $3"; diff "$1" "$2" | head -10; exit 1; }
}
gen() {  # gen MODEL OUT: one node, with the reference attention every stage of a cluster runs
  "$colony" generate -m "$1" -n 60 --temp 0 -p "$prompt" -t 2 --ref-attention >"$2" 2>"$2.err" ||
    { cat "$2.err"; fail "generate -m $1"; }
}
"$colony" compress -m "$model" -o "$tmp/lr.gguf" --rank-ratio 0.75 --tensors ffn 2>"$tmp/c.err" ||
  { cat "$tmp/c.err"; fail "compress"; }
grep -q "wrote $tmp/lr.gguf: 15 matrices factorized" "$tmp/c.err" ||
  fail "compress did not report 15 matrices: $(tail -1 "$tmp/c.err")"
"$colony" compress -m "$model" -o "$tmp/full.gguf" --rank 64 --tensors all 2>/dev/null ||
  fail "compress --rank 64"
gen "$model" "$tmp/whole"
gen "$tmp/full.gguf" "$tmp/full"
same "$tmp/whole" "$tmp/full" "the full-rank factors changed the text"
gen "$tmp/lr.gguf" "$tmp/one"
cmp -s "$tmp/whole" "$tmp/one" && fail "rank-48 feed-forward factors changed nothing"
"$colony" run -m "$tmp/lr.gguf" -n 60 --temp 0 -p "$prompt" --workers 2 --split 0:2,2:4,4:5 \
  --wire-type f32 >"$tmp/three" 2>"$tmp/three.err" || { tail -5 "$tmp/three.err"; fail "run"; }
same "$tmp/one" "$tmp/three" "3 stages of the compressed model differ from one node"
echo "ok: 3 stages of the compressed model give one node's $(wc -c <"$tmp/one") bytes"
