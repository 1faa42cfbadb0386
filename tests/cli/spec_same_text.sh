#!/usr/bin/env bash
# Speculative decoding must not change the text: runs `colony COMMAND ARGS`
# (generate or run) plainly and with SPEC_ARGS added, and fails unless stdout
# is the same byte for byte and the speculative run accepted at least one
# draft (its timing line says "N drafted, M accepted" with M > 0).
#
#   spec_same_text.sh COLONY COMMAND "SPEC_ARGS" -- ARGS...
set -uo pipefail
colony="$1" cmd="$2" spec="$3"; shift 3
[ "${1:-}" = "--" ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$colony" "$cmd" "$@" >"$tmp/plain" 2>"$tmp/plain.err" || { cat "$tmp/plain.err"; exit 1; }
# shellcheck disable=SC2086
"$colony" "$cmd" "$@" $spec >"$tmp/spec" 2>"$tmp/spec.err" || { cat "$tmp/spec.err"; exit 1; }
tail -n1 "$tmp/spec.err"
if ! cmp -s "$tmp/plain" "$tmp/spec"; then
  echo "FAIL: the text with $spec differs from plain decoding:"
  diff "$tmp/plain" "$tmp/spec" | head -20
  exit 1
fi
if ! tail -n1 "$tmp/spec.err" | grep -qE '[0-9]+ drafted, [1-9][0-9]* accepted'; then
  echo "FAIL: no draft was accepted (the check would pass without speculation)"
  exit 1
fi
echo "ok: the same $(wc -c <"$tmp/plain") bytes"
