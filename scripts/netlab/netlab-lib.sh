# shellcheck shell=bash
# colony network lab, as a bash library (docs/netlab.md). Source it:
#
#   source scripts/netlab/netlab-lib.sh
#   netlab_up 3 --profile wifi        # hosts cl-h1..cl-h3, 10.213.0.1..3
#   netlab_exec 2 some-server &       # run in host 2's namespace
#   netlab_set_link 1 2 wifi-poor     # or: netlab_set_link 1 2 --delay-ms 3 --rate-mbit 30
#   netlab_cut 1 2; netlab_restore 1 2
#   netlab_down
#
# Every function prints errors as "netlab: error: ..." on stderr and returns
# non-zero; none calls exit, so a sourcing test keeps control.
#
# Environment:
#   COLONY_NETEM       path of the colony-netem binary (default: build/bin/colony-netem,
#                      then colony-netem on PATH)
#   COLONY_NETLAB_ID   optional lab id ([a-z0-9], up to 8) so several labs can coexist:
#                      namespaces cl-<id>-h<i>, state /run/colony-netlab/<id>.
#                      Unset: namespaces cl-h<i> and cl-sw, state /run/colony-netlab/default.

NETLAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETLAB_REPO=$(cd "$NETLAB_DIR/../.." && pwd)
NETLAB_SUBNET=10.213.0
NETLAB_MAX_HOSTS=250
NETLAB_DEFAULT_SPIN_US=100

netlab__err() { echo "netlab: error: $*" >&2; return 1; }
netlab__log() { echo "netlab: $*" >&2; }

# Lab naming, derived from COLONY_NETLAB_ID each time (tests may switch ids).
netlab__id() {
  local id=${COLONY_NETLAB_ID:-}
  if [[ -n $id && ! $id =~ ^[a-z0-9]{1,8}$ ]]; then
    netlab__err "COLONY_NETLAB_ID must be 1-8 of [a-z0-9], got '$id'"; return 1
  fi
  echo "$id"
}
netlab__prefix() {
  local id; id=$(netlab__id) || return 1
  if [[ -z $id ]]; then echo "cl-"; else echo "cl-$id-"; fi
}
netlab__state() {
  local id; id=$(netlab__id) || return 1
  echo "/run/colony-netlab/${id:-default}"
}

# netlab_ns I: the namespace name of host I (cl-h<I>).
netlab_ns() {
  local prefix; prefix=$(netlab__prefix) || return 1
  [[ ${1:-} =~ ^[0-9]+$ ]] || { netlab__err "host must be a number, got '${1:-}'"; return 1; }
  echo "${prefix}h$1"
}
netlab__switch_ns() { local prefix; prefix=$(netlab__prefix) || return 1; echo "${prefix}sw"; }

# netlab_addr I: host I's IPv4 address (10.213.0.I).
netlab_addr() {
  [[ ${1:-} =~ ^[0-9]+$ ]] || { netlab__err "host must be a number, got '${1:-}'"; return 1; }
  echo "$NETLAB_SUBNET.$1"
}

# netlab_hosts: the number of hosts of the running lab (fails when it is down).
netlab_hosts() {
  local state; state=$(netlab__state) || return 1
  [[ -f $state/hosts ]] || { netlab__err "no lab is up (run: netlab.sh up N)"; return 1; }
  cat "$state/hosts"
}

# netlab_netem_bin: the colony-netem binary to use.
netlab_netem_bin() {
  if [[ -n ${COLONY_NETEM:-} ]]; then
    [[ -x $COLONY_NETEM ]] || { netlab__err "COLONY_NETEM=$COLONY_NETEM is not executable"; return 1; }
    echo "$COLONY_NETEM"; return 0
  fi
  if [[ -x $NETLAB_REPO/build/bin/colony-netem ]]; then echo "$NETLAB_REPO/build/bin/colony-netem"; return 0; fi
  if command -v colony-netem >/dev/null 2>&1; then command -v colony-netem; return 0; fi
  netlab__err "colony-netem not found: build target colony-netem (cmake --build build --target colony-netem) or set COLONY_NETEM"
}

