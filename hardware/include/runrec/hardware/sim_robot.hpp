// A simulated OT-2: tracks axis positions, attached instruments, tips and plunger, and
// answers instantly. The default robot (`--robot sim`).
//
// Deck point -> axes (checked against the Opentrons G-code traces):
//   X = x - nozzle x (+34 on the left mount, which sits 34 mm left of the right one)
//   Y = y - nozzle y
//   Z (left) / A (right) = z - nozzle z + tip length   (tip length: effective, 0 = no tip)
// e.g. p20_single_gen2 (nozzle z 10.45) over a 300 µL rack top at 64.69: A54.24; with a
// 300 µL tip (59.3 - overlap 8.25 = 51.05) at a plate bottom 3.55: A44.15.
// Plunger axes B/C hold PipetteSpec::plungerPositionFor(volume in the tip).
// Moving before home() homes implicitly; switching mounts retracts the other mount first.
#pragma once

#include <array>

#include "runrec/hardware/robot.hpp"

namespace runrec::hardware {

class SimRobot final : public Robot {
 public:
  SimRobot();

  std::string describe() const override { return "sim"; }
  Status attachInstrument(Mount mount, const PipetteSpec* spec) override;
  Status home() override;
  Status moveTo(Mount mount, const Point& target, std::optional<double> speed) override;
  Status preparePlunger(Mount mount) override;
  Status aspirate(Mount mount, double volume, double flowRate) override;
  Status dispense(Mount mount, double volume, double flowRate) override;
  Status blowOut(Mount mount, double flowRate) override;
  Status pickUpTip(Mount mount, double tipLength) override;
  Status dropTip(Mount mount) override;
  Status assumeTip(Mount mount, double tipLength) override;
  Status delay(double seconds) override;
  Result<Positions> positions() override;

  // Test hooks.
  long moveCount() const { return moves_; }

 private:
  struct MountSim {
    const PipetteSpec* spec = nullptr;
    double tipLength = 0;  // 0: no tip
    double volume = 0;
    bool plungerReady = false;
  };
  MountSim& sim(Mount m) { return m == Mount::kLeft ? left_ : right_; }
  const MountSim& sim(Mount m) const { return m == Mount::kLeft ? left_ : right_; }

  Status ensureHomed();
  Status requireInstrument(Mount mount) const;
  double& mountAxis(Mount m) { return m == Mount::kLeft ? axes_.z : axes_.a; }
  double& plungerAxis(Mount m) { return m == Mount::kLeft ? axes_.b : axes_.c; }
  MountState stateOf(Mount m) const;

  AxisPositions axes_;
  MountSim left_, right_;
  bool homed_ = false;
  long moves_ = 0;
  std::optional<Mount> lastMoved_;
};

}  // namespace runrec::hardware
