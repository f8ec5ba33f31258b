#!/usr/bin/env bash
# Configures and builds a sanitizer build with clang (docs/hardening.md):
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer + libFuzzer targets -> build-asan
#   tsan: ThreadSanitizer -> build-tsan
# -O1 with line tables only: fast to compile, readable stack traces. Any report aborts.
# Usage: tools/build-sanitized.sh asan|tsan [ninja targets...]   (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=$1
shift
case "$kind" in
  asan) dir=build-asan flags=(-DRUNREC_SANITIZE=address,undefined -DRUNREC_FUZZ=ON) ;;
  tsan) dir=build-tsan flags=(-DRUNREC_SANITIZE=thread -DRUNREC_FUZZ=OFF) ;;
  *) echo "usage: $0 asan|tsan [targets...]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"${RUNREC_JOBS:-$(nproc)}" ${1:+--target "$@"}
