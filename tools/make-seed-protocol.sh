#!/usr/bin/env bash
# Regenerates tools/protocols/seed_touch_tip.json (N touch tips, default 10,000) with
# `runrec seed`, from runrec's own labware definitions. A test checks the shipped file
# matches the generator.
set -euo pipefail
cd "$(dirname "$0")/.."
build/tools/runrec seed -n "${1:-10000}" -o tools/protocols/seed_touch_tip.json
