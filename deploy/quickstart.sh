#!/usr/bin/env bash
# PPE quick start: installs, builds, configures and starts ppe-server, the
# PowerDNS backend plugin and pdns_server (zone cdn.example.test. on 127.0.0.1:5300).
#
#   deploy/quickstart.sh          set up and start (safe to run again)
#   deploy/quickstart.sh --lxc    the same on real LXC containers: a private
#                                 libvirtd and bridge ppebr0 (10.213.0.1/24),
#                                 each VM an HTTP server on its own address
#   deploy/quickstart.sh stop           stop whichever instance of this checkout
#                                       runs (./run and ./run-lxc; by PID)
#   deploy/quickstart.sh --lxc stop     stop only the --lxc instance
#   deploy/quickstart.sh [--lxc] status show what runs
#
# Success is printed only once every component is alive, holds its own port
# and answers: ppe-server (gRPC health SERVING, after its start-up reconcile), ppe-backend
# (its socket) and pdns_server (an SOA query through the plugin). Otherwise it
# names the component, its port and the log line, stops what this run started
# and nothing else, and exits 1.
#
# Environment: PPE_RUN_DIR (default ./run, ./run-lxc with --lxc), PPE_LXC_RUN_DIR
# (the --lxc one, default PPE_RUN_DIR or ./run-lxc), PPE_BUILD_DIR (default ./build),
# PPE_DNS_PORT (5300), PPE_GRPC_PORT (50051), PPE_METRICS_PORT (9464),
# PPE_HYPERVISOR_URI (test:///default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LXC=0
if [[ "${1:-}" == "--lxc" ]]; then
  LXC=1
  shift