# netlab_available: succeeds when this process can build a lab (root, ip, netns,
# veth); otherwise prints why on stderr. Tests use it to skip.
netlab_available() {
  [[ $(id -u) -eq 0 ]] || { netlab__log "needs root"; return 1; }
  command -v ip >/dev/null || { netlab__log "needs iproute2 (ip)"; return 1; }
  local probe="cl-probe$$"
  ip netns add "$probe" 2>/dev/null || { netlab__log "cannot create network namespaces"; return 1; }
  local ok=0
  ip -n "$probe" link add name va type veth peer name vb 2>/dev/null || ok=1
  ip netns del "$probe" 2>/dev/null
  [[ $ok -eq 0 ]] || { netlab__log "cannot create veth pairs"; return 1; }
}

# netlab_ctl REQUEST...: one raw request to colony-netem (see tools/netlab/control.h).
netlab_ctl() {
  local state netem
  state=$(netlab__state) || return 1
  netem=$(cat "$state/netem-bin" 2>/dev/null) || { netlab__err "no lab is up (run: netlab.sh up N)"; return 1; }
  "$netem" ctl "$state/ctl.sock" "$@"
}

# Quiet variant: prints the reply only when it is an error.
netlab__ctl_quiet() {
  local reply
  netlab_hosts >/dev/null || return 1
  if reply=$(netlab_ctl "$@" 2>&1); then return 0; fi
  netlab__err "colony-netem: ${reply##*$'\n'}"
}

# netlab__pid_alive PID: PID is a running colony-netem.
netlab__pid_alive() {
  [[ -n ${1:-} && -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q colony-netem
}

# netlab_up N [--profile P] [--seed S] [--rt]: creates hosts 1..N and the switch,
# starts colony-netem with every link at profile P (default loopback), and waits
# until it answers. Fails when a lab with this id is already up.
netlab_up() {
  local n=${1:-} profile=loopback seed="" rt="" spin_us=${COLONY_NETEM_SPIN_US:-$NETLAB_DEFAULT_SPIN_US}
  shift || true
  while [[ $# -gt 0 ]]; do
    case $1 in
      --profile) profile=${2:-}; shift 2 || return 1 ;;
      --seed) seed=${2:-}; shift 2 || return 1 ;;
      --rt) rt=--rt; shift ;;
      --spin-us) spin_us=${2:-}; shift 2 || return 1 ;;
      *) netlab__err "up: unknown option '$1'"; return 1 ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ && $n -ge 2 && $n -le $NETLAB_MAX_HOSTS ]] ||
    { netlab__err "up needs a host count in 2..$NETLAB_MAX_HOSTS, got '$n'"; return 1; }
  [[ $(id -u) -eq 0 ]] || { netlab__err "up needs root"; return 1; }
  local netem state sw prefix
  netem=$(netlab_netem_bin) || return 1
  state=$(netlab__state) || return 1
  sw=$(netlab__switch_ns) || return 1
  prefix=$(netlab__prefix) || return 1
  "$netem" profiles | awk '{print $1}' | grep -qx -- "$profile" ||
    { netlab__err "unknown profile '$profile' (known: $("$netem" profiles | awk '{print $1}' | paste -sd' '))"; return 1; }
  if [[ -f $state/netem.pid ]] && netlab__pid_alive "$(cat "$state/netem.pid")"; then
    netlab__err "a lab is already up (${prefix}h*, state $state); run: netlab.sh down"; return 1
  fi
  netlab_down >/dev/null 2>&1 || true  # leftovers of a crashed run
  mkdir -p "$state"
  if ! netlab__create "$n" "$netem" "$state" "$sw"; then
    netlab_down >/dev/null 2>&1 || true
    return 1
  fi
  local ports=() i
  for ((i = 1; i <= n; i++)); do ports+=(--port "$i=p$i"); done
  echo "$n" >"$state/hosts"
  echo "$profile" >"$state/profile"
  echo "$netem" >"$state/netem-bin"
  # setsid: the emulator outlives the shell that started it (and its SIGHUP);
  # `ip netns exec` execs it, so $! is colony-netem's own pid.
  setsid ip netns exec "$sw" "$netem" run --ctl "$state/ctl.sock" "${ports[@]}" \
    --set "profile=$profile" --spin-us "$spin_us" ${seed:+--seed "$seed"} $rt </dev/null >"$state/netem.log" 2>&1 &
  echo $! >"$state/netem.pid"
  local tries
  for ((tries = 0; tries < 100; tries++)); do
    if netlab_ctl ping >/dev/null 2>&1; then
      netlab__log "up: $n hosts (${prefix}h1..${prefix}h$n, $NETLAB_SUBNET.1..$n), profile $profile"
      return 0
    fi
    netlab__pid_alive "$(cat "$state/netem.pid")" || break
    sleep 0.05
  done
  netlab__err "colony-netem did not start; its log:"
  cat "$state/netem.log" >&2
  netlab_down >/dev/null 2>&1 || true
  return 1
}

