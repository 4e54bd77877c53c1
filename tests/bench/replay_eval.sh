#!/bin/bash
# Replays the shipped request-rate traces (tests/data/) with ppe-replay
# (ppe-service/replay/) and prints its JSON lines, one per policy. The
# windows are those of docs/evaluation.md: WorldCup98 per minute from day 46
# (1998-06-16, the group stage), NASA-KSC per second summed to minutes from
# day 2 (1995-07-03, a Monday); 5 days each, the first 3 a warm-up.
#
#   tests/bench/replay_eval.sh [BUILD_DIR] [extra ppe-replay options, e.g. --sweep --plot]
# With --plot, give a file name prefix: --plot out/pareto (-> out/pareto-worldcup98.png).
# With TRACES_OUT=DIR in the environment, the two count files are kept there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
DATA=$ROOT/tests/data
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# WorldCup98: requests per minute (CSV period,count), days 46-50.
xz -dc "$DATA/worldcup98-per-minute.csv.xz" | tail -n +2 | cut -d, -f2 |
  sed -n "$((46 * 1440 + 1)),$((51 * 1440))p" > "$TMP/worldcup98.txt"
# NASA-KSC: requests per second, summed to minutes, days 2-6.
tar xjf "$DATA/nasa-ksc-1995-per-second.tbz2" -C "$TMP"
tr ' ' '\n' < "$(find "$TMP" -name workload.txt)" |
  awk 'NF { s += $1; if (++n == 60) { print s; s = 0; n = 0 } }' |
  sed -n "$((2 * 1440 + 1)),$((7 * 1440))p" > "$TMP/nasa-ksc.txt"

[ -n "${TRACES_OUT:-}" ] && mkdir -p "$TRACES_OUT" && cp "$TMP/worldcup98.txt" "$TMP/nasa-ksc.txt" "$TRACES_OUT/"

args=()
plot=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--plot" ]; then plot=$2; shift 2; else args+=("$1"); shift; fi
done
for trace in worldcup98 nasa-ksc; do
  extra=()
  [ -n "$plot" ] && extra=(--plot "$plot-$trace.png")
  "$BUILD/ppe-service/replay/ppe-replay" --counts "$TMP/$trace.txt" --bucket-seconds 60 \
    --warmup-buckets 4320 --period 1440 ${args[@]+"${args[@]}"} ${extra[@]+"${extra[@]}"}
done
