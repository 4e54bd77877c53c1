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

# A free /24 in 10.213.10-250 (10.213.0.0/24 is the default of deploy/lxc/setup.sh).
i=0
while :; do
  X=$((10 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 241))
  BRIDGE="ppelxc$X"
  if ! ip -o -4 addr show | grep -q " 10\.213\.$X\." && ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    break
  fi
  i=$((i + 1))
  [ $i -lt 50 ] || die "no free 10.213.X.0/24 subnet"
done
RUN=$(mktemp -d /tmp/ppe-lxc.XXXXXX) || die "mktemp"

status=1
cleanup() {
  trap - EXIT INT TERM
  URI=$(cat "$RUN/uri" 2>/dev/null || true)
  if [ -n "$URI" ] && [ -s "$RUN/libvirtd.pid" ] && kill -0 "$(cat "$RUN/libvirtd.pid")" 2>/dev/null; then
    leaked=$(virsh -q -c "$URI" list --all --name 2>/dev/null | tr '\n' ' ')
    if [ -n "$(echo "$leaked" | tr -d ' ')" ]; then
      echo "run_lxc_test: FAILED: domains left behind by the test: $leaked" >&2
      status=1
    fi
  fi
  if ! "$ROOT/deploy/lxc/teardown.sh" "$RUN" "$BRIDGE"; then
    echo "run_lxc_test: FAILED: teardown" >&2
    status=1
  fi
  rm -rf "$RUN"
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
