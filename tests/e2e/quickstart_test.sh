#!/usr/bin/env bash
# The README's quick start, as a user runs it: start, issue a CPT, resolve it,
# find its address among the profile's VMs, run it again (safe); a second
# instance on the same ports fails loudly and leaves the first serving; `stop`
# without --lxc finds the instance in the other run directory; nothing left.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PPE_RUN_DIR=$(mktemp -d /tmp/ppe-quickstart-XXXXXX)
export PPE_DNS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PPE_GRPC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PPE_METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
QS="$ROOT/deploy/quickstart.sh"
PPECTL="${PPE_BUILD_DIR:-$ROOT/build}/ppe-service/ppectl/ppectl --server 127.0.0.1:$PPE_GRPC_PORT"
SECOND=$(mktemp -d /tmp/ppe-quickstart-XXXXXX)
cleanup() {
  "$QS" stop >/dev/null 2>&1 || true
  PPE_RUN_DIR=$SECOND "$QS" stop >/dev/null 2>&1 || true
  rm -rf "$PPE_RUN_DIR" "$SECOND"
}
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

# A second instance (its own run directory) on the same ports: it must fail,
# name what failed, stop what it started, and leave the first one serving.
set +e
second_err=$(PPE_RUN_DIR=$SECOND "$QS" 2>&1 >/dev/null)
second_rc=$?
set -e
[[ $second_rc != 0 ]] || fail "a second instance on the same ports reported success"
grep -qE "quickstart: (ppe-server|ppe-backend|pdns) \((port [0-9][^)]*|/[^)]+)\): " <<<"$second_err" ||
  fail "the failure does not name a component and its port: $second_err"
grep -qE "quickstart: [^ ]+\.log: .*(cannot listen|Unable to bind|in use|binding to port)" <<<"$second_err" ||
  fail "the failure does not quote the component's log line: $second_err (log: $(cat "$SECOND"/log/*.log))"
echo "ok: second instance failed (exit $second_rc): $(grep -m1 'quickstart: ' <<<"$second_err")"
for f in "$SECOND"/*.pid; do
  [[ -e "$f" ]] || continue
  kill -0 "$(cat "$f")" 2>/dev/null && fail "the failed run left $(basename "$f" .pid) running"
done
for pid in $pids_after; do
  kill -0 "$pid" 2>/dev/null || fail "the failed second run stopped pid $pid of the first"
done
[[ "$(dig @127.0.0.1 -p "$PPE_DNS_PORT" "$host" A +short)" == "$addr" ]] ||
  fail "the first instance no longer answers"
echo "ok: the first instance still serves, nothing of the second runs"

# `stop` without --lxc, run for another default directory, finds the instance
# in the --lxc one (here: our run directory) and says what it stopped.
pids=$(cat "$PPE_RUN_DIR"/*.pid)
stopped=$(PPE_LXC_RUN_DIR=$PPE_RUN_DIR PPE_RUN_DIR=$SECOND "$QS" stop)
grep -q "stopping the instance in $PPE_RUN_DIR" <<<"$stopped" || fail "stop did not say what it stopped: $stopped"
for pid in $pids; do
  kill -0 "$pid" 2>/dev/null && fail "pid $pid still running after stop"
done
echo "ok: stop found the other instance and leaves nothing running"
again=$("$QS" stop)
[[ "$again" == "nothing running in: $PPE_RUN_DIR" ]] || fail "a second stop said: $again"
