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

. "$ROOT/tests/lxc/lab.sh"
XA=$(lab_free_x ppeh) || die "no free 10.213.X.0/24 subnet"
XB=$(lab_free_x ppeh "$XA") || die "no second free 10.213.X.0/24 subnet"
RUN_A=$(mktemp -d /tmp/ppe-hosts-a.XXXXXX) || die "mktemp"
RUN_B=$(mktemp -d /tmp/ppe-hosts-b.XXXXXX) || die "mktemp"

status=1
cleanup() {
  trap - EXIT INT TERM
  lab_teardown run_hosts_test "$RUN_A" "ppeh$XA" || status=1
  lab_teardown run_hosts_test "$RUN_B" "ppeh$XB" || status=1
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
[ $status -gt 128 ] && echo "$(basename "$0"): FAILED: the test binary was killed by signal $((status - 128))" >&2
