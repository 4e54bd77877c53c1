#!/bin/sh
# Brings up what PPE needs to run real libvirt LXC containers on this machine
# (docs/design.md, "libvirt facts the code depends on"): the packages, the
# libvirt-qemu user, a host bridge, and a private libvirtd whose sockets, state
# and config live under RUN_DIR.
# Idempotent: run it again to restart a libvirtd that died; what is already up
# is kept. Progress goes to stderr; the libvirt URI to use is the only line on stdout.
#
#   deploy/lxc/setup.sh [RUN_DIR] [BRIDGE] [ADDRESS/PREFIX]
#   env: PPE_LXC_RUN (default /run/ppe-lxc), PPE_LXC_BRIDGE (ppebr0),
#        PPE_LXC_ADDRESS (10.213.0.1/24), PPE_LXC_NO_INSTALL=1 skips apt.
#
# libvirtd runs in its own mount namespace without /sys/fs/cgroup/unified (this
# machine's mixed cgroup v1/v2 layout makes LXC starts fail otherwise), and with
# RUN_DIR/{run,lib,etc} bind-mounted over /run/libvirt, /var/lib/libvirt and
# /etc/libvirt, so several of these daemons (parallel test runs) do not share
# driver state, and a restarted daemon finds the containers the last one left.
set -eu

RUN=${1:-${PPE_LXC_RUN:-/run/ppe-lxc}}
BRIDGE=${2:-${PPE_LXC_BRIDGE:-ppebr0}}
ADDRESS=${3:-${PPE_LXC_ADDRESS:-10.213.0.1/24}}

say() { echo "lxc-setup: $*" >&2; }
die() {
  echo "lxc-setup: ERROR: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root"
case "$ADDRESS" in
  */*) ;;
  *) die "address '$ADDRESS' must be ADDRESS/PREFIX (e.g. 10.213.0.1/24)" ;;
esac
[ ${#BRIDGE} -le 15 ] || die "bridge name '$BRIDGE' is longer than 15 characters"
mkdir -p "$RUN" || die "cannot create $RUN"
RUN=$(cd "$RUN" && pwd)
# The unix socket path must fit in sun_path (108 bytes).
[ ${#RUN} -le 80 ] || die "run directory path '$RUN' is too long for unix sockets"

# 1. Packages (libvirt-daemon-system would pull in systemd: not wanted).
PACKAGES="libvirt-daemon libvirt-daemon-driver-lxc libvirt-clients tini iproute2"
if [ "${PPE_LXC_NO_INSTALL:-0}" != 1 ]; then
  missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    say "installing$missing (--no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y -q --no-install-recommends $missing >&2; then
      say "apt-get install failed; running apt-get update and retrying"
      apt-get update -q >&2 || die "apt-get update failed"
      # shellcheck disable=SC2086
      apt-get install -y -q --no-install-recommends $missing >&2 || die "cannot install$missing"
    fi
  else
    say "packages present: $PACKAGES"
  fi
fi
LIBVIRTD=$(command -v libvirtd || echo /usr/sbin/libvirtd)
[ -x "$LIBVIRTD" ] || die "libvirtd not found"
[ -x /usr/bin/tini ] || die "/usr/bin/tini not found (containers use it as init)"

# 2. The always-loaded QEMU driver refuses to start without this user and group.
if ! getent group libvirt-qemu >/dev/null; then
  say "creating system group libvirt-qemu"
  groupadd -r libvirt-qemu || die "cannot create group libvirt-qemu"
fi
if ! getent passwd libvirt-qemu >/dev/null; then
  say "creating system user libvirt-qemu"
  useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu ||
    die "cannot create user libvirt-qemu"
fi

# 3. The bridge the containers' NICs join (no DHCP, no NAT: static addresses).
if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  say "creating bridge $BRIDGE"
  ip link add name "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE"
fi
if ! ip -o -4 addr show dev "$BRIDGE" | grep -q " ${ADDRESS} "; then
  say "adding $ADDRESS to $BRIDGE"
  ip addr add "$ADDRESS" dev "$BRIDGE" || die "cannot add $ADDRESS to $BRIDGE"
fi
ip link set dev "$BRIDGE" up || die "cannot bring $BRIDGE up"
# A container's address is probed as soon as it starts; an ARP request sent
# before its NIC was up is otherwise retried only after 1 s (seen: ready at
# ~1.1 s instead of ~0.25 s). This bridge only: resolve retries every 100 ms.
echo 100 >"/proc/sys/net/ipv4/neigh/$BRIDGE/retrans_time_ms" ||
  die "cannot set ARP retransmit time on $BRIDGE"
echo "$BRIDGE" >"$RUN/bridge"

# 4. libvirtd: unix sockets under RUN, no TCP/TLS, no auth.
SOCK="$RUN/libvirt-sock"
PIDFILE="$RUN/libvirtd.pid"
CONF="$RUN/libvirtd.conf"
URI="lxc:///system?socket=$SOCK"
echo "$URI" >"$RUN/uri"

running_pid() {
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q libvirtd "/proc/$pid/cmdline" 2>/dev/null &&
    echo "$pid"
}

if pid=$(running_pid) && [ -S "$SOCK" ]; then
  say "libvirtd already running (pid $pid)"
  echo "$URI"
  exit 0
fi

mkdir -p "$RUN/run" "$RUN/lib" "$RUN/etc" "$RUN/log" "$RUN/cache"
cat >"$CONF" <<EOF
# Written by deploy/lxc/setup.sh: a private libvirtd for PPE's LXC containers.
listen_tls = 0
listen_tcp = 0
unix_sock_dir = "$RUN"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$RUN/libvirtd.log"
EOF
rm -f "$SOCK" "$PIDFILE"
mkdir -p /run/libvirt /var/lib/libvirt /etc/libvirt /var/log/libvirt /var/cache/libvirt
say "starting libvirtd -f $CONF -p $PIDFILE (own mount namespace)"
# setsid: the daemon outlives this script and its caller's session.
# shellcheck disable=SC2016 # $1..$4 expand in the inner shell
setsid unshare --mount --propagation private sh -c '
  umount /sys/fs/cgroup/unified 2>/dev/null
  mount --bind "$1/run" /run/libvirt &&
  mount --bind "$1/lib" /var/lib/libvirt &&
  mount --bind "$1/etc" /etc/libvirt &&
  mount --bind "$1/log" /var/log/libvirt &&
  mount --bind "$1/cache" /var/cache/libvirt || exit 1
  exec "$2" -f "$3" -p "$4"' sh "$RUN" "$LIBVIRTD" "$CONF" "$PIDFILE" \
  </dev/null >>"$RUN/libvirtd.out" 2>&1 &
starter=$!

i=0
while [ $i -lt 100 ]; do
  if ! kill -0 "$starter" 2>/dev/null; then
    say "libvirtd exited during start-up:"
    tail -n 20 "$RUN/libvirtd.out" "$RUN/libvirtd.log" >&2 2>/dev/null || true
    die "libvirtd did not start (see $RUN/libvirtd.log)"
  fi
  if [ -S "$SOCK" ] && running_pid >/dev/null; then
    say "libvirtd up (pid $(cat "$PIDFILE")), socket $SOCK after $((i * 100)) ms"
    echo "$URI"
    exit 0
  fi
  sleep 0.1
  i=$((i + 1))
done
say "libvirtd output:"
tail -n 20 "$RUN/libvirtd.out" "$RUN/libvirtd.log" >&2 2>/dev/null || true
die "libvirtd socket $SOCK not ready after 10 s"
