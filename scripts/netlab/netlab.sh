#!/usr/bin/env bash
# colony network lab: N hosts in network namespaces behind a user-space link
# emulator (colony-netem). See docs/netlab.md.
#
#   netlab.sh up N [--profile P] [--seed S] [--spin-us US] [--rt]
#   netlab.sh down
#   netlab.sh set-link A B [PROFILE] [--delay-ms X] [--jitter-ms X] [--jitter-hold-ms X]
#                      [--rate-mbit X] [--loss-pct X] [--queue-kb X] [--oneway]
#   netlab.sh cut A B [--oneway] | restore A B [--oneway]
#   netlab.sh exec I CMD...
#   netlab.sh addr I | ns I
#   netlab.sh ping A B [-c N] [-i SEC]
#   netlab.sh status | profiles | ctl REQUEST...
#
# A and B are host numbers (1..N) or "all". Profiles: loopback, ethernet, wifi, wifi-poor, wan.
set -euo pipefail
# shellcheck source=SCRIPTDIR/netlab-lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/netlab-lib.sh"

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  up) netlab_up "$@" ;;
  down) netlab_down ;;
  set-link) netlab_set_link "$@" ;;
  cut) netlab_cut "$@" ;;
  restore) netlab_restore "$@" ;;
  exec) netlab_exec "$@" ;;
  addr) netlab_addr "$@" ;;
  ns) netlab_ns "$@" ;;
  ping) netlab_ping "$@" ;;
  status) netlab_status ;;
  profiles) "$(netlab_netem_bin)" profiles ;;
  ctl) netlab_ctl "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
