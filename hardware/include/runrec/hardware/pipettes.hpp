// OT-2 pipette models (p10/p20/p50/p300/p1000, single and 8-channel, GEN1 and GEN2):
// the project's own table of the published facts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/hardware/error.hpp"

namespace runrec::hardware {

// One row of a µL-per-mm table: for volume v <= maxVolume, µL/mm = slope * v + intercept.
struct UlPerMmRow {
  double maxVolume, slope, intercept;
};

struct PipetteSpec {
  std::string name;         // e.g. "p300_single_gen2"
  std::string model;        // e.g. "p300_single_v2.1"
  std::string displayName;  // e.g. "P300 Single-Channel GEN2"
  int channels = 1;
  double minVolume = 0, maxVolume = 0;
  double nozzleOffset[3] = {0, 0, 0};  // x, y, z from the mount's reference point (v2 numbers)
  // Plunger positions in mm.
  double plungerTop = 0, plungerBottom = 0, plungerBlowOut = 0, plungerDropTip = 0;
  double plungerCurrent = 0;  // A while moving
  std::vector<UlPerMmRow> aspirateUlPerMm, dispenseUlPerMm;
  // Default flow rates in µL/s at the given API level (see defaultFlowRates()).
  struct FlowRates {
    double aspirate, dispense, blowOut;
  };
  // Tip pick-up and drop.
  double pickUpCurrent = 0, pickUpSpeed = 0, pickUpDistance = 0, pickUpIncrement = 0;
  int pickUpPresses = 0;
  double dropTipCurrent = 0, dropTipSpeed = 0;
  double defaultTipOverlap = 0;  // mm, when the tip rack has no specific entry
  // Tip overlap per tip-rack URI (namespace/loadName/version), as in the definitions.
  std::vector<std::pair<std::string, double>> tipOverlaps;
  double returnTipHeight = 0.5;  // fraction of the tip length used when returning tips
  double defaultTipLength = 0;   // mm, the pipette's nominal tip (before overlap)
  // Default flow rates from an API level on: {major, minor, aspirate, dispense, blowOut},
  // ascending. defaultFlowRates() picks the last entry at or below the requested level.
  struct FlowRateLevel {
    int apiMajor, apiMinor;
    double aspirate, dispense, blowOut;
  };
  std::vector<FlowRateLevel> flowRatesByApi;
  std::vector<std::string> quirks;  // e.g. "dropTipShake", "needsUnstick"

  // µL per mm of plunger travel for `volume` (aspirate table or dispense table).
  double ulPerMm(double volume, bool dispense) const;
  // Plunger position (mm) holding `volume` µL: bottom + volume / ulPerMm(volume). The
  // plunger rises from `plungerBottom` towards `plungerTop` as it aspirates (matches the
  // traces: p20 at -8.5 aspirating 10 µL goes to C4.967).
  double plungerPositionFor(double volume, bool dispense) const;
  // Plunger speed in mm/s for a flow rate in µL/s, as Opentrons computes it: flow rate
  // divided by µL/mm at the pipette's max volume (trace: 7.56 µL/s on a p20 -> F601).
  double plungerSpeedFor(double flowRate, bool dispense) const;
  // Tip overlap in mm for a tip rack, by URI, falling back to the default.
  double tipOverlapFor(std::string_view tipRackUri) const;
  // Default flow rates at an API level ("2.13" -> {2, 13}).
  FlowRates defaultFlowRates(int apiMajor = 2, int apiMinor = 14) const;
};

// Looks up a pipette by name ("p300_single_gen2": its default model) or by model
// ("p300_single_v2.1"). kNotFound with the list of known names otherwise.
Result<const PipetteSpec*> findPipette(std::string_view nameOrModel);

// Every known pipette (one entry per model).
const std::vector<PipetteSpec>& allPipettes();

}  // namespace runrec::hardware
