#!/usr/bin/env bash
# The README's quick start, as a user runs it: start, issue a CPT, resolve it,
# find its address among the profile's VMs, run it again (safe), stop, nothing left.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PPE_RUN_DIR=$(mktemp -d /tmp/ppe-quickstart-XXXXXX)
export PPE_DNS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PPE_GRPC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PPE_METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
QS="$ROOT/deploy/quickstart.sh"
PPECTL="${PPE_BUILD_DIR:-$ROOT/build}/ppe-service/ppectl/ppectl --server 127.0.0.1:$PPE_GRPC_PORT"
cleanup() { "$QS" stop >/dev/null 2>&1 || true; rm -rf "$PPE_RUN_DIR"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$QS" >/dev/null
issued=$($PPECTL issue --service video --region eu-west --device tv --tier premium --json)
host=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["hostname"])' <<<"$issued")
cpt=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["cpt"])' <<<"$issued")
addr=$(dig @127.0.0.1 -p "$PPE_DNS_PORT" "$host" A +short)
[[ -n "$addr" ]] || fail "no address for $host"
vm_ips=$($PPECTL vms --json | python3 -c "import json,sys; print(' '.join(v['ip'] for v in json.load(sys.stdin)['vms'] if v['cpt']=='$cpt'))")
[[ " $vm_ips " == *" $addr "* ]] || fail "$addr is not among the profile's VMs ($vm_ips)"
echo "ok: $host -> $addr, listed by ppectl vms"

pids_before=$(cat "$PPE_RUN_DIR"/*.pid | sort | tr '\n' ' ')
"$QS" >/dev/null  # twice is safe: nothing restarted, same answer
pids_after=$(cat "$PPE_RUN_DIR"/*.pid | sort | tr '\n' ' ')
[[ "$pids_before" == "$pids_after" ]] || fail "second run restarted something ($pids_before / $pids_after)"
[[ "$(dig @127.0.0.1 -p "$PPE_DNS_PORT" "$host" A +short)" == "$addr" ]] || fail "answer changed"
echo "ok: second run is a no-op"

pids=$(cat "$PPE_RUN_DIR"/*.pid)
"$QS" stop >/dev/null
for pid in $pids; do
  kill -0 "$pid" 2>/dev/null && fail "pid $pid still running after stop"
done
echo "ok: stop leaves nothing running"
