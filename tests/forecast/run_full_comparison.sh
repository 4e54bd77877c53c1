#!/bin/sh
# Full-set benchmark: all 414 M4 hourly series (h = 48), ours vs R's ets (all
# series) and auto.arima (every 41st series) vs statsmodels. Takes ~1 h on one
# core (R's ets ~3-5 s per series, auto.arima ~10-40 s). Not part of ctest.
#
#   tests/forecast/run_full_comparison.sh BUILD_DIR [OUT_DIR] [R_JSON]
#
# R_JSON reuses the R results of an earlier run (OUT_DIR/r_reference.json).
set -eu
build="${1:?usage: $0 BUILD_DIR [OUT_DIR] [R_JSON]}"
out="${2:-$build/forecast_full}"
here=$(cd "$(dirname "$0")" && pwd)
set -- --cli "$build/ppe-service/forecast/ppe-forecast" --subset full --no-pairs --skip-fixed \
  --out "$out" \
  ${3:+--r-json "$3"}
exec /usr/bin/python3 "$here/compare_with_r.py" "$@"
