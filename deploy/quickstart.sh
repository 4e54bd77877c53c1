#!/usr/bin/env bash
# PPE quick start: installs, builds, configures and starts ppe-server, the
# PowerDNS backend plugin and pdns_server (zone cdn.example.test. on 127.0.0.1:5300).
#
#   deploy/quickstart.sh            set up and start (safe to run again)
#   deploy/quickstart.sh --lxc      the same on real LXC containers: a private
#                                   libvirtd and bridge ppebr0 (10.213.0.1/24),
#                                   each VM an HTTP server on its own address
#   deploy/quickstart.sh --cluster  a cluster on loopback: a 3-member etcd
#                                   (client ports 23790/23792/23794), 3 ppe-server
#                                   replicas (gRPC 50051-50053, metrics 9464-9466)
#                                   sharing it and one CPT key file, two LXC hosts
#                                   (private libvirtds, regions eu-west on
#                                   10.213.10.0/24 and us-east on 10.213.20.0/24),
#                                   and two pdns_server + ppe-backend pairs
#                                   (127.0.0.1:5300 and :5301), each plugin
#                                   round-robin over the three replicas
#   deploy/quickstart.sh stop             stop whichever instance of this checkout
#                                         runs (./run, ./run-lxc, ./run-cluster; by PID)
#   deploy/quickstart.sh --lxc stop       stop only the --lxc instance
#   deploy/quickstart.sh --cluster stop   stop only the --cluster instance
#   deploy/quickstart.sh [--lxc|--cluster] status   show what runs
#
# Success is printed only once every component is alive, holds its own port
# and answers: etcd (endpoint health), ppe-server (gRPC health SERVING, after
# its start-up reconcile; a cluster: `ppectl status` shows a leader and every
# replica), ppe-backend (its socket) and pdns_server (an SOA query through the
# plugin). Otherwise it names the component, its port and the log line, stops
# what this run started and nothing else, and exits 1.
#
# Environment: PPE_RUN_DIR (default ./run, ./run-lxc with --lxc, ./run-cluster
# with --cluster), PPE_LXC_RUN_DIR and PPE_CLUSTER_RUN_DIR (the --lxc and
# --cluster ones, default PPE_RUN_DIR or ./run-lxc, ./run-cluster), PPE_BUILD_DIR
# (default ./build), PPE_DNS_PORT (5300), PPE_GRPC_PORT (50051), PPE_METRICS_PORT
# (9464), PPE_HYPERVISOR_URI (test:///default). --cluster: the replicas and pdns
# servers take consecutive ports from these; PPE_ETCD_PORT (23790; member i has
# client port +2i, peer port +2i+1); PPE_CLUSTER_NETS ("10.213.10 10.213.20": the
# /24s of the eu-west and us-east hosts, bridges ppe<net without dots>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=single
case "${1:-}" in
  --lxc) MODE=lxc; shift ;;
  --cluster) MODE=cluster; shift ;;
esac
TEST_RUN=${PPE_RUN_DIR:-$ROOT/run}
LXC_RUN=${PPE_LXC_RUN_DIR:-${PPE_RUN_DIR:-$ROOT/run-lxc}}
CLUSTER_RUN=${PPE_CLUSTER_RUN_DIR:-${PPE_RUN_DIR:-$ROOT/run-cluster}}
case $MODE in
  lxc) RUN=$LXC_RUN ;;
  cluster) RUN=$CLUSTER_RUN ;;
  *) RUN=$TEST_RUN ;;
