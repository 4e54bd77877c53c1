#!/usr/bin/env bash
# deploy/quickstart.sh --cluster as a user runs it, on free ports and subnets:
# a 3-member etcd, 3 replicas, two LXC hosts, two pdns + plugin pairs. A CPT
# issued at one replica resolves to the same container address at both pdns
# (and the container answers HTTP); kill -9 of the leader: another replica
# leads, both pdns still answer it. A second instance on the same ports fails,
# names the component and port, and leaves nothing of its own running.
# `--cluster stop` leaves no process, container, bridge or port behind.
# Needs root (libvirtd, bridges, containers); exits 77 (skipped) otherwise.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
QS="$ROOT/deploy/quickstart.sh"
if [[ $(id -u) != 0 ]]; then
  echo "SKIPPED: needs root (libvirtd, bridges, LXC containers)"
  exit 77
fi
fail() { echo "FAIL: $*" >&2; exit 1; }

# `count` consecutive free loopback ports (TCP and UDP), from a random base.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no free port range")
EOF
}
# A free 10.213.X (no address on this machine, no bridge ppe10213X), not in $1.
free_net() {
  local x
  for _ in $(seq 100); do
    x=$((10 + RANDOM % 241))
    [[ " $1 " == *" 10.213.$x "* ]] && continue
    ip -o -4 addr show | grep -q " 10\.213\.$x\." && continue
    ip link show dev "ppe10213$x" >/dev/null 2>&1 && continue
    echo "10.213.$x"
    return 0
  done
  return 1
}

