#!/usr/bin/env bash
# PPE quick start: installs, builds, configures and starts ppe-server, the
# PowerDNS backend plugin and pdns_server (zone cdn.example.test. on 127.0.0.1:5300).
#
#   deploy/quickstart.sh          set up and start (safe to run again)
#   deploy/quickstart.sh --lxc    the same on real LXC containers: a private
#                                 libvirtd and bridge ppebr0 (10.213.0.1/24),
#                                 each VM an HTTP server on its own address
#   deploy/quickstart.sh [--lxc] stop     stop everything (by PID)
#   deploy/quickstart.sh [--lxc] status   show what runs
#
# Environment: PPE_RUN_DIR (default ./run, ./run-lxc with --lxc), PPE_BUILD_DIR (default ./build),
# PPE_DNS_PORT (5300), PPE_GRPC_PORT (50051), PPE_METRICS_PORT (9464),
# PPE_HYPERVISOR_URI (test:///default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LXC=0
if [[ "${1:-}" == "--lxc" ]]; then
  LXC=1
  shift
fi
if [[ $LXC == 1 ]]; then RUN=${PPE_RUN_DIR:-$ROOT/run-lxc}; else RUN=${PPE_RUN_DIR:-$ROOT/run}; fi
LXC_BRIDGE=${PPE_LXC_BRIDGE:-ppebr0}
LXC_SUBNET=${PPE_LXC_SUBNET:-10.213.0}
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
DNS_PORT=${PPE_DNS_PORT:-5300}
GRPC_PORT=${PPE_GRPC_PORT:-50051}
METRICS_PORT=${PPE_METRICS_PORT:-9464}
HYPERVISOR_URI=${PPE_HYPERVISOR_URI:-test:///default}
COMPONENTS=(ppe-server ppe-backend pdns)

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop_all() {
  # Reverse order: pdns first, so it never queries a backend that is gone.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    local c=${COMPONENTS[$i]}
    if pid_alive "$c"; then
      local pid
      pid=$(cat "$RUN/$c.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $c (pid $pid)"
    fi
    rm -f "$RUN/$c.pid"
  done
  if [[ -d "$RUN/lxc" ]]; then
    "$ROOT/deploy/lxc/teardown.sh" "$RUN/lxc" "$(cat "$RUN/lxc/bridge" 2>/dev/null || echo "$LXC_BRIDGE")"
  fi
}

status() {
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
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
if [[ $LXC == 1 ]]; then
  PPE_TEMPLATE=ppe-lxc
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

start() {  # name, command...
  local name=$1; shift
  if pid_alive "$name"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" >>"$RUN/log/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "started $name (pid $!), log $RUN/log/$name.log"
}
wait_for() {  # what, test command...
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "quickstart: $what did not come up; see $RUN/log/" >&2
  exit 1
}

start ppe-server "$BUILD/ppe-service/ppe-server" --config "$RUN/ppe.conf"
wait_for "ppe-server" "$BUILD/ppe-service/ppectl/ppectl" --server "127.0.0.1:$GRPC_PORT" profiles
start ppe-backend "$BUILD/backend-plugin/ppe-backend" --config "$RUN/plugin.conf"
wait_for "ppe-backend" test -S "$RUN/backend.sock"
start pdns pdns_server --config-dir="$RUN/pdns" --daemon=no --guardian=no
wait_for "pdns_server" bash -c "dig @127.0.0.1 -p $DNS_PORT cdn.example.test SOA +short +time=1 +tries=1 | grep -q hostmaster"

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