esac
LXC_BRIDGE=${PPE_LXC_BRIDGE:-ppebr0}
LXC_SUBNET=${PPE_LXC_SUBNET:-10.213.0}
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
DNS_PORT=${PPE_DNS_PORT:-5300}
GRPC_PORT=${PPE_GRPC_PORT:-50051}
METRICS_PORT=${PPE_METRICS_PORT:-9464}
HYPERVISOR_URI=${PPE_HYPERVISOR_URI:-test:///default}
# --cluster: etcd members, replicas, hosts (one per region), pdns + plugin pairs.
ETCD_PORT=${PPE_ETCD_PORT:-23790}
ETCD_MEMBERS=3
REPLICAS=3
DNS_SERVERS=2
read -r -a HOST_NETS <<<"${PPE_CLUSTER_NETS:-10.213.10 10.213.20}"
HOST_REGIONS=(eu-west us-east)
# Every component an instance may run, in start order: one name is one pid
# file and one log under the run directory. Stop walks it backwards (pdns
# first, so it never queries a backend that is gone; etcd last).
COMPONENTS=(etcd-0 etcd-1 etcd-2 ppe-server ppe-server-0 ppe-server-1 ppe-server-2
            ppe-backend ppe-backend-0 ppe-backend-1 pdns pdns-0 pdns-1)

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop_component() {  # name: SIGTERM, then SIGKILL after 5 s
  local c=$1 pid
  if pid_alive "$c"; then
    pid=$(cat "$RUN/$c.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped $c (pid $pid)"
  fi
  rm -f "$RUN/$c.pid"
}

# The private libvirtd "hosts" of the instance in $RUN (deploy/lxc/setup.sh
# run directories): lxc (--lxc), host-<region> (--cluster).
host_dirs() {
  local d
  for d in "$RUN/lxc" "$RUN"/host-*; do [[ -d "$d" ]] && echo "$d"; done
  return 0
}

stop_host() {  # setup.sh run directory, bridge: its containers, libvirtd, bridge
  "$ROOT/deploy/lxc/teardown.sh" "$1" "$2"
}

stop_all() {
  local d
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[$i]}"; done
  for d in $(host_dirs); do stop_host "$d" "$(cat "$d/bridge" 2>/dev/null || echo "$LXC_BRIDGE")"; done
}

status() {
  local c any=0
  for c in "${COMPONENTS[@]}"; do
    [[ -f "$RUN/$c.pid" ]] || continue
    any=1
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
  done
  for d in $(host_dirs); do
    any=1
    if [[ -s "$d/libvirtd.pid" ]] && kill -0 "$(cat "$d/libvirtd.pid")" 2>/dev/null; then
      echo "libvirtd $d: running (pid $(cat "$d/libvirtd.pid"))"
    else
      echo "libvirtd $d: stopped"
    fi
  done
  [[ $any == 1 ]] || echo "nothing started here"
}

has_instance() {  # something of an instance in $RUN is running
  local c d
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" && return 0; done
  for d in $(host_dirs); do
    [[ -s "$d/libvirtd.pid" ]] && kill -0 "$(cat "$d/libvirtd.pid")" 2>/dev/null && return 0
    ip link show dev "$(cat "$d/bridge" 2>/dev/null || echo "$LXC_BRIDGE")" >/dev/null 2>&1 && return 0
  done
  return 1
}

# Without --lxc or --cluster, stop and status cover every instance of this
# checkout: the test-driver one, the --lxc one and the --cluster one.
instance_dirs() {
  if [[ $MODE != single ]]; then echo "$RUN"; return; fi
  local seen=" " d
  for d in "$TEST_RUN" "$LXC_RUN" "$CLUSTER_RUN"; do
    [[ "$seen" == *" $d "* ]] || { echo "$d"; seen+="$d "; }
  done
}

case "${1:-start}" in
  stop)
    found=0
    for RUN in $(instance_dirs); do
      has_instance || continue
      found=1
      echo "stopping the instance in $RUN"
      stop_all
    done
    [[ $found == 1 ]] || echo "nothing running in: $(instance_dirs | tr '\n' ' ' | sed 's/ $//')"
    exit 0 ;;
  status)
    for RUN in $(instance_dirs); do echo "$RUN:"; status | sed 's/^/  /'; done
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [--lxc|--cluster] [start|stop|status]" >&2; exit 2 ;;
esac

