// A robot for tests: wraps a robot (the simulated one by default, or the Smoothie driver on
// the virtual board) and tracks, independently of the engine, the tips it physically
// carries; can inject a hardware failure on the Nth move, and tell a test when a move is made.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "runrec/hardware/sim_robot.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "support/robot_wrapper.hpp"

namespace runrec::test {

struct PhysicalTips {
  std::atomic<int> carried[2] = {0, 0};   // per mount: 1 while a tip is on
  std::atomic<int> pickUps{0}, drops{0};
  std::atomic<int> dropsWithoutTip{0};    // a drop where no tip was (certainly) on
  std::atomic<int> uncertain[2] = {0, 0}; // a tip call failed part-way: a tip may or may not be on
  std::atomic<long> moves{0};
  long failAtMove = -1;                   // inject an ALARM on this move (-1: never)
  // Called on the engine's thread before each move is made, with its number (from 1). Set
  // before the engine starts; may block (the command in progress waits with it).
  std::function<void(long)> onMove;
};

class TrackingRobot final : public RobotWrapper {
 public:
  explicit TrackingRobot(std::shared_ptr<PhysicalTips> t,
                         std::unique_ptr<hardware::Robot> inner = std::make_unique<hardware::SimRobot>())
      : RobotWrapper(std::move(inner)), t_(std::move(t)) {}
  std::string describe() const override { return "sim (tracked)"; }
  hardware::Status moveTo(hardware::Mount m, const hardware::Point& p, std::optional<double> speed) override {
    long n = ++t_->moves;
    if (t_->onMove) t_->onMove(n);
    if (n == t_->failAtMove)
      return hardware::fail(hardware::ErrorCode::kAlarm, "ALARM: Hard limit (injected on move " +
                                                             std::to_string(t_->failAtMove) + ")");
    return inner().moveTo(m, p, speed);
  }
  hardware::Status pickUpTip(hardware::Mount m, double len) override {
    auto st = inner().pickUpTip(m, len);
    if (st) {
      t_->carried[idx(m)] = 1;
      t_->uncertain[idx(m)] = 0;
      t_->pickUps++;
    } else {
      t_->uncertain[idx(m)] = 1;  // it may have pressed on before failing
    }
    return st;
  }
  hardware::Status dropTip(hardware::Mount m) override {
    if (t_->carried[idx(m)] == 0 && t_->uncertain[idx(m)] == 0) t_->dropsWithoutTip++;
    (void)inner().assumeTip(m, 50);  // physically, an eject works whatever the robot believes
    auto st = inner().dropTip(m);
    t_->drops++;
    if (st) {
      t_->carried[idx(m)] = 0;
      t_->uncertain[idx(m)] = 0;
    } else {
      t_->uncertain[idx(m)] = 1;  // it may have ejected before failing
    }
    return st;
  }

 private:
  static int idx(hardware::Mount m) { return m == hardware::Mount::kLeft ? 0 : 1; }
  std::shared_ptr<PhysicalTips> t_;
};

}  // namespace runrec::test
