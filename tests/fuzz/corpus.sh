#!/usr/bin/env bash
# Builds the seed corpus of one fuzz target into OUT: the hand-written seeds in
# tests/fuzz/seeds/TARGET plus inputs generated from Opentrons' public files in
# ../shared/opentrons (read in place, never committed here).
# Usage: tests/fuzz/corpus.sh TARGET OUT
set -euo pipefail
target=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../.." && pwd)/shared/opentrons
mkdir -p "$out"
cp "$here/seeds/$target"/* "$out"/ 2>/dev/null || true
if [ ! -d "$shared" ]; then
  if [ "${CI:-}" = true ]; then echo "corpus.sh: $shared is missing, and CI=true" >&2; exit 1; fi
  echo "corpus.sh: $shared is missing; hand-written seeds only" >&2
  exit 0
fi
python3 - "$target" "$out" "$shared" <<'PY'
import json, pathlib, sys
target, out, shared = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
protocols = sorted((shared / "protocols").rglob("*.json")) + [shared / "gcode/no_mods/protocol.json"]
def write(name, data):
    (out / name).write_bytes(data if isinstance(data, bytes) else data.encode())
if target == "protocol":
    for p in protocols: write("ot-" + p.parent.name + "-" + p.name, p.read_bytes())
elif target == "labware":
    for p in sorted((shared / "definitions/labware").rglob("*.json")): write("ot-" + p.parent.name + "-" + p.name, p.read_bytes())
elif target == "bus_message":
    # The frames a runner sends for each real protocol: its open and its first commands.
    for p in protocols:
        doc = json.loads(p.read_text())
        stem = p.parent.name + "-" + p.stem
        body = {"protocol": {"name": doc.get("metadata", {}).get("protocolName", p.stem), "fileName": p.name,
                             "sha256": "0" * 64, "schemaVersion": doc.get("schemaVersion", 6),
                             "commandCount": len(doc.get("commands", [])), "metadata": doc.get("metadata", {}),
                             "text": p.read_text()[:4000]},
                "labwareDefinitions": {}, "liquids": doc.get("liquids", {})}
        write(f"open-{stem}.json", json.dumps({"v": 1, "type": "open", "runId": "", "seq": 1, "replyTo": "runner-0-1", "body": body}))
        for i, c in enumerate(doc.get("commands", [])[:8], 1):
            b = {"commandType": c.get("commandType"), "params": c.get("params", {})}
            if "key" in c: b["key"] = c["key"]
            write(f"command-{stem}-{i}.json", json.dumps({"v": 1, "type": "command", "runId": "r-1", "seq": i, "body": b}))
elif target == "smoothie_reply":
    # The G-code Opentrons' driver sent (its recorded traces), in chunks, for the board side.
    for p in sorted((shared / "gcode").rglob("expected*.txt")):
        # Trace lines read "smoothie: G28.2 A Z -> Homing the following axes: Z, A ->".
        lines = [l.split(": ", 1)[1].split(" ->")[0] for l in p.read_text().splitlines() if l.startswith("smoothie: ")]
        for k in range(0, min(len(lines), 400), 40):
            write(f"gcode-{p.parent.name}-{k}.txt", "\r\n".join(lines[k:k + 40]) + "\r\n")
elif target == "history":
    pass  # requests are small wire frames: the hand-written seeds cover their shapes
else:
    sys.exit(f"corpus.sh: unknown target {target}")
PY
