#!/usr/bin/env bash
# Tests of the network lab (scripts/netlab, tools/netlab; docs/netlab.md):
# baseline RTT, a 3 ms one-way delay, cut/restore, a 30 Mbit/s cap, 10% loss,
# jitter without reordering, and a clean `down`. One PASS/FAIL line per check;
# exits 1 when any check fails. Without root or network namespaces (the only
# reasons to skip) it prints "SKIP: prerequisite missing: ..." and exits 77,
# or 1 when COLONY_TEST_STRICT=1.
# Needs colony-netem: $COLONY_NETEM or build/bin/colony-netem. About 20 s.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../../scripts/netlab/netlab-lib.sh
source "$repo/scripts/netlab/netlab-lib.sh"

# skip_missing NAME WHY: a missing prerequisite (root, network namespaces)
# skips the test, or fails it under COLONY_TEST_STRICT=1.
skip_missing() {
  echo "SKIP: prerequisite missing: $1 ($2)"
  if [[ ${COLONY_TEST_STRICT:-} == 1 ]]; then
    echo "FAIL: COLONY_TEST_STRICT=1 forbids skipping"
    exit 1
  fi
  exit 77
}
if [[ $(id -u) -ne 0 ]]; then skip_missing root "not running as root"; fi
if ! why=$(netlab_available 2>&1); then skip_missing "network namespaces" "$why"; fi
if ! netlab_netem_bin >/dev/null; then echo "FAIL: colony-netem is not built"; exit 1; fi
command -v python3 >/dev/null || { echo "FAIL: python3 is needed for the probes"; exit 1; }

