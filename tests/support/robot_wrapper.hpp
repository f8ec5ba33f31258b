// A robot that forwards every call to another (a SimRobot unless given one), so that a test
// robot overrides only the calls it watches or breaks, as leveldb's EnvWrapper does for Env.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runrec/hardware/robot.hpp"
#include "runrec/hardware/sim_robot.hpp"

namespace runrec::test {

// Owns the robot it wraps. Thread-safe as far as the wrapped robot is (the engine calls its
// robot from its writer thread only).
class RobotWrapper : public hardware::Robot {
 public:
  explicit RobotWrapper(std::unique_ptr<hardware::Robot> inner = std::make_unique<hardware::SimRobot>())
      : inner_(std::move(inner)) {}

  std::string describe() const override { return inner_->describe(); }
  hardware::Status attachInstrument(hardware::Mount m, const hardware::PipetteSpec* s) override {
    return inner_->attachInstrument(m, s);
  }
  hardware::Status home() override { return inner_->home(); }
  hardware::Status stopAndHome() override { return inner_->stopAndHome(); }
  hardware::Status moveTo(hardware::Mount m, const hardware::Point& p, std::optional<double> speed) override {
    return inner_->moveTo(m, p, speed);
  }
  hardware::Status preparePlunger(hardware::Mount m) override { return inner_->preparePlunger(m); }
  hardware::Status aspirate(hardware::Mount m, double v, double f) override { return inner_->aspirate(m, v, f); }
  hardware::Status dispense(hardware::Mount m, double v, double f) override { return inner_->dispense(m, v, f); }
  hardware::Status blowOut(hardware::Mount m, double f) override { return inner_->blowOut(m, f); }
  hardware::Status pickUpTip(hardware::Mount m, double len) override { return inner_->pickUpTip(m, len); }
  hardware::Status dropTip(hardware::Mount m) override { return inner_->dropTip(m); }
  hardware::Status assumeTip(hardware::Mount m, double len) override { return inner_->assumeTip(m, len); }
  hardware::Status delay(double s) override { return inner_->delay(s); }
  hardware::Result<hardware::Positions> positions() override { return inner_->positions(); }

 protected:
  hardware::Robot& inner() { return *inner_; }

 private:
  std::unique_ptr<hardware::Robot> inner_;
};

}  // namespace runrec::test