if [[ $MODE == cluster ]]; then "$ROOT/deploy/install-deps.sh" --cluster; else "$ROOT/deploy/install-deps.sh"; fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPE_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$BUILD" -j"$(nproc)" ppe-server ppe-backend ppectl

mkdir -p "$RUN/log"
PPECTL_BIN="$BUILD/ppe-service/ppectl/ppectl"
STARTED=()        # components this run started, stopped again if the start fails
HOSTS_STARTED=()  # "run-dir bridge" of the libvirt hosts this run started
declare -A LOG_FROM  # component -> its log's size before this run started it

start() {  # name, command...
  local name=$1; shift
  if pid_alive "$name"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  LOG_FROM[$name]=$(stat -c %s "$RUN/log/$name.log" 2>/dev/null || echo 0)
  nohup "$@" >>"$RUN/log/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  STARTED+=("$name")
  echo "started $name (pid $!), log $RUN/log/$name.log"
}

# Stops what this run started (newest first) and nothing else, then exits 1.
fail() {  # component, port (or socket path), message
  trap - ERR
  local log="$RUN/log/$1.log" line="" recent
  if [[ -f "$log" ]]; then
    recent=$(tail -c +$((${LOG_FROM[$1]:-0} + 1)) "$log" | grep -av '^\s*$' || true)
    # A component that exited said why last; one that hangs, in its last error.
    pid_alive "$1" && line=$(grep -aiE 'error|fatal|unable|cannot|refus' <<<"$recent" | tail -n 1 || true)
    [[ -n "$line" ]] || line=$(tail -n 1 <<<"$recent")
  fi
  if [[ $2 =~ ^[0-9] ]]; then echo "quickstart: $1 (port $2): $3" >&2; else echo "quickstart: $1 ($2): $3" >&2; fi
  [[ -n "$line" ]] && echo "quickstart: $log: $line" >&2
  local p holders h ports=""
  # Who holds the ports (not for a socket path or a directory).
  if [[ $2 =~ ^[0-9] ]]; then ports=$(grep -oE '\b[0-9]+\b' <<<"$2" || true); fi
  for p in $ports; do
    holders=$(ss -Hlnptu "sport = :$p" 2>/dev/null | grep -o 'users:(([^)]*))' | sort -u | tr '\n' ' ')
    [[ -z "$holders" ]] || echo "quickstart: port $p is held by $holders" >&2
  done
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_component "${STARTED[$i]}" >&2; done
  for h in "${HOSTS_STARTED[@]}"; do
    # shellcheck disable=SC2086 # "dir bridge"
    stop_host $h >&2 || true
  done
  exit 1
}

# A command that fails unexpectedly (set -e) stops what this run started too.
trap 'fail quickstart "line $LINENO" "a command failed unexpectedly (see above)"' ERR

# A libvirt host: a private libvirtd with LXC and its own bridge and subnet
# (deploy/lxc/setup.sh; kept if it already runs). Sets HOST_URI.
start_host() {  # run directory, bridge, address/prefix
  mkdir -p "$1"
  # A bridge this directory never made is another instance's: not ours to use
  # (nor to remove when this run fails).
  if [[ "$(cat "$1/bridge" 2>/dev/null)" != "$2" ]] && ip link show dev "$2" >/dev/null 2>&1; then
    fail libvirtd "$1" "bridge $2 exists and is not this instance's (another instance? its 'stop' removes it)"
  fi
  if ! { [[ -s "$1/libvirtd.pid" ]] && kill -0 "$(cat "$1/libvirtd.pid")" 2>/dev/null; }; then
    HOSTS_STARTED+=("$1 $2")
  fi
  echo "$2" >"$1/bridge"  # stop finds the bridge here even if setup fails
  HOST_URI=$("$ROOT/deploy/lxc/setup.sh" "$1" "$2" "$3") ||
    fail libvirtd "$1" "deploy/lxc/setup.sh failed (its error is above; log $1/libvirtd.log)"
}

