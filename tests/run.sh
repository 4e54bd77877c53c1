#!/usr/bin/env bash
# Sets up and runs every test: installs what is missing (Debian packages),
# builds, checks formatting, runs ctest (unit, integration, store, forecast,
# security, real LXC containers, end-to-end through a real pdns_server), then a
# clang ASan/UBSan build: fuzzing and the unit tests again under the sanitizers.
# Exits non-zero on any failure.
#
# Environment: PPE_BUILD_DIR (default ./build), PPE_SKIP_SANITIZE=1 to skip the
# clang/sanitizer/fuzz pass, PPE_CTEST_ARGS for extra ctest arguments (e.g. "-R unit").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
export PPE_BUILD_DIR=$BUILD
JOBS=${PPE_JOBS:-2}
start=$(date +%s)
step() { echo; echo "=== $* ($(($(date +%s) - start)) s)"; }

step "dependencies"
"$ROOT/deploy/install-deps.sh" --test

step "build"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPE_BUILD_TESTS=ON >/dev/null
ninja -C "$BUILD" -j"$JOBS"

step "format"
mapfile -t sources < <(cd "$ROOT" && git ls-files '*.h' '*.cc' 2>/dev/null || find . -name '*.h' -o -name '*.cc')
(cd "$ROOT" && clang-format --dry-run -Werror "${sources[@]}")

step "ctest"
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" ${PPE_CTEST_ARGS:-}

if [[ "${PPE_SKIP_SANITIZE:-0}" != 1 ]]; then
  # One clang build with ASan + UBSan and thread-safety warnings as errors, of
  # the fuzz targets and the unit, integration, store and forecast tests
  # (between them every library): the fuzz targets run 20 s each, then the tests run again
  # under the sanitizers. (tests/fuzz/run_fuzz.sh alone builds the whole tree.)
  step "clang ASan/UBSan build (-Werror=thread-safety) and fuzzing, 20 s per target"
  SAN="$BUILD-fuzz"
  PPE_JOBS=$JOBS PPE_FUZZ_BUILD_DIR="$SAN" PPE_FUZZ_BUILD_ALL=0 \
    PPE_FUZZ_EXTRA_TARGETS="unit_tests integration_tests store_tests forecast_tests" \
    "$ROOT/tests/fuzz/run_fuzz.sh" 20
  step "unit, integration, store and forecast tests under ASan/UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/fuzz/ubsan.supp
  # Not the tests that run the server binaries (e2e) or inspect them (layering):
  # this build makes only the test binaries and the fuzz targets.
  ctest --test-dir "$SAN" --output-on-failure -j"$JOBS" -R '^(unit|integration|store|forecast/)' \
    -LE '^(e2e|layering)$'
fi

step "all tests passed"
