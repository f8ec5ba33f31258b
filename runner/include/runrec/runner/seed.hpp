// The seed protocol: Opentrons PR #16098's touch-tip stress test as a JSON protocol (v8).
#pragma once

#include <nlohmann/json.hpp>

namespace runrec::runner {

// p300_single_gen2 on the right mount, opentrons_96_tiprack_300ul in slot 1,
// biorad_96_wellplate_200ul_pcr in slot 2: pick up the tip at A1, `touches` touchTips at
// H12, drop the tip back at A1. Labware definitions come from the project's built-ins.
nlohmann::json makeSeedProtocol(int touches = 10000);

}  // namespace runrec::runner