render() {  # template [run-dir grpc-port metrics-port dns-port]: a config on stdout
  local run=${2:-$RUN} grpc=${3:-$GRPC_PORT} metrics=${4:-$METRICS_PORT} dns=${5:-$DNS_PORT}
  sed -e "s#@RUN@#$run#g; s#@GRPC_PORT@#$grpc#g; s#@DNS_PORT@#$dns#g" \
      -e "s#@METRICS_PORT@#$metrics#g; s#@BRIDGE@#$LXC_BRIDGE#g" \
      -e "s#@SUBNET@#$LXC_SUBNET#g; s#@GATEWAY@#$LXC_SUBNET.1#g" \
      -e "s#@HYPERVISOR_URI@#$HYPERVISOR_URI#g; s#@KEY_FILE@#$RUN/cpt-keys#g" \
      -e "s#@ETCD_ENDPOINTS@#${ETCD_ENDPOINTS:-}#g" \
      -e "s#@EU_URI@#${HOST_URIS[0]:-}#g; s#@EU_BRIDGE@#${HOST_BRIDGES[0]:-}#g; s#@EU_NET@#${HOST_NETS[0]}#g" \
      -e "s#@US_URI@#${HOST_URIS[1]:-}#g; s#@US_BRIDGE@#${HOST_BRIDGES[1]:-}#g; s#@US_NET@#${HOST_NETS[1]}#g" \
      "$ROOT/deploy/conf/$1.conf.in"
}

conf_port() {  # file, sed pattern with the port as \1, default
  local p
  p=$(sed -n "s/$2/\1/p" "$1" | tail -n 1)
  echo "${p:-$3}"
}

# True when every listening socket on `port` (ss filter proto: -t or -u)
# belongs to `pid`: not another instance's, not shared through SO_REUSEPORT.
owns_port() {  # pid, ss protocol flag, port
  local lines
  lines=$(ss -Hlnp "$2" "sport = :$3" 2>/dev/null)
  [[ -n "$lines" ]] && ! grep -qv "pid=$1," <<<"$lines"
}

# Waits until `check` passes while the component stays alive. The wait ends
# after `patience` seconds without progress; progress is a new log line
# matching `progress` (ppe-server's "reconcile: N/M restored").
wait_alive() {  # component, port, patience (s), progress regex, check command...
  local c=$1 port=$2 patience=$3 progress=$4; shift 4
  local pid last="" now since=$SECONDS
  pid=$(cat "$RUN/$c.pid")
  while ! "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$c" "$port" "exited during start-up"
    if [[ -n "$progress" ]]; then
      now=$(tail -c +$((${LOG_FROM[$c]:-0} + 1)) "$RUN/log/$c.log" 2>/dev/null |
        grep -aE "$progress" | tail -n 1 || true)
      if [[ "$now" != "$last" ]]; then
        last=$now
        since=$SECONDS
        [[ -n "$now" ]] && echo "  $c: ${now##*] }"
      fi
    fi
    ((SECONDS - since < patience)) || fail "$c" "$port" "no answer and no progress for $patience s"
    sleep 0.1
  done
}

etcd_ok() {  # component, client port
  owns_port "$(cat "$RUN/$1.pid")" -t "$2" &&
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$2" --command-timeout=2s endpoint health
}
ppe_ok() {  # component, gRPC port. grpc.health.v1: NOT_SERVING while the start-up reconcile runs
  owns_port "$(cat "$RUN/$1.pid")" -t "$2" &&
    "$PPECTL_BIN" --server "127.0.0.1:$2" --timeout-ms 2000 health
}
cluster_ok() {  # gRPC port of a replica: it knows a leader and every replica
  local out
  out=$("$PPECTL_BIN" --server "127.0.0.1:$1" --timeout-ms 2000 status) &&
    grep -q "^replicas ($REPLICAS):" <<<"$out" && grep -q " LEADER" <<<"$out"
}
backend_ok() { ss -Hlxp 2>/dev/null | grep -F "$2" | grep -q "pid=$(cat "$RUN/$1.pid"),"; }  # component, socket
pdns_ok() {  # component, DNS port
  local pid
  pid=$(cat "$RUN/$1.pid")
  owns_port "$pid" -u "$2" && owns_port "$pid" -t "$2" &&
    dig @127.0.0.1 -p "$2" cdn.example.test SOA +short +time=1 +tries=1 | grep -q hostmaster
}

