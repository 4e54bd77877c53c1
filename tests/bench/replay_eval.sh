#!/bin/bash
# docs/design.md "Scaling": replays the real request-rate traces of tests/data/ through the
# PPE's scaler and the baseline policies (tests/bench/replay_eval.cc) and
# prints one table per trace.
#
#   tests/bench/replay_eval.sh [BUILD_DIR] [extra replay_eval options]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
DATA=$ROOT/tests/data
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# WorldCup98: requests per minute (CSV period,count).
xz -dc "$DATA/worldcup98-per-minute.csv.xz" | tail -n +2 | cut -d, -f2 > "$TMP/worldcup.txt"
# NASA-KSC: requests per second, summed to minutes.
tar xjf "$DATA/nasa-ksc-1995-per-second.tbz2" -C "$TMP"
tr ' ' '\n' < "$(find "$TMP" -name workload.txt)" |
  awk 'NF { s += $1; if (++n == 60) { print s; s = 0; n = 0 } }' > "$TMP/nasa.txt"

# WorldCup98 from 1998-06-16 (day 46: the group stage, a match most days);
# NASA from 1995-07-03 (day 2, a Monday).
"$BUILD/tests/bench/replay_eval" --series "$TMP/worldcup.txt" --name "WorldCup98" \
  --start_day 46 "$@"
echo
"$BUILD/tests/bench/replay_eval" --series "$TMP/nasa.txt" --name "NASA-KSC" --start_day 2 "$@"
