#!/usr/bin/env bash
# Runs one command and checks its exit code and its whole output; used by the
# CLI checks in tests/cli/CMakeLists.txt. Every check given must hold.
#
#   check_command.sh [--exit N] [--stdout-file F] [--stdout-regex RE]
#                    [--stdout-llama-completion F] [--stderr-line TEXT] [--stderr-last-regex RE] -- COMMAND [ARGS...]
#
#   --exit N              the exit code must be exactly N (default 0)
#   --stdout-file F       stdout must equal the content of F byte for byte
#   --stdout-llama-completion F
#                         stdout must equal F, a recorded llama-completion output
#                         (tests/data/llama-completion), less the prefix space it
#                         prints before the prompt and its one extra final newline
#   --stdout-regex RE     stdout must match the extended regex RE (grep -E, any line)
#   --stderr-line TEXT    stderr must be exactly one line, equal to TEXT
#   --stderr-last-regex RE  the last line of stderr must match RE as a whole (grep -xE)
set -uo pipefail
want_exit=0 stdout_file="" llama_file="" stdout_regex="" stderr_line="" stderr_last_regex=""
have_stderr_line=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exit) want_exit="$2"; shift 2 ;;
    --stdout-file) stdout_file="$2"; shift 2 ;;
    --stdout-llama-completion) llama_file="$2"; shift 2 ;;
    --stdout-regex) stdout_regex="$2"; shift 2 ;;
    --stderr-line) stderr_line="$2"; have_stderr_line=1; shift 2 ;;
    --stderr-last-regex) stderr_last_regex="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "check_command.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "check_command.sh: no command given" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$@" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
failed=0
fail() { echo "FAIL: $*"; failed=1; }

echo "command: $*"
[ "$rc" -eq "$want_exit" ] || fail "exit code $rc, expected $want_exit"
if [ -n "$stdout_file" ] && ! cmp -s "$tmp/out" "$stdout_file"; then
  fail "stdout differs from $stdout_file:"
  diff <(cat "$stdout_file") "$tmp/out" | head -n 20
fi
if [ -n "$llama_file" ]; then
  if [ ! -s "$llama_file" ]; then
    fail "no recorded output $llama_file"
  else
    # drop the first byte when it is a space, and one final newline
    python3 -c 'import sys; t=open(sys.argv[1]).read(); t=t[1:] if t.startswith(" ") else t; sys.stdout.write(t[:-1] if t.endswith("\n\n") else t)' \
      "$llama_file" >"$tmp/expected"
    if ! cmp -s "$tmp/out" "$tmp/expected"; then
      fail "stdout differs from llama-completion's $llama_file:"
      diff "$tmp/expected" "$tmp/out" | head -n 20
    fi
  fi
fi
if [ -n "$stdout_regex" ] && ! grep -qE -- "$stdout_regex" "$tmp/out"; then
  fail "stdout does not match /$stdout_regex/"
fi
if [ "$have_stderr_line" = 1 ]; then
  lines=$(wc -l <"$tmp/err")
  [ "$lines" -eq 1 ] || fail "stderr has $lines lines, expected exactly one"
  [ "$(head -n 1 "$tmp/err")" = "$stderr_line" ] || fail "stderr's line is not: $stderr_line"
fi
if [ -n "$stderr_last_regex" ] && ! tail -n 1 "$tmp/err" | grep -qxE -- "$stderr_last_regex"; then
  fail "the last line of stderr does not match /$stderr_last_regex/"
fi
if [ "$failed" -ne 0 ]; then
  echo "--- stdout ---"; head -c 4000 "$tmp/out"
  echo "--- stderr ---"; head -c 4000 "$tmp/err"
  exit 1
fi
echo "PASS"