# Every component, with the port or socket its failure is reported with and
# the check that it answers, in start order: NAME|PORTS|CHECK...
CHECKS=()

if [[ $MODE == cluster ]]; then
  # One CPT key ring for every replica (the operator distributes this file).
  if [[ ! -s "$RUN/cpt-keys" ]]; then
    (umask 077 && printf '# PPE CPT keys: <version> <hex key>; the highest version issues new tags.\n0 %s\n' \
      "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$RUN/cpt-keys")
  fi
  # The hosts: one private libvirtd per region, each its own bridge and /24.
  HOST_URIS=() HOST_BRIDGES=()
  for h in 0 1; do
    HOST_BRIDGES[h]=ppe${HOST_NETS[h]//./}
    start_host "$RUN/host-${HOST_REGIONS[h]}" "${HOST_BRIDGES[h]}" "${HOST_NETS[h]}.1/24"
    HOST_URIS[h]=$HOST_URI
  done
  # etcd: all members start at once (the first needs a quorum to answer).
  peers="" ETCD_ENDPOINTS="" ETCD_CLIENTS=""
  for ((m = 0; m < ETCD_MEMBERS; m++)); do
    peers+="${peers:+,}m$m=http://127.0.0.1:$((ETCD_PORT + 2 * m + 1))"
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+ }etcd_endpoints: \"127.0.0.1:$((ETCD_PORT + 2 * m))\""
    ETCD_CLIENTS+="${ETCD_CLIENTS:+,}127.0.0.1:$((ETCD_PORT + 2 * m))"
  done
  for ((m = 0; m < ETCD_MEMBERS; m++)); do
    client=http://127.0.0.1:$((ETCD_PORT + 2 * m)) peer=http://127.0.0.1:$((ETCD_PORT + 2 * m + 1))
    start "etcd-$m" etcd --name "m$m" --data-dir "$RUN/etcd/m$m" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$peers" --initial-cluster-state new --initial-cluster-token ppe-quickstart
    CHECKS+=("etcd-$m|$((ETCD_PORT + 2 * m)), peer $((ETCD_PORT + 2 * m + 1))|etcd_ok etcd-$m $((ETCD_PORT + 2 * m))")
  done
  for c in "${CHECKS[@]}"; do
    IFS='|' read -r name ports check <<<"$c"
    # shellcheck disable=SC2086 # the check and its arguments
    wait_alive "$name" "$ports" 30 "" $check
  done
  # The replicas: each its own ports and state_dir, one etcd, one key file.
  REPLICA_PORTS=()
  for ((r = 0; r < REPLICAS; r++)); do
    dir=$RUN/ppe-$r
    mkdir -p "$dir/state"
    # Configs are written once; edit them under $RUN and rerun to keep your changes.
    [[ -f "$dir/ppe.conf" ]] ||
      render ppe-cluster "$dir" $((GRPC_PORT + r)) $((METRICS_PORT + r)) >"$dir/ppe.conf"
    grpc=$(conf_port "$dir/ppe.conf" '^listen: *"[^"]*:\([0-9]*\)".*' $((GRPC_PORT + r)))
    metrics=$(conf_port "$dir/ppe.conf" '^metrics_listen: *"[^"]*:\([0-9]*\)".*' $((METRICS_PORT + r)))
    REPLICA_PORTS+=("$grpc")
    start "ppe-server-$r" "$BUILD/ppe-service/ppe-server" --config "$dir/ppe.conf"
    CHECKS+=("ppe-server-$r|$grpc, metrics $metrics|ppe_ok ppe-server-$r $grpc")
  done
  for ((r = 0; r < REPLICAS; r++)); do
    IFS='|' read -r name ports check <<<"${CHECKS[ETCD_MEMBERS + r]}"
    # shellcheck disable=SC2086 # the check and its arguments
    wait_alive "$name" "$ports" 30 'reconcile: [0-9]+/[0-9]+ restored|reconciled with' $check
  done
  wait_alive ppe-server-0 "${REPLICA_PORTS[0]}" 15 "" cluster_ok "${REPLICA_PORTS[0]}"
  TARGET="ipv4:$(printf '127.0.0.1:%s,' "${REPLICA_PORTS[@]}" | sed 's/,$//')"
  DNS_PORTS=()
  for ((d = 0; d < DNS_SERVERS; d++)); do
    dir=$RUN/dns-$d
    mkdir -p "$dir/pdns" "$dir/state"
    [[ -f "$dir/plugin.conf" ]] ||
      render plugin "$dir" | sed "s|^ppe_target:.*|ppe_target: \"$TARGET\"  # every replica, round robin|" \
        >"$dir/plugin.conf"
    [[ -f "$dir/pdns/pdns.conf" ]] ||
      render pdns "$dir" "$GRPC_PORT" "$METRICS_PORT" $((DNS_PORT + d)) >"$dir/pdns/pdns.conf"
    dns=$(conf_port "$dir/pdns/pdns.conf" '^local-port=\([0-9]*\).*' $((DNS_PORT + d)))
    DNS_PORTS+=("$dns")
    start "ppe-backend-$d" "$BUILD/backend-plugin/ppe-backend" --config "$dir/plugin.conf"
    wait_alive "ppe-backend-$d" "$dir/backend.sock" 10 "" backend_ok "ppe-backend-$d" "$dir/backend.sock"
    CHECKS+=("ppe-backend-$d|$dir/backend.sock|backend_ok ppe-backend-$d $dir/backend.sock")
    start "pdns-$d" pdns_server --config-dir="$dir/pdns" --daemon=no --guardian=no
    wait_alive "pdns-$d" "$dns" 10 "" pdns_ok "pdns-$d" "$dns"
    CHECKS+=("pdns-$d|$dns|pdns_ok pdns-$d $dns")
  done
  CHECKS+=("ppe-server-0|${REPLICA_PORTS[0]}|cluster_ok ${REPLICA_PORTS[0]}")