fi
TEST_RUN=${PPE_RUN_DIR:-$ROOT/run}
LXC_RUN=${PPE_LXC_RUN_DIR:-${PPE_RUN_DIR:-$ROOT/run-lxc}}
if [[ $LXC == 1 ]]; then RUN=$LXC_RUN; else RUN=$TEST_RUN; fi
LXC_BRIDGE=${PPE_LXC_BRIDGE:-ppebr0}
LXC_SUBNET=${PPE_LXC_SUBNET:-10.213.0}
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
DNS_PORT=${PPE_DNS_PORT:-5300}
GRPC_PORT=${PPE_GRPC_PORT:-50051}
METRICS_PORT=${PPE_METRICS_PORT:-9464}
HYPERVISOR_URI=${PPE_HYPERVISOR_URI:-test:///default}
COMPONENTS=(ppe-server ppe-backend pdns)

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

stop_all() {
  # Reverse order: pdns first, so it never queries a backend that is gone.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[$i]}"; done
  if [[ -d "$RUN/lxc" ]]; then
    "$ROOT/deploy/lxc/teardown.sh" "$RUN/lxc" "$(cat "$RUN/lxc/bridge" 2>/dev/null || echo "$LXC_BRIDGE")"
  fi
}

status() {
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

has_instance() {  # something of an instance in $RUN is running
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" && return 0; done
  [[ -s "$RUN/lxc/libvirtd.pid" ]] && kill -0 "$(cat "$RUN/lxc/libvirtd.pid")" 2>/dev/null
}

# Without --lxc, stop and status cover every instance of this checkout: the
# test-driver one and the --lxc one.
instance_dirs() {
  if [[ $LXC == 1 || "$TEST_RUN" == "$LXC_RUN" ]]; then echo "$RUN"; else echo "$TEST_RUN $LXC_RUN"; fi
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
    [[ $found == 1 ]] || echo "nothing running in: $(instance_dirs)"
    exit 0 ;;
  status)
    for RUN in $(instance_dirs); do echo "$RUN:"; status | sed 's/^/  /'; done
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [--lxc] [start|stop|status]" >&2; exit 2 ;;
esac

"$ROOT/deploy/install-deps.sh"
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPE_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$BUILD" -j"$(nproc)" ppe-server ppe-backend ppectl

mkdir -p "$RUN/state" "$RUN/pdns" "$RUN/log"
PPE_TEMPLATE=ppe
STARTED=()  # what this run started, stopped again if the start fails
declare -A LOG_FROM  # component -> its log's size before this run started it
LXC_STARTED=0
if [[ $LXC == 1 ]]; then
  PPE_TEMPLATE=ppe-lxc
  [[ -s "$RUN/lxc/libvirtd.pid" ]] && kill -0 "$(cat "$RUN/lxc/libvirtd.pid")" 2>/dev/null || LXC_STARTED=1
  HYPERVISOR_URI=$("$ROOT/deploy/lxc/setup.sh" "$RUN/lxc" "$LXC_BRIDGE" "$LXC_SUBNET.1/24")
fi
render() {
  sed -e "s#@RUN@#$RUN#g; s#@GRPC_PORT@#$GRPC_PORT#g; s#@DNS_PORT@#$DNS_PORT#g" \
      -e "s#@METRICS_PORT@#$METRICS_PORT#g; s#@BRIDGE@#$LXC_BRIDGE#g" \
      -e "s#@SUBNET@#$LXC_SUBNET#g; s#@GATEWAY@#$LXC_SUBNET.1#g" \
      -e "s#@HYPERVISOR_URI@#$HYPERVISOR_URI#g" "$ROOT/deploy/conf/$1.conf.in"
}
# Configs are written once; edit them under $RUN and rerun to keep your changes.
[[ -f "$RUN/ppe.conf" ]] || render "$PPE_TEMPLATE" >"$RUN/ppe.conf"
[[ -f "$RUN/plugin.conf" ]] || render plugin >"$RUN/plugin.conf"
[[ -f "$RUN/pdns/pdns.conf" ]] || render pdns >"$RUN/pdns/pdns.conf"
# Check the ports the (possibly edited, possibly older) configs name.
conf_port=$(sed -n 's/^listen: *"[^"]*:\([0-9]*\)".*/\1/p' "$RUN/ppe.conf" | tail -n 1)
GRPC_PORT=${conf_port:-$GRPC_PORT}
conf_port=$(sed -n 's/^local-port=\([0-9]*\).*/\1/p' "$RUN/pdns/pdns.conf" | tail -n 1)
DNS_PORT=${conf_port:-$DNS_PORT}
conf_port=$(sed -n 's/^metrics_listen: *"[^"]*:\([0-9]*\)".*/\1/p' "$RUN/ppe.conf" | tail -n 1)
PPE_PORTS="$GRPC_PORT${conf_port:+, metrics $conf_port}"

PPECTL_BIN="$BUILD/ppe-service/ppectl/ppectl"

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
  local log="$RUN/log/$1.log" line="" recent
  if [[ -f "$log" ]]; then
    recent=$(tail -c +$((${LOG_FROM[$1]:-0} + 1)) "$log" | grep -av '^\s*$' || true)
    # A component that exited said why last; one that hangs, in its last error.
    pid_alive "$1" && line=$(grep -aiE 'error|fatal|unable|cannot|refus' <<<"$recent" | tail -n 1 || true)
    [[ -n "$line" ]] || line=$(tail -n 1 <<<"$recent")
  fi
  if [[ $2 =~ ^[0-9] ]]; then echo "quickstart: $1 (port $2): $3" >&2; else echo "quickstart: $1 ($2): $3" >&2; fi
  [[ -n "$line" ]] && echo "quickstart: $log: $line" >&2
  local p holders
  for p in $(grep -oE '\b[0-9]+\b' <<<"$2" || true); do
    holders=$(ss -Hlnptu "sport = :$p" 2>/dev/null | grep -o 'users:(([^)]*))' | sort -u | tr '\n' ' ')
    [[ -z "$holders" ]] || echo "quickstart: port $p is held by $holders" >&2
  done
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_component "${STARTED[$i]}" >&2; done
  if [[ $LXC_STARTED == 1 ]]; then
    "$ROOT/deploy/lxc/teardown.sh" "$RUN/lxc" "$LXC_BRIDGE" >&2 || true
  fi
  exit 1
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

ppe_ok() {  # grpc.health.v1: NOT_SERVING while the start-up reconcile runs
  owns_port "$(cat "$RUN/ppe-server.pid")" -t "$GRPC_PORT" &&
    "$PPECTL_BIN" --server "127.0.0.1:$GRPC_PORT" --timeout-ms 2000 health
}
backend_ok() { ss -Hlxp 2>/dev/null | grep -F "$RUN/backend.sock" | grep -q "pid=$(cat "$RUN/ppe-backend.pid"),"; }
pdns_ok() {
  local pid
  pid=$(cat "$RUN/pdns.pid")
  owns_port "$pid" -u "$DNS_PORT" && owns_port "$pid" -t "$DNS_PORT" &&
    dig @127.0.0.1 -p "$DNS_PORT" cdn.example.test SOA +short +time=1 +tries=1 | grep -q hostmaster
}

# ppe-server reconciles libvirt with its registry before it serves (health
# NOT_SERVING meanwhile): wait as long as that makes progress.
start ppe-server "$BUILD/ppe-service/ppe-server" --config "$RUN/ppe.conf"
wait_alive ppe-server "$PPE_PORTS" 30 'reconcile: [0-9]+/[0-9]+ restored|reconciled with' ppe_ok
start ppe-backend "$BUILD/backend-plugin/ppe-backend" --config "$RUN/plugin.conf"
wait_alive ppe-backend "$RUN/backend.sock" 10 "" backend_ok
start pdns pdns_server --config-dir="$RUN/pdns" --daemon=no --guardian=no
wait_alive pdns "$DNS_PORT" 10 "" pdns_ok
# Still all there (a component that lost a race for its port exits late).
sleep 0.3
ppe_ok >/dev/null 2>&1 || fail ppe-server "$PPE_PORTS" "stopped answering"
backend_ok || fail ppe-backend "$RUN/backend.sock" "stopped listening"
pdns_ok || fail pdns "$DNS_PORT" "stopped answering"

PPECTL="$BUILD/ppe-service/ppectl/ppectl --server 127.0.0.1:$GRPC_PORT"
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
Stop everything with: $0 $([[ $LXC == 1 ]] && echo "--lxc ")stop
MSG
