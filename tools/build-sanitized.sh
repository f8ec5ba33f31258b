#!/usr/bin/env bash
# Configures and builds a sanitizer build with clang (docs/hardening.md):
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer coverage of the fuzzed
#         modules -> build-asan
#         (the CI stage: every test, and a short libFuzzer run of each fuzz target)
#   tsan: ThreadSanitizer -> build-tsan (CI builds only the bus and engine tests)
#   fuzz: AddressSanitizer + UndefinedBehaviorSanitizer + libFuzzer, optimised -> build-fuzz
#         (tools/fuzz.sh: long fuzzing runs, where executions per second matter)
# asan and tsan are -O0 with line tables, to fit CI's budget: an ASan build with the
# libraries and tools at -O1 took 1,068 s of CPU to compile, at -O0 435 s (docs/hardening.md).
# fuzz is -O1. Any sanitizer report aborts the process.
# Usage: tools/build-sanitized.sh asan|tsan|fuzz [ninja targets...]   (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
opt="-O0 -gline-tables-only"
case "$kind" in
  asan) dir=build-asan flags=(-DRUNREC_SANITIZE=address,undefined -DRUNREC_FUZZ=ON) ;;
  tsan) dir=build-tsan flags=(-DRUNREC_SANITIZE=thread -DRUNREC_FUZZ=OFF) ;;
  fuzz) dir=build-fuzz flags=(-DRUNREC_SANITIZE=address,undefined -DRUNREC_FUZZ=ON) opt="-O1 -gline-tables-only" ;;
  *) echo "usage: $0 asan|tsan|fuzz [ninja targets...]" >&2; exit 2 ;;
esac
# LLVM's linker when installed (lld-14, tools/install-deps.sh): the instrumented test
# binaries link in a fifth of GNU ld's CPU time.
ld=
[ -x /usr/lib/llvm-14/bin/ld.lld ] && ld=-fuse-ld=lld
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_FLAGS_DEBUG="$opt" -DCMAKE_EXE_LINKER_FLAGS="$ld" \
  "${flags[@]}" >/dev/null
cmake --build "$dir" -j"${RUNREC_JOBS:-$(nproc)}" ${1:+--target "$@"}
