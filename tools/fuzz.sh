#!/usr/bin/env bash
# Runs one libFuzzer target for a given time (docs/hardening.md), in the optimised ASan+UBSan libFuzzer build (build-fuzz).
#   tools/fuzz.sh TARGET [SECONDS]     TARGET: protocol labware bus_message smoothie_reply history
# The corpus grows in build-fuzz/fuzz/corpus/TARGET (seeded by tests/fuzz/corpus.sh);
# crashes are written to build-fuzz/fuzz/artifacts/TARGET/ and fail the command. Copy a
# crash input into tests/fuzz/seeds/TARGET/ once fixed: the ctest replay keeps it fixed.
# The last lines printed are libFuzzer's final stats (execs, cov, ft, corpus size).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh TARGET [SECONDS]}
seconds=${2:-60}
[ -f "tests/fuzz/fuzz_$target.cpp" ] || { echo "fuzz.sh: no target $target (tests/fuzz/fuzz_*.cpp)" >&2; exit 2; }
if [ ! -x "build-fuzz/tests/fuzz/fuzz_$target" ] || [ "${RUNREC_FUZZ_REBUILD:-1}" = 1 ]; then
  bash tools/build-sanitized.sh fuzz "fuzz_$target" >/dev/null
fi
work=build-fuzz/fuzz
corpus=$work/corpus/$target seeds=$work/seeds/$target artifacts=$work/artifacts/$target
rm -rf "$seeds" && mkdir -p "$corpus" "$seeds" "$artifacts"
bash tests/fuzz/corpus.sh "$target" "$seeds"
# New inputs go to the first directory (the growing corpus); seeds are read only.
# Inputs up to 16 KiB (protocols, definitions) or 4 KiB (frames, replies): larger seeds are
# read truncated; small inputs keep executions fast.
case "$target" in protocol | labware) max_len=16384 ;; *) max_len=4096 ;; esac
exec "build-fuzz/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -print_pcs=0 -artifact_prefix="$artifacts/" "$corpus" "$seeds"