# netlab__create N NETEM STATE SWITCH_NS: namespaces, veth pairs, addresses.
netlab__create() {
  local n=$1 netem=$2 sw=$4 i ns mac
  ip netns add "$sw" || return 1
  netlab__quiet_netns "$sw" || return 1
  for ((i = 1; i <= n; i++)); do
    ns=$(netlab_ns "$i")
    ip netns add "$ns" || return 1
    netlab__quiet_netns "$ns" || return 1
    # eth0 in the host, p<i> in the switch; a fixed MAC per host (locally
    # administered, 02:c0:10:00:HH:LL) makes captures readable.
    mac=$(printf '02:c0:10:00:%02x:%02x' $((i >> 8)) $((i & 255)))
    ip link add eth0 netns "$ns" address "$mac" type veth peer name "p$i" netns "$sw" || return 1
    ip -n "$ns" addr add "$NETLAB_SUBNET.$i/24" dev eth0 || return 1
    ip netns exec "$ns" "$netem" offloads-off eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$sw" link set "p$i" up || return 1
  done
}

# netlab__quiet_netns NS: loopback up, IPv6 off (no router solicitations, DAD
# or MLD chatter on the emulated links; the lab is IPv4 only).
netlab__quiet_netns() {
  ip -n "$1" link set lo up || return 1
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    >/dev/null 2>&1 || true
}

# netlab_down: stops colony-netem, kills processes left in the lab's
# namespaces, deletes the namespaces (which deletes their veths) and the state.
# Idempotent; also removes leftovers of a lab whose state was lost.
netlab_down() {
  local state prefix ns pid tries
  state=$(netlab__state) || return 1
  prefix=$(netlab__prefix) || return 1
  if [[ -f $state/netem.pid ]]; then
    pid=$(cat "$state/netem.pid")
    if netlab__pid_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((tries = 0; tries < 40; tries++)); do netlab__pid_alive "$pid" || break; sleep 0.05; done
      netlab__pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
  fi
  for ns in $(netlab__lab_namespaces "$prefix"); do
    netlab__kill_in_netns "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  # Veths are created inside the namespaces, but clean root-namespace leftovers
  # of an interrupted creation too.
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${prefix}" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf "$state"
  rmdir "$(dirname "$state")" 2>/dev/null || true  # the last lab gone
  local left; left=$(netlab__lab_namespaces "$prefix")
  [[ -z $left ]] || { netlab__err "down: namespaces left: $left"; return 1; }
  netlab__log "down: ${prefix}* removed"
}

# The namespaces of this lab only: <prefix>h<digits> and <prefix>sw.
netlab__lab_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1(h[0-9]+|sw)\$" || true
}