# A lab of our own, so a developer's lab (cl-h*) is never touched.
export COLONY_NETLAB_ID="t$$"
tmp=$(mktemp -d)
cleanup() { netlab_down >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# json FILE EXPR: evaluates a Python expression over the JSON object d in FILE.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# in_range VALUE LO HI
in_range() { python3 -c "import sys; v,lo,hi=map(float,sys.argv[1:]); sys.exit(0 if lo<=v<=hi else 1)" "$@"; }
# add A B: A + B
add() { python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]))" "$1" "$2"; }
# wait_bound HOST tcp|udp PORT: waits (at most 20 s) until a socket in host
# HOST is bound to PORT (a listening TCP socket, or a UDP socket).
wait_bound() {
  local flags=-Hltn i
  [[ $2 == udp ]] && flags=-Hlun
  for ((i = 0; i < 400; i++)); do
    [[ -n $(netlab_exec "$1" ss $flags "sport = :$3" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
  return 1
}

if ! netlab_up 3 --seed 42 2>"$tmp/up.err"; then
  echo "FAIL: netlab up: $(cat "$tmp/up.err")"; exit 1
fi
h2=$(netlab_addr 2)

# 0. Baseline through colony-netem with profile loopback: every ping answered;
# the median is reported and bounded generously (the user-space switch shares
# the machine with other tests: the bound catches a stuck switch, not load).
base_allowed=20
netlab_ping 1 2 -c 50 -i 0.01 >"$tmp/base.json"
base=$(json "$tmp/base.json" "d['rtt_ms']['median'] if d['rtt_ms'] else -1")
if [[ $(json "$tmp/base.json" "d['received']") == 50 ]] && in_range "$base" 0 "$base_allowed"; then
  pass "baseline RTT (profile loopback): median $(printf %.3f "$base") ms over 50 pings ($base_allowed ms allowed)"
else
  fail "baseline RTT (profile loopback): median $base ms ($base_allowed ms allowed): $(cat "$tmp/base.json")"
fi

# 1. A 3 ms one-way delay adds about 6 ms to the baseline round trip.
netlab_set_link 1 2 --delay-ms 3
netlab_ping 1 2 -c 20 -i 0.02 >"$tmp/delay.json"
rtt=$(json "$tmp/delay.json" "d['rtt_ms']['median'] if d['rtt_ms'] else -1")
rtt_max=$(add "$base" 9)
if in_range "$rtt" 5.5 "$rtt_max"; then
  pass "3 ms one-way delay: median RTT $(printf %.3f "$rtt") ms over 20 pings (expected 5.5-$(printf %.1f "$rtt_max"): baseline + 6 ms + 3 ms of margin)"
else
  fail "3 ms one-way delay: median RTT $rtt ms (expected 5.5-$rtt_max): $(cat "$tmp/delay.json")"
fi
netlab_set_link 1 2 loopback

# 2. A cut link cuts (ping and TCP connect fail), other links stay up, restore brings it back.
netlab_probe 2 tcp-listen --port 5002 --seconds 15 >/dev/null 2>&1 &
wait_bound 2 tcp 5002 || fail "cut 1 2: the TCP listener in host 2 did not bind port 5002 within 20 s"
netlab_cut 1 2
netlab_ping 1 2 -c 5 -i 0.05 -W 0.5 >"$tmp/cut.json"
netlab_probe 1 tcp-connect "$h2" --port 5002 --timeout 1 >"$tmp/cut-tcp.json"
netlab_ping 1 3 -c 5 -i 0.02 >"$tmp/other.json"
if [[ $(json "$tmp/cut.json" "d['received']") == 0 && $(json "$tmp/cut-tcp.json" "d['connected']") == False &&
      $(json "$tmp/other.json" "d['received']") == 5 ]]; then
  pass "cut 1 2: 0/5 pings answered, TCP connect timed out, link 1-3 still up"
else
  fail "cut 1 2: ping $(cat "$tmp/cut.json"); tcp $(cat "$tmp/cut-tcp.json"); 1->3 $(cat "$tmp/other.json")"
fi
netlab_restore 1 2
netlab_ping 1 2 -c 5 -i 0.02 >"$tmp/restore.json"
netlab_probe 1 tcp-connect "$h2" --port 5002 --timeout 2 >"$tmp/restore-tcp.json"
if [[ $(json "$tmp/restore.json" "d['received']") == 5 && $(json "$tmp/restore-tcp.json" "d['connected']") == True ]]; then
  pass "restore 1 2: 5/5 pings answered, TCP connects"
else
  fail "restore 1 2: ping $(cat "$tmp/restore.json"); tcp $(cat "$tmp/restore-tcp.json")"
fi

# 3. A 30 Mbit/s cap: a 3 s TCP transfer measures within +-25% of the cap.
netlab_set_link 1 2 --delay-ms 1 --rate-mbit 30
netlab_probe 2 tcp-sink --port 5003 --timeout 15 >"$tmp/sink.json" 2>&1 &
sink=$!
netlab_probe 1 tcp-send "$h2" --port 5003 --seconds 3 >/dev/null 2>&1
wait "$sink"
rate=$(json "$tmp/sink.json" "d['mbit_s']" 2>/dev/null || echo -1)
if in_range "$rate" 22.5 37.5; then
  pass "30 Mbit/s cap: TCP goodput $(printf %.2f "$rate") Mbit/s ($(json "$tmp/sink.json" "d['bytes']") bytes in $(printf %.2f "$(json "$tmp/sink.json" "d['seconds']")") s)"
else
  fail "30 Mbit/s cap: TCP goodput $rate Mbit/s (expected 22.5-37.5): $(cat "$tmp/sink.json")"
fi

# 4. 10% loss one way (1 -> 2): about 10% of 200 pings go unanswered.
netlab_set_link 1 2 --loss-pct 10 --oneway
netlab_ping 1 2 -c 200 -i 0.01 -W 0.5 >"$tmp/loss.json"
loss=$(json "$tmp/loss.json" "d['loss_pct']")
if in_range "$loss" 4 18; then
  pass "10% loss: $loss% of 200 pings lost (expected 4-18)"
else
  fail "10% loss: $loss% of 200 pings lost (expected 4-18)"
fi
netlab_set_link 1 2 loopback

# 5. Jitter spreads the delay but never reorders: pings over 5 +- 4 ms each way
# spread over several ms; 400 datagrams 0.25 ms apart arrive in order.
netlab_set_link 1 2 --delay-ms 5 --jitter-ms 4
netlab_ping 1 2 -c 40 -i 0.02 >"$tmp/jitter.json"
if json "$tmp/jitter.json" "d['rtt_ms']['min'], d['rtt_ms']['max']" >/dev/null 2>&1 &&
   in_range "$(json "$tmp/jitter.json" "d['rtt_ms']['min']")" 1.9 10 &&
   in_range "$(json "$tmp/jitter.json" "d['rtt_ms']['max'] - d['rtt_ms']['min']")" 3 30; then
  pass "jitter 5 +- 4 ms: ping RTT $(json "$tmp/jitter.json" "'%.2f-%.2f' % (d['rtt_ms']['min'], d['rtt_ms']['max'])") ms (ideal 2-18)"
else
  fail "jitter 5 +- 4 ms: ping RTT spread: $(cat "$tmp/jitter.json") (expected min >= 1.9 ms, spread >= 3 ms)"
fi
netlab_probe 2 udp-recv --port 5005 --count 400 --timeout 5 >"$tmp/order.json" 2>&1 &
recv=$!
wait_bound 2 udp 5005 || fail "jitter: the UDP receiver in host 2 did not bind port 5005 within 20 s"
netlab_probe 1 udp-send "$h2" --port 5005 --count 400 -i 0.00025 >/dev/null
wait "$recv"
if [[ $(json "$tmp/order.json" "d['received']") == 400 && $(json "$tmp/order.json" "d['reordered']") == 0 ]]; then
  pass "jitter 5 +- 4 ms: 400/400 datagrams 0.25 ms apart, none reordered"
else
  fail "jitter 5 +- 4 ms: $(cat "$tmp/order.json") (expected 400 received, 0 reordered)"
fi

# 6. down leaves no namespaces, links, emulator or state.
pid=$(cat "$(netlab__state)/netem.pid")
netlab_down >/dev/null 2>&1
prefix=$(netlab__prefix)
left_ns=$(ip netns list | awk '{print $1}' | grep "^$prefix" | tr '\n' ' ')
left_links=$(ip -o link show | awk -F': ' '{print $2}' | grep "^$prefix" | tr '\n' ' ')
if [[ -z $left_ns && -z $left_links && ! -e /proc/$pid && ! -e $(netlab__state) ]]; then
  pass "down: no ${prefix}* namespaces or links, colony-netem gone, state removed"
else
  fail "down: namespaces '$left_ns', links '$left_links', netem pid $pid alive: $([[ -e /proc/$pid ]] && echo yes || echo no)"
fi
if netlab_down >/dev/null 2>&1; then pass "down again: idempotent"; else fail "down again failed"; fi

if [[ $failures -gt 0 ]]; then echo "$failures check(s) FAILED"; exit 1; fi
echo "all checks passed"
