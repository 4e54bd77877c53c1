#!/bin/sh
# Two real hosts on this machine: two private libvirtd daemons (LXC), each
# with its own bridge on its own free 10.213.X.0/24 (chosen at random, so
# parallel LXC tests do not clash), torn down on every exit path. Runs
# hosts_tests' [lxc-hosts] test against them.
#   tests/hosts/run_hosts_test.sh BUILD/tests/hosts/hosts_tests
set -u
BIN=${1:?usage: run_hosts_test.sh HOSTS_TESTS_BINARY}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

die() {
  echo "run_hosts_test: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (libvirtd, bridges, containers)"
[ -x "$BIN" ] || die "no test binary $BIN"

# A free /24 in 10.213.10-250 whose bridge name is free too; not $1.
free_x() {
  i=0
  while :; do
    x=$((10 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 241))
    if [ "$x" != "${1:-}" ] && ! ip -o -4 addr show | grep -q " 10\.213\.$x\." &&
      ! ip link show dev "ppeh$x" >/dev/null 2>&1; then
      echo "$x"
      return 0
    fi
    i=$((i + 1))
    [ $i -lt 50 ] || return 1
  done
}
XA=$(free_x) || die "no free 10.213.X.0/24 subnet"
XB=$(free_x "$XA") || die "no second free 10.213.X.0/24 subnet"
RUN_A=$(mktemp -d /tmp/ppe-hosts-a.XXXXXX) || die "mktemp"
RUN_B=$(mktemp -d /tmp/ppe-hosts-b.XXXXXX) || die "mktemp"

status=1
cleanup() {
  trap - EXIT INT TERM
  for side in "$RUN_A ppeh$XA" "$RUN_B ppeh$XB"; do
    set -- $side
    URI=$(cat "$1/uri" 2>/dev/null || true)
    if [ -n "$URI" ] && [ -s "$1/libvirtd.pid" ] && kill -0 "$(cat "$1/libvirtd.pid")" 2>/dev/null; then
      leaked=$(virsh -q -c "$URI" list --all --name 2>/dev/null | tr '\n' ' ')
      if [ -n "$(echo "$leaked" | tr -d ' ')" ]; then
        echo "run_hosts_test: FAILED: domains left behind on $2: $leaked" >&2
        status=1
      fi
    fi
    "$ROOT/deploy/lxc/teardown.sh" "$1" "$2" || {
      echo "run_hosts_test: FAILED: teardown of $2" >&2
      status=1
    }
    rm -rf "$1"
  done
  exit $status
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "run_hosts_test: host a: $RUN_A, ppeh$XA, 10.213.$XA.0/24; host b: $RUN_B, ppeh$XB, 10.213.$XB.0/24"
URI_A=$("$ROOT/deploy/lxc/setup.sh" "$RUN_A" "ppeh$XA" "10.213.$XA.1/24") || die "setup of host a"
URI_B=$("$ROOT/deploy/lxc/setup.sh" "$RUN_B" "ppeh$XB" "10.213.$XB.1/24") || die "setup of host b"

PPE_HOSTS_A_URI="$URI_A" PPE_HOSTS_A_RUN="$RUN_A" PPE_HOSTS_A_BRIDGE="ppeh$XA" \
  PPE_HOSTS_A_NET="10.213.$XA" \
  PPE_HOSTS_B_URI="$URI_B" PPE_HOSTS_B_RUN="$RUN_B" PPE_HOSTS_B_BRIDGE="ppeh$XB" \
  PPE_HOSTS_B_NET="10.213.$XB" \
  PPE_LXC_SETUP="$ROOT/deploy/lxc/setup.sh" PPE_LXC_NO_INSTALL=1 \
  "$BIN" "[lxc-hosts]" --durations yes
status=$?
