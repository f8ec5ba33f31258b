#!/usr/bin/env bash
# The fuzz targets' regression guard (a ctest test): runs FUZZER on every input of TARGET's
# seed corpus, whole (the crash inputs found so far among them), then on a couple of
# thousand deterministic mutations of small inputs. Any sanitizer report or crash fails
# the test. Seconds, not minutes.
# With MODE "standalone" (a build without libFuzzer) only the seeds run.
# Usage: tests/fuzz/replay.sh FUZZER TARGET WORKDIR [libfuzzer|standalone]
set -euo pipefail
fuzzer=$1 target=$2 work=$3 mode=${4:-libfuzzer}
rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
bash "$(dirname "$0")/corpus.sh" "$target" "$work/corpus"
if ! "$fuzzer" -artifact_prefix="$work/artifacts/" "$work/corpus"/* >"$work/seeds.log" 2>&1; then
  cat "$work/seeds.log"
  echo "replay.sh: $target failed on a seed" >&2
  exit 1
fi
echo "replay.sh: $target: $(ls "$work/corpus" | wc -l) seeds ran whole"
[ "$mode" = standalone ] && exit 0
exec "$fuzzer" -seed=1 -runs="${RUNREC_FUZZ_REPLAY_RUNS:-2000}" -max_len=4096 -rss_limit_mb=1024 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus"