else
  mkdir -p "$RUN/state" "$RUN/pdns"
  PPE_TEMPLATE=ppe
  if [[ $MODE == lxc ]]; then
    PPE_TEMPLATE=ppe-lxc
    start_host "$RUN/lxc" "$LXC_BRIDGE" "$LXC_SUBNET.1/24"
    HYPERVISOR_URI=$HOST_URI
  fi
  # Configs are written once; edit them under $RUN and rerun to keep your changes.
  [[ -f "$RUN/ppe.conf" ]] || render "$PPE_TEMPLATE" >"$RUN/ppe.conf"
  [[ -f "$RUN/plugin.conf" ]] || render plugin >"$RUN/plugin.conf"
  [[ -f "$RUN/pdns/pdns.conf" ]] || render pdns >"$RUN/pdns/pdns.conf"
  # Check the ports the (possibly edited, possibly older) configs name.
  GRPC_PORT=$(conf_port "$RUN/ppe.conf" '^listen: *"[^"]*:\([0-9]*\)".*' "$GRPC_PORT")
  DNS_PORT=$(conf_port "$RUN/pdns/pdns.conf" '^local-port=\([0-9]*\).*' "$DNS_PORT")
  conf_metrics=$(conf_port "$RUN/ppe.conf" '^metrics_listen: *"[^"]*:\([0-9]*\)".*' "")
  PPE_PORTS="$GRPC_PORT${conf_metrics:+, metrics $conf_metrics}"

  # ppe-server reconciles libvirt with its registry before it serves (health
  # NOT_SERVING meanwhile): wait as long as that makes progress.
  start ppe-server "$BUILD/ppe-service/ppe-server" --config "$RUN/ppe.conf"
  wait_alive ppe-server "$PPE_PORTS" 30 'reconcile: [0-9]+/[0-9]+ restored|reconciled with' \
    ppe_ok ppe-server "$GRPC_PORT"
  start ppe-backend "$BUILD/backend-plugin/ppe-backend" --config "$RUN/plugin.conf"
  wait_alive ppe-backend "$RUN/backend.sock" 10 "" backend_ok ppe-backend "$RUN/backend.sock"
  start pdns pdns_server --config-dir="$RUN/pdns" --daemon=no --guardian=no
  wait_alive pdns "$DNS_PORT" 10 "" pdns_ok pdns "$DNS_PORT"
  CHECKS=("ppe-server|$PPE_PORTS|ppe_ok ppe-server $GRPC_PORT"
          "ppe-backend|$RUN/backend.sock|backend_ok ppe-backend $RUN/backend.sock"
          "pdns|$DNS_PORT|pdns_ok pdns $DNS_PORT")
