#!/bin/sh
# Undoes deploy/lxc/setup.sh: destroys and undefines every domain of the private
# libvirtd in RUN_DIR, stops that libvirtd by its PID, removes the bridge.
# Idempotent: what is already gone is skipped.
#
#   deploy/lxc/teardown.sh [RUN_DIR] [BRIDGE]
#   env: PPE_LXC_RUN (default /run/ppe-lxc), PPE_LXC_BRIDGE (default: the one
#        setup.sh recorded in RUN_DIR/bridge, else ppebr0), PPE_LXC_REMOVE_RUN=1
#        also deletes RUN_DIR.
set -u

RUN=${1:-${PPE_LXC_RUN:-/run/ppe-lxc}}
BRIDGE=${2:-${PPE_LXC_BRIDGE:-$(cat "$RUN/bridge" 2>/dev/null || echo ppebr0)}}
HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "lxc-teardown: $*" >&2; }
failed=0
fail() {
  echo "lxc-teardown: ERROR: $*" >&2
  failed=1
}

[ "$(id -u)" = 0 ] || {
  echo "lxc-teardown: ERROR: must run as root" >&2
  exit 1
}

PIDFILE="$RUN/libvirtd.pid"
running_pid() {
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q libvirtd "/proc/$pid/cmdline" 2>/dev/null &&
    echo "$pid"
}

if [ -d "$RUN" ]; then
  # Containers outlive their daemon: if it died while some still run, bring it
  # back (it re-attaches to them) so they can be destroyed properly.
  if ! running_pid >/dev/null && ls "$RUN"/run/lxc/*.pid >/dev/null 2>&1; then
    say "libvirtd is gone but containers remain; restarting it to destroy them"
    PPE_LXC_NO_INSTALL=1 "$HERE/setup.sh" "$RUN" "$BRIDGE" \
      "$(ip -o -4 addr show dev "$BRIDGE" 2>/dev/null | awk '{print $4; exit}')" >/dev/null ||
      fail "cannot restart libvirtd in $RUN"
  fi

  if pid=$(running_pid); then
    URI=$(cat "$RUN/uri")
    for dom in $(virsh -q -c "$URI" list --all --name 2>/dev/null); do
      if [ "$(virsh -c "$URI" domstate "$dom" 2>/dev/null)" != "shut off" ]; then
        say "destroying domain $dom"
        virsh -q -c "$URI" destroy "$dom" >/dev/null || fail "cannot destroy $dom"
      fi
      say "undefining domain $dom"
      virsh -q -c "$URI" undefine "$dom" >/dev/null || fail "cannot undefine $dom"
    done
    say "stopping libvirtd (pid $pid)"
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "libvirtd (pid $pid) still running after 5 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$PIDFILE"
  else
    say "no libvirtd running for $RUN"
  fi
  # Any container whose controller is still alive (it should not be) is a leak.
  for f in "$RUN"/run/lxc/*.pid; do
    [ -e "$f" ] || continue
    cpid=$(cat "$f")
    if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
      fail "container $(basename "$f" .pid) (pid $cpid) is still running"
    fi
  done
else
  say "no run directory $RUN"
fi

if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  say "removing bridge $BRIDGE"
  ip link delete dev "$BRIDGE" || fail "cannot remove bridge $BRIDGE"
else
  say "no bridge $BRIDGE"
fi

if [ "${PPE_LXC_REMOVE_RUN:-0}" = 1 ] && [ -d "$RUN" ] && [ $failed = 0 ]; then
  say "removing $RUN"
  rm -rf "$RUN"
fi

[ $failed = 0 ] || exit 1
say "done"
