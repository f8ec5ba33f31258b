// A simulated OT-2: tracks axis positions, attached instruments, tips and plunger, and
// answers instantly. The default robot (`--robot sim`).
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

  AxisPositions axes_;
  MountSim left_, right_;
  bool homed_ = false;
  long moves_ = 0;
};

}  // namespace runrec::hardware
