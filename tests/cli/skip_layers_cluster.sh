#!/usr/bin/env bash
# --skip-layers through a cluster gives one node's text: `colony run` on 3
# stages with blocks skipped on two of them equals `colony generate` with the
# same blocks skipped (and differs from the whole model's text, so the
# comparison can fail); a stage whose blocks are all skipped is bypassed (the
# coordinator's log says so) and the text is still one node's.
#
#   skip_layers_cluster.sh COLONY MODEL
set -uo pipefail
colony="$1" model="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="Lily went to the park. She saw a big dog and"
common=(-m "$model" -n 60 --temp 0 -p "$prompt")
fail() { echo "FAIL: $*"; exit 1; }
same() {  # same FILE_A FILE_B WHAT
  cmp -s "$1" "$2" || { echo "FAIL: $3"; diff "$1" "$2" | head -10; exit 1; }
}
# one node, with the reference attention every stage of a cluster runs
"$colony" generate "${common[@]}" -t 2 --ref-attention >"$tmp/whole" 2>/dev/null ||
  fail "generate without skipping"
"$colony" generate "${common[@]}" -t 2 --ref-attention --skip-layers 1,3 >"$tmp/one" \
  2>"$tmp/one.err" || { cat "$tmp/one.err"; fail "generate --skip-layers 1,3"; }
grep -q "skipped blocks 1,3" "$tmp/one.err" || fail "generate's timing line names no skipped blocks"
cmp -s "$tmp/whole" "$tmp/one" && fail "skipping blocks 1 and 3 changed nothing"
"$colony" run "${common[@]}" --workers 2 --split 0:2,2:4,4:5 --wire-type f32 \
  --skip-layers 1,3 >"$tmp/three" 2>"$tmp/three.err" || { tail -5 "$tmp/three.err"; fail "run"; }
same "$tmp/one" "$tmp/three" "3 stages skipping blocks 1,3 differ from one node"
echo "ok: 3 stages skipping blocks 1,3 give one node's $(wc -c <"$tmp/one") bytes"

# [2,3) is all skipped: its stage is bypassed, the coordinator takes [0,3)
"$colony" generate "${common[@]}" -t 2 --ref-attention --skip-layers 2 >"$tmp/one2" 2>/dev/null ||
  fail "generate --skip-layers 2"
"$colony" run "${common[@]}" --workers 2 --split 0:2,2:3,3:5 --wire-type f32 --skip-layers 2 \
  --keep-dir >"$tmp/bypass" 2>"$tmp/bypass.err" || { tail -5 "$tmp/bypass.err"; fail "run"; }
dir=$(sed -n 's/^colony run: kept //p' "$tmp/bypass.err" | tail -n1)
[ -n "$dir" ] && [ -d "$dir" ] || fail "no kept directory in: $(tail -3 "$tmp/bypass.err")"
log="$dir/coordinator.log"
grep -q "layers \[2,3) are all skipped" "$log" || { rm -rf "$dir"; fail "no bypass in $log"; }
rm -rf "$dir"
same "$tmp/one2" "$tmp/bypass" "the bypassed pipeline differs from one node"
echo "ok: the stage of [2,3) was bypassed; the text is one node's"