fi

# Still all there (a component that lost a race for its port exits late).
sleep 0.3
for c in "${CHECKS[@]}"; do
  IFS='|' read -r name ports check <<<"$c"
  # shellcheck disable=SC2086 # the check and its arguments
  $check >/dev/null 2>&1 || fail "$name" "$ports" "stopped answering"
done

if [[ $MODE == cluster ]]; then
  PPECTL="$PPECTL_BIN --server 127.0.0.1:${REPLICA_PORTS[0]}"
  cat <<MSG

PPE cluster is running, state in $RUN:
  etcd members on $ETCD_CLIENTS (data in $RUN/etcd)
  ppe-server replicas, gRPC on 127.0.0.1:${REPLICA_PORTS[*]} (one CPT key file, $RUN/cpt-keys)
  hosts: eu-west-1 (bridge ${HOST_BRIDGES[0]}, ${HOST_NETS[0]}.0/24), us-east-1 (bridge ${HOST_BRIDGES[1]}, ${HOST_NETS[1]}.0/24)
  pdns_server + ppe-backend on 127.0.0.1:${DNS_PORTS[*]}, each plugin on every replica
Try:
  $PPECTL issue --service video --region eu-west --device tv --tier premium --json
  dig @127.0.0.1 -p ${DNS_PORTS[0]} <hostname from above> A +short    # an eu-west container
  dig @127.0.0.1 -p ${DNS_PORTS[1]} <hostname from above> A +short    # the same address
  curl -s http://<address>:8080/ | head -n 3
  $PPECTL status     # the leader and 3 replicas (ids are <host>:<pid>), watch lags
  kill -9 <pid of the LEADER>   # status again: a new leader within ~2 s (lease TTL),
                                # and both digs still answer
  ETCDCTL_API=3 etcdctl --endpoints $ETCD_CLIENTS endpoint status -w table
Logs in $RUN/log. Stop everything with: $0 --cluster stop
MSG
  exit 0
fi

PPECTL="$PPECTL_BIN --server 127.0.0.1:$GRPC_PORT"
cat <<MSG

PPE is running: DNS on 127.0.0.1:$DNS_PORT, gRPC on 127.0.0.1:$GRPC_PORT, state in $RUN.
Try:
  $PPECTL issue --service video --region eu-west --device tv --tier premium --json
  dig @127.0.0.1 -p $DNS_PORT <hostname from above> A +short
  dig @127.0.0.1 -p $DNS_PORT video.cdn.example.test A +subnet=198.51.100.0/24
  $PPECTL vms
  $PPECTL profiles
  $PPECTL status
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^ppe_
Stop everything with: $0 $([[ $MODE == lxc ]] && echo "--lxc ")stop
MSG
