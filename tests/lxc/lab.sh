# Sourced by the scripts that run tests on real LXC containers
# (run_lxc_test.sh, tests/hosts/run_hosts_test.sh): each "lab" is a private
# libvirtd (deploy/lxc/setup.sh) with its own bridge on a free 10.213.X.0/24.
# Needs ROOT (the checkout) set by the caller.

# lab_free_x BRIDGE_PREFIX [TAKEN_X]: prints an X in 10..250 such that no
# interface uses 10.213.X.0/24, no bridge BRIDGE_PREFIX<X> exists and X is not
# TAKEN_X; chosen at random so parallel runs do not clash. Fails after 50 tries.
lab_free_x() {
  i=0
  while :; do
    x=$((10 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 241))
    if [ "$x" != "${2:-}" ] && ! ip -o -4 addr show | grep -q " 10\.213\.$x\." &&
      ! ip link show dev "$1$x" >/dev/null 2>&1; then
      echo "$x"
      return 0
    fi
    i=$((i + 1))
    [ $i -lt 50 ] || return 1
  done
}

# lab_teardown WHO RUN BRIDGE: fails (returns 1, saying why on stderr) when the
# lab's libvirtd still has domains (the test leaked them), then tears the lab
# down (deploy/lxc/teardown.sh) and removes RUN either way.
lab_teardown() {
  rc=0
  uri=$(cat "$2/uri" 2>/dev/null || true)
  if [ -n "$uri" ] && [ -s "$2/libvirtd.pid" ] && kill -0 "$(cat "$2/libvirtd.pid")" 2>/dev/null; then
    leaked=$(virsh -q -c "$uri" list --all --name 2>/dev/null | tr '\n' ' ')
    if [ -n "$(echo "$leaked" | tr -d ' ')" ]; then
      echo "$1: FAILED: domains left behind on $3: $leaked" >&2
      rc=1
    fi
  fi
  if ! "$ROOT/deploy/lxc/teardown.sh" "$2" "$3"; then
    echo "$1: FAILED: teardown of $3" >&2
    rc=1
  fi
  rm -rf "$2"
  return $rc
}