# Terminates the processes inside namespace NS (those a test left running).
netlab__kill_in_netns() {
  local pids tries
  pids=$(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')
  [[ -n ${pids// /} ]] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((tries = 0; tries < 20; tries++)); do
    pids=$(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    sleep 0.05
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

# netlab__link_settings ARGS...: turns "PROFILE" or "--delay-ms X --jitter-ms
# Y --jitter-hold-ms H --rate-mbit Z --loss-pct W --queue-kb Q" (an optional
# leading PROFILE, then options that override it) into colony-netem's
# key=value settings.
netlab__link_settings() {
  local out=()
  if [[ $# -gt 0 && $1 != --* ]]; then out+=("profile=$1"); shift; fi
  while [[ $# -gt 0 ]]; do
    case $1 in
      --profile) out+=("profile=${2:-}") ;;
      --delay-ms) out+=("delay_ms=${2:-}") ;;
      --jitter-ms) out+=("jitter_ms=${2:-}") ;;
      --jitter-hold-ms) out+=("jitter_hold_ms=${2:-}") ;;
      --rate-mbit) out+=("rate_mbit=${2:-}") ;;
      --loss-pct) out+=("loss_pct=${2:-}") ;;
      --queue-kb) out+=("queue_kb=${2:-}") ;;
      *) netlab__err "unknown link option '$1'"; return 1 ;;
    esac
    [[ $# -ge 2 ]] || { netlab__err "$1 needs a value"; return 1; }
    shift 2
  done
  [[ ${#out[@]} -gt 0 ]] || { netlab__err "give a profile or link options"; return 1; }
  echo "${out[*]}"
}

# Host argument: a number or "all" -> colony-netem's "*".
netlab__host_arg() {
  case ${1:-} in
    all) echo '*' ;;
    *[!0-9]* | '') netlab__err "host must be a number or 'all', got '${1:-}'"; return 1 ;;
    *) echo "$1" ;;
  esac
}

# netlab_set_link A B PROFILE|OPTIONS... [--oneway]: sets both directions
# A->B and B->A (only A->B with --oneway). A or B may be "all". Options not
# given take the profile's values (profile loopback when none is named).
netlab_set_link() {
  local a b oneway=0 args=() settings
  a=$(netlab__host_arg "${1:-}") || return 1
  b=$(netlab__host_arg "${2:-}") || return 1
  shift 2
  while [[ $# -gt 0 ]]; do
    if [[ $1 == --oneway ]]; then oneway=1; else args+=("$1"); fi
    shift
  done
  settings=$(netlab__link_settings "${args[@]}") || return 1
  # shellcheck disable=SC2086
  netlab__ctl_quiet set "$a" "$b" $settings || return 1
  if [[ $oneway -eq 0 ]]; then
    # shellcheck disable=SC2086
    netlab__ctl_quiet set "$b" "$a" $settings || return 1
  fi
}

# netlab_cut A B [--oneway] / netlab_restore A B [--oneway]: cut or restore
# both directions (A->B only with --oneway). A cut direction drops every frame,
# including those already queued on it.
netlab_cut() { netlab__cut_restore cut "$@"; }
netlab_restore() { netlab__cut_restore restore "$@"; }
netlab__cut_restore() {
  local op=$1 a b
  a=$(netlab__host_arg "${2:-}") || return 1
  b=$(netlab__host_arg "${3:-}") || return 1
  netlab__ctl_quiet "$op" "$a" "$b" || return 1
  if [[ ${4:-} != --oneway ]]; then netlab__ctl_quiet "$op" "$b" "$a" || return 1; fi
}

# netlab_exec I CMD...: runs CMD in host I's namespace.
netlab_exec() {
  local ns; ns=$(netlab_ns "${1:-}") || return 1
  shift
  [[ $# -gt 0 ]] || { netlab__err "exec needs a command"; return 1; }
  ip netns exec "$ns" "$@"
}

# netlab_probe I ARGS...: runs netlab-probe.py in host I (prints its JSON).
netlab_probe() {
  local host=${1:-}; shift
  netlab_exec "$host" python3 "$NETLAB_DIR/netlab-probe.py" "$@"
}

# netlab_ping FROM TO [probe ping options]: ICMP echo from host FROM to host TO;
# prints the probe's JSON ({"sent","received","loss_pct","rtt_ms":{...}}).
netlab_ping() {
  local from=${1:-} to=${2:-} addr
  addr=$(netlab_addr "$to") || return 1
  shift 2
  netlab_probe "$from" ping "$addr" "$@"
}

# netlab_status: the lab's hosts, the emulator's pid, every link and its counters.
netlab_status() {
  local state prefix pid
  state=$(netlab__state) || return 1
  prefix=$(netlab__prefix) || return 1
  if [[ ! -f $state/hosts ]]; then
    echo "lab: down"
    local left; left=$(netlab__lab_namespaces "$prefix" | tr '\n' ' ')
    [[ -z $left ]] || echo "leftover namespaces: $left (run: netlab.sh down)"
    return 0
  fi
  pid=$(cat "$state/netem.pid" 2>/dev/null || true)
  echo "lab: up, $(cat "$state/hosts") hosts (${prefix}h1..), initial profile $(cat "$state/profile"), state $state"
  if netlab__pid_alive "$pid"; then echo "colony-netem: pid $pid"; else echo "colony-netem: NOT RUNNING (see $state/netem.log)"; return 1; fi
  netlab_ctl show
}
