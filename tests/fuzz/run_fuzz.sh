#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + coverage on every
# library, thread-safety warnings as errors on every file) in build-fuzz/, then
# runs each target for N seconds (default 20) from the seed corpus in
# tests/fuzz/corpus/<target>/. Fails on any crash, leak, sanitizer report or
# broken invariant; the input that did it is left in build-fuzz/fuzz-artifacts/.
#
#   tests/fuzz/run_fuzz.sh [SECONDS]
# Environment: PPE_FUZZ_BUILD_DIR (default ./build-fuzz), PPE_JOBS (default 1),
# PPE_FUZZ_TARGETS (default: all three), PPE_FUZZ_BUILD_ALL=0 to build only the
# fuzz targets and what they link (skips the thread-safety check of the rest),
# plus PPE_FUZZ_EXTRA_TARGETS (e.g. sanitize_tests: the test binaries to run under the
# sanitizers, ctest -L sanitize).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_EACH=${1:-20}
BUILD=${PPE_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${PPE_JOBS:-1}
TARGETS=${PPE_FUZZ_TARGETS:-"remote_protocol_fuzz cpt_codec_fuzz name_parser_fuzz admin_input_fuzz"}

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DPPE_FUZZ=ON -DPPE_SANITIZE=ON -DPPE_BUILD_TESTS=ON \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link -Werror=thread-safety" \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
if [[ "${PPE_FUZZ_BUILD_ALL:-1}" == 1 ]]; then
  # Everything, so every file's thread-safety annotations are checked by clang.
  nice ninja -C "$BUILD" -j"$JOBS"
else
  # shellcheck disable=SC2086
  nice ninja -C "$BUILD" -j"$JOBS" $TARGETS ${PPE_FUZZ_EXTRA_TARGETS:-}
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/fuzz/ubsan.supp
ARTIFACTS="$BUILD/fuzz-artifacts"
mkdir -p "$ARTIFACTS"
failed=()
for target in $TARGETS; do
  # New inputs go to a work corpus in the build dir; the seeds stay as they are.
  work="$BUILD/fuzz-corpus/$target"
  mkdir -p "$work"
  dict=()
  [[ -f "$ROOT/tests/fuzz/${target%_fuzz}.dict" ]] && dict=(-dict="$ROOT/tests/fuzz/${target%_fuzz}.dict")
  echo "=== $target: ${SECONDS_EACH} s"
  if ! nice "$BUILD/tests/fuzz/$target" -max_total_time="$SECONDS_EACH" -timeout=10 \
      -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$ARTIFACTS/$target-" "$work" "$ROOT/tests/fuzz/corpus/$target" \
      >"$BUILD/fuzz-$target.log" 2>&1; then
    echo "FAILED: $target (log: $BUILD/fuzz-$target.log; input in $ARTIFACTS/)"
    tail -40 "$BUILD/fuzz-$target.log"
    failed+=("$target")
  else
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added)' \
      "$BUILD/fuzz-$target.log" || true
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing failed: ${failed[*]}"
  exit 1
fi
echo "fuzzing: no crash in ${TARGETS// /, } (${SECONDS_EACH} s each)"
