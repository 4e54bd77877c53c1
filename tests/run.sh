#!/usr/bin/env bash
# Sets up and runs every test: installs what is missing (Debian packages),
# builds, checks formatting, runs ctest (one Catch2 binary per component,
# "<component>: <case>", labelled unit, integration, store, dataplane, security;
# real LXC containers; end-to-end through a real pdns_server), then a clang
# ASan/UBSan build: fuzzing and the component tests again under the sanitizers.
# Exits non-zero on any failure.
#
# Environment: PPE_BUILD_DIR (default ./build), PPE_SKIP_SANITIZE=1 to skip the
# clang/sanitizer/fuzz pass, PPE_CTEST_ARGS for extra ctest arguments (e.g. "-L unit" or "-R '^scaler: '").
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
  # the fuzz targets and of `sanitize_tests`: every component's Catch2 binary
  # (tests/cmake/ppe_component_tests.cmake; between them every library). The
  # fuzz targets run 20 s each, then the tests labelled `sanitize` run again
  # under the sanitizers. (tests/fuzz/run_fuzz.sh alone builds the whole tree.)
  step "clang ASan/UBSan build (-Werror=thread-safety) and fuzzing, 20 s per target"
  SAN="$BUILD-fuzz"
  PPE_JOBS=$JOBS PPE_FUZZ_BUILD_DIR="$SAN" PPE_FUZZ_BUILD_ALL=0 \
    PPE_FUZZ_EXTRA_TARGETS="sanitize_tests" \
    "$ROOT/tests/fuzz/run_fuzz.sh" 20
  step "component tests under ASan/UBSan (ctest -L sanitize)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/fuzz/ubsan.supp
  # Only the Catch2 cases: this build makes the test binaries and the fuzz
  # targets, not the server binaries the e2e tests run.
  ctest --test-dir "$SAN" --output-on-failure -j"$JOBS" -L '^sanitize$'
fi

step "all tests passed"
