#!/usr/bin/env bash
# Installs what is missing, then runs the test suite (.ci/run calls exactly this). Stages,
# each timed in the output (docs/hardening.md):
#   1. clang AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan): the whole
#      suite (ctest), including a short libFuzzer run of each fuzz target from its corpus;
#   2. clang ThreadSanitizer build (build-tsan): the bus and engine tests (ZeroMQ sockets,
#      the credit window, the engine's writer, history and control threads); built and run
#      in the background while stage 1's tests run.
# Any sanitizer report aborts its process, so it fails a test.
# RUNREC_TESTS=plain runs the suite once on the plain build (gcc, build/) instead: quicker
# for a local check, and the build the README's first command uses.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)
sup=$PWD/tests/sanitizers
timed() {  # runs "$@", prints its time, returns its exit status
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  echo "test.sh: $name: $((SECONDS - start)) s"
  return "$rc"
}

case "${RUNREC_TESTS:-sanitizers}" in
  plain)
    timed "build" bash tools/build.sh
    timed "tests" ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900
    ;;
  sanitizers)
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
    export LSAN_OPTIONS="suppressions=$sup/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$sup/ubsan.supp"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$sup/tsan.supp"
    timed "asan+ubsan build" bash tools/build-sanitized.sh asan
    # The ThreadSanitizer stage builds and runs in the background, niced, while the ASan
    # tests run: those wait on threads and child processes more than they compute (their
    # CPU time is about 0.7 of two cores' wall time), so the TSan build takes the idle
    # CPU. Its output is printed when both are done.
    tsan=(test_bus test_engine)
    tsan_log=$(mktemp)
    (
      timed "tsan build" nice -n 10 bash tools/build-sanitized.sh tsan "${tsan[@]}"
      timed "tsan tests" ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 900 \
        -R "^($(IFS='|'; echo "${tsan[*]}"))\$"
    ) >"$tsan_log" 2>&1 &
    tsan_pid=$!
    asan_rc=0
    timed "asan+ubsan tests" ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 \
      || asan_rc=$?
    tsan_rc=0
    wait "$tsan_pid" || tsan_rc=$?
    echo "test.sh: tsan stage output:"
    cat "$tsan_log"
    rm -f "$tsan_log"
    if [ "$asan_rc" -ne 0 ] || [ "$tsan_rc" -ne 0 ]; then
      echo "test.sh: FAILED (asan+ubsan tests exit $asan_rc, tsan stage exit $tsan_rc)" >&2
      exit 1
    fi
    ;;
  *) echo "test.sh: RUNREC_TESTS must be plain or sanitizers" >&2; exit 2 ;;
esac
echo "test.sh: total $SECONDS s"
