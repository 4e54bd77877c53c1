#!/bin/sh
# Runs tests/lxc's binary against real containers: a private libvirtd and a
# bridge on a free 10.213.X.0/24 (unique per run, so parallel runs do not
# clash), torn down on every exit path. Fails loudly when that cannot work here.
#   tests/lxc/run_lxc_test.sh BUILD/tests/vm/vm_tests [catch2 filter]
set -u
BIN=${1:?usage: run_lxc_test.sh LXC_TESTS_BINARY [FILTER]}
FILTER=${2:-[lxc]}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

die() {
  echo "run_lxc_test: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (libvirtd, bridges, containers)"
[ -x "$BIN" ] || die "no test binary $BIN"

. "$ROOT/tests/lxc/lab.sh"
# A free /24 in 10.213.10-250 (10.213.0.0/24 is the default of deploy/lxc/setup.sh).
X=$(lab_free_x ppelxc) || die "no free 10.213.X.0/24 subnet"
BRIDGE="ppelxc$X"
RUN=$(mktemp -d /tmp/ppe-lxc.XXXXXX) || die "mktemp"

status=1
cleanup() {
  trap - EXIT INT TERM
  lab_teardown run_lxc_test "$RUN" "$BRIDGE" || status=1
  exit $status
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "run_lxc_test: run dir $RUN, bridge $BRIDGE, 10.213.$X.0/24"
URI=$("$ROOT/deploy/lxc/setup.sh" "$RUN" "$BRIDGE" "10.213.$X.1/24") || die "deploy/lxc/setup.sh failed"
echo "run_lxc_test: libvirt URI $URI"

PPE_LXC_URI="$URI" PPE_LXC_RUN="$RUN" PPE_LXC_BRIDGE="$BRIDGE" PPE_LXC_NET="10.213.$X" \
  PPE_LXC_SETUP="$ROOT/deploy/lxc/setup.sh" \
  "$BIN" "$FILTER" --durations yes
status=$?
[ $status -gt 128 ] && echo "$(basename "$0"): FAILED: the test binary was killed by signal $((status - 128))" >&2