export PPE_BUILD_DIR=$BUILD
unset PPE_RUN_DIR PPE_LXC_RUN_DIR
PPE_ETCD_PORT=$(free_ports 6)
PPE_GRPC_PORT=$(free_ports 3)
PPE_METRICS_PORT=$(free_ports 3)
PPE_DNS_PORT=$(free_ports 2)
net_a=$(free_net "") || fail "no free 10.213.X.0/24"
net_b=$(free_net "$net_a") || fail "no free 10.213.X.0/24"
net_c=$(free_net "$net_a $net_b") || fail "no free 10.213.X.0/24"
net_d=$(free_net "$net_a $net_b $net_c") || fail "no free 10.213.X.0/24"
PPE_CLUSTER_NETS="$net_a $net_b"
PPE_CLUSTER_RUN_DIR=$(mktemp -d /tmp/ppe-qsc-XXXXXX)
export PPE_ETCD_PORT PPE_GRPC_PORT PPE_METRICS_PORT PPE_DNS_PORT PPE_CLUSTER_NETS PPE_CLUSTER_RUN_DIR
SECOND=$(mktemp -d /tmp/ppe-qsc2-XXXXXX)
BRIDGES="ppe${net_a//./} ppe${net_b//./} ppe${net_c//./} ppe${net_d//./}"
cleanup() {
  local rc=$?
  trap - EXIT
  "$QS" --cluster stop >/dev/null 2>&1 || true
  PPE_CLUSTER_RUN_DIR=$SECOND PPE_CLUSTER_NETS="$net_c $net_d" "$QS" --cluster stop >/dev/null 2>&1 || true
  if [[ $rc != 0 ]]; then
    for f in "$PPE_CLUSTER_RUN_DIR"/log/*.log; do echo "--- $f"; tail -n 5 "$f"; done >&2 || true
  fi
  rm -rf "$PPE_CLUSTER_RUN_DIR" "$SECOND"
  exit $rc
}
trap cleanup EXIT
PPECTL="$BUILD/ppe-service/ppectl/ppectl --timeout-ms 2000"
G0=$PPE_GRPC_PORT D0=$PPE_DNS_PORT D1=$((PPE_DNS_PORT + 1))

t0=$SECONDS
rc=0
out=$("$QS" --cluster 2>&1) || rc=$?
[[ $rc == 0 ]] || { echo "$out" >&2; fail "quickstart --cluster exited $rc"; }
grep -q "PPE cluster is running" <<<"$out" || fail "no success message: $out"
echo "ok: quickstart --cluster up in $((SECONDS - t0)) s (etcd $PPE_ETCD_PORT.., gRPC $G0.., DNS $D0/$D1, hosts $net_a $net_b)"

rss=""
for c in etcd-0 ppe-server-0 ppe-backend-0 pdns-0; do
  rss+=" $c $(($(ps -o rss= -p "$(cat "$PPE_CLUSTER_RUN_DIR/$c.pid")") / 1024)) MiB"
done
echo "info: resident memory after start:$rss"
status=$($PPECTL --server "127.0.0.1:$G0" status)
grep -q "^replicas (3):" <<<"$status" || fail "status does not list 3 replicas: $status"
[[ $(grep -c " LEADER" <<<"$status") == 1 ]] || fail "status does not show one leader: $status"

json=$($PPECTL --server "127.0.0.1:$G0" issue --service video --region eu-west --device tv --json)
host=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["hostname"])' <<<"$json")
# The first answer may be the fallback while the container boots.
addr=""
for _ in $(seq 40); do
  a0=$(dig @127.0.0.1 -p "$D0" "$host" A +short +time=2 +tries=1)
  a1=$(dig @127.0.0.1 -p "$D1" "$host" A +short +time=2 +tries=1)
  if [[ $a0 == "$net_a".* && $a0 == "$a1" ]]; then addr=$a0; break; fi
  sleep 0.5
done
[[ -n "$addr" ]] || fail "$host: no eu-west container address at both pdns (last: '$a0' / '$a1')"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$addr:8080/")
[[ $code == 200 ]] || fail "the container at $addr answered HTTP $code"
echo "ok: $host -> $addr at :$D0 and :$D1, HTTP 200"

# kill -9 of the leader; ask a replica that is not the leader.
leader_pid=$(sed -n 's/^  [^ ]*:\([0-9]*\) at .* LEADER.*/\1/p' <<<"$status")
leader_port=$(sed -n 's/^  [^ ]* at 127\.0\.0\.1:\([0-9]*\) LEADER.*/\1/p' <<<"$status")
[[ -n "$leader_pid" && -n "$leader_port" ]] || fail "no leader pid/port in: $status"
ask=$G0
[[ $ask != "$leader_port" ]] || ask=$((G0 + 1))
kill -9 "$leader_pid"
killed=$(date +%s%N)
new=""
for _ in $(seq 100); do
  s=$($PPECTL --server "127.0.0.1:$ask" status 2>/dev/null || true)
  if grep -q "^replicas (2):" <<<"$s" && grep " LEADER" <<<"$s" | grep -vq ":$leader_pid at"; then
    new=$(grep " LEADER" <<<"$s")
    break
  fi
  sleep 0.1
done
[[ -n "$new" ]] || fail "no new leader 10 s after kill -9 of pid $leader_pid: $s"
echo "ok: leader pid $leader_pid killed; new leader seen after $((($(date +%s%N) - killed) / 1000000)) ms:$new"
for port in "$D0" "$D1"; do
  for _ in 1 2 3; do
    r=$(dig @127.0.0.1 -p "$port" "$host" A +time=2 +tries=1)
    grep -q "status: NOERROR" <<<"$r" || fail "pdns :$port after the leader kill: $r"
    got=$(dig @127.0.0.1 -p "$port" "$host" A +short +time=2 +tries=1)
    [[ $got == "$addr" ]] || fail "pdns :$port answers '$got' after the leader kill, not $addr"
  done
done
echo "ok: both pdns still answer $addr"
rss=""
for c in etcd-0 ppe-server-0 ppe-server-1 ppe-server-2; do
  pid=$(cat "$PPE_CLUSTER_RUN_DIR/$c.pid")
  kill -0 "$pid" 2>/dev/null && rss+=" $c $(($(ps -o rss= -p "$pid") / 1024)) MiB"
done
echo "info: resident memory with 1 profile and 1 container:$rss"

# A second instance on the same ports (own run directory and subnets) fails,
# names what failed, and leaves nothing of its own running.
set +e
err=$(PPE_CLUSTER_RUN_DIR=$SECOND PPE_CLUSTER_NETS="$net_c $net_d" "$QS" --cluster 2>&1 >/dev/null)
rc=$?
set -e
[[ $rc != 0 ]] || fail "a second instance on the same ports reported success"
grep -qE "quickstart: etcd-0 \(port $PPE_ETCD_PORT, peer $((PPE_ETCD_PORT + 1))\): " <<<"$err" ||
  fail "the failure does not name etcd-0 and its ports: $err"
echo "ok: second instance failed (exit $rc): $(grep -m1 '^quickstart: ' <<<"$err")"
for f in "$SECOND"/*.pid "$SECOND"/host-*/libvirtd.pid; do
  [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && fail "the failed run left $f running"
done
for b in "ppe${net_c//./}" "ppe${net_d//./}"; do
  ip link show dev "$b" >/dev/null 2>&1 && fail "the failed run left bridge $b"
done
[[ $(dig @127.0.0.1 -p "$D0" "$host" A +short +time=2 +tries=1) == "$addr" ]] ||
  fail "the first instance no longer answers"
echo "ok: nothing of the second instance runs; the first still answers"

# Stop: nothing left.
pids=$(cat "$PPE_CLUSTER_RUN_DIR"/*.pid "$PPE_CLUSTER_RUN_DIR"/host-*/libvirtd.pid)
containers=$(cat "$PPE_CLUSTER_RUN_DIR"/host-*/run/lxc/*.pid 2>/dev/null || true)
[[ -n "$containers" ]] || fail "no container pid files under the hosts"
stopped=$("$QS" --cluster stop 2>&1)
grep -q "stopping the instance in $PPE_CLUSTER_RUN_DIR" <<<"$stopped" || fail "stop said: $stopped"
for pid in $pids $containers; do
  kill -0 "$pid" 2>/dev/null && fail "pid $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline)) still runs after stop"
done
for b in $BRIDGES; do
  ip link show dev "$b" >/dev/null 2>&1 && fail "bridge $b still exists after stop"
done
held=$(ss -Hlntu | awk '{print $5}' | grep -E ":($PPE_ETCD_PORT|$((PPE_ETCD_PORT + 1))|$G0|$((G0 + 1))|$((G0 + 2))|$D0|$D1)\$" || true)
[[ -z "$held" ]] || fail "ports still held after stop: $held"
again=$("$QS" --cluster stop)
[[ $again == "nothing running in: $PPE_CLUSTER_RUN_DIR" ]] || fail "a second stop said: $again"
echo "ok: stop left no process (etcd, ppe-*, pdns, libvirtd, containers), bridge or port; total $((SECONDS - t0)) s"
