#!/usr/bin/env bash
# The main job: install what is missing, build, and run the seed protocol (10,000 touch
# tips) on the simulated OT-2, recording to ./runrec.db. Prints the run summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/build.sh --target runrec
build/tools/runrec run tools/protocols/seed_touch_tip.json --db "${RUNREC_DB:-runrec.db}" --progress always
