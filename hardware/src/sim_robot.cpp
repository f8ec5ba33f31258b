// SimRobot: the OT-2 as bookkeeping. Every request is checked as the real robot would
// refuse it; nothing waits.
#include "runrec/hardware/sim_robot.hpp"

#include "runrec/hardware/mount_axes.hpp"

#include <cmath>
#include <string>

namespace runrec::hardware {
namespace {

constexpr double kHomePlunger = 19;

std::string mountName(Mount m) { return toString(m); }

}  // namespace

SimRobot::SimRobot() {
  axes_ = {kHomeX, kHomeY, kHomeMount, kHomeMount, kHomePlunger, kHomePlunger};
}

Status SimRobot::requireInstrument(Mount mount) const {
  if (!sim(mount).spec) {
    return fail(ErrorCode::kInvalidArgument, "no pipette attached to the " + mountName(mount) + " mount",
                {{"mount", mountName(mount)}});
  }
  return {};
}

Status SimRobot::attachInstrument(Mount mount, const PipetteSpec* spec) {
  MountSim& m = sim(mount);
  m = MountSim{};
  m.spec = spec;
  plungerAxis(mount) = spec ? spec->plungerTop : kHomePlunger;
  return {};
}

Status SimRobot::home() {
  // Z and A, then X, then Y, then the plungers (to the top of each attached pipette).
  axes_.z = kHomeMount;
  axes_.a = kHomeMount;
  axes_.x = kHomeX;
  axes_.y = kHomeY;
  for (Mount mount : {Mount::kLeft, Mount::kRight}) {
    MountSim& m = sim(mount);
    plungerAxis(mount) = m.spec ? m.spec->plungerTop : kHomePlunger;
    m.volume = 0;
    m.plungerReady = false;
  }
  homed_ = true;
  lastMoved_.reset();
  return {};
}

Status SimRobot::ensureHomed() {
  if (homed_) return {};
  return home();
}

Status SimRobot::moveTo(Mount mount, const Point& target, std::optional<double> speed) {
  if (!std::isfinite(target.x) || !std::isfinite(target.y) || !std::isfinite(target.z)) {
    return fail(ErrorCode::kInvalidArgument, "move target is not a finite point");
  }
  if (speed && !(*speed > 0 && std::isfinite(*speed))) {
    return fail(ErrorCode::kInvalidArgument, "move speed must be positive, got " + std::to_string(*speed),
                {{"speed", *speed}});
  }
  if (auto ok = requireInstrument(mount); !ok) return ok;
  if (auto ok = ensureHomed(); !ok) return ok;
  const MountSim& m = sim(mount);
  MountAxes to = deckToAxes(mount, m.spec, m.tipLength, target);
  if (auto ok = checkReach(mount, target, to); !ok) return ok;
  double x = to.x, y = to.y, z = to.mount;
  if (lastMoved_ && *lastMoved_ != mount) mountAxis(*lastMoved_) = kHomeMount;  // retract the other mount
  lastMoved_ = mount;
  axes_.x = x;
  axes_.y = y;
  mountAxis(mount) = z;
  ++moves_;
  return {};
}

Status SimRobot::preparePlunger(Mount mount) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  if (auto ok = ensureHomed(); !ok) return ok;
  MountSim& m = sim(mount);
  if (m.volume > kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                "cannot prepare the " + mountName(mount) + " plunger: the tip holds " + std::to_string(m.volume) +
                    " µL",
                {{"mount", mountName(mount)}, {"volume", m.volume}});
  }
  plungerAxis(mount) = m.spec->plungerBottom;
  m.plungerReady = true;
  return {};
}

Status SimRobot::aspirate(Mount mount, double volume, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountSim& m = sim(mount);
  if (!std::isfinite(volume) || volume < 0) {
    return fail(ErrorCode::kInvalidArgument, "aspirate volume must be >= 0, got " + std::to_string(volume),
                {{"volume", volume}});
  }
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "cannot aspirate: no tip on the " + mountName(mount) + " pipette",
                {{"mount", mountName(mount)}});
  }
  if (m.volume + volume > m.spec->maxVolume + kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                "cannot aspirate " + std::to_string(volume) + " µL: the " + m.spec->model + " holds " +
                    std::to_string(m.volume) + " µL of at most " + std::to_string(m.spec->maxVolume) + " µL",
                {{"mount", mountName(mount)}, {"volume", volume}, {"current", m.volume},
                 {"max", m.spec->maxVolume}});
  }
  if (auto ok = ensureHomed(); !ok) return ok;
  if (!m.plungerReady) {
    // Not prepared (after pick-up or blow-out): an empty tip may prepare in place, as the
    // Opentrons API does before the first aspirate.
    if (auto ok = preparePlunger(mount); !ok) return ok;
  }
  m.volume += volume;
  plungerAxis(mount) = m.spec->plungerPositionFor(m.volume, false);
  return {};
}

Status SimRobot::dispense(Mount mount, double volume, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountSim& m = sim(mount);
  if (!std::isfinite(volume) || volume < 0) {
    return fail(ErrorCode::kInvalidArgument, "dispense volume must be >= 0, got " + std::to_string(volume),
                {{"volume", volume}});
  }
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "cannot dispense: no tip on the " + mountName(mount) + " pipette",
                {{"mount", mountName(mount)}});
  }
  if (volume > m.volume + kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                "cannot dispense " + std::to_string(volume) + " µL: the tip holds " + std::to_string(m.volume) + " µL",
                {{"mount", mountName(mount)}, {"volume", volume}, {"current", m.volume}});
  }
  if (auto ok = ensureHomed(); !ok) return ok;
  m.volume = std::max(0.0, m.volume - volume);
  if (m.volume < kVolumeTolerance) m.volume = 0;
  plungerAxis(mount) = m.spec->plungerPositionFor(m.volume, true);
  return {};
}

Status SimRobot::blowOut(Mount mount, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountSim& m = sim(mount);
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "cannot blow out: no tip on the " + mountName(mount) + " pipette",
                {{"mount", mountName(mount)}});
  }
  if (auto ok = ensureHomed(); !ok) return ok;
  plungerAxis(mount) = m.spec->plungerBlowOut;
  m.volume = 0;
  m.plungerReady = false;
  return {};
}

Status SimRobot::pickUpTip(Mount mount, double tipLength) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountSim& m = sim(mount);
  if (!std::isfinite(tipLength) || tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "tip length must be positive, got " + std::to_string(tipLength),
                {{"tipLength", tipLength}});
  }
  if (m.tipLength > 0) {
    return fail(ErrorCode::kInvalidArgument, "the " + mountName(mount) + " pipette already has a tip",
                {{"mount", mountName(mount)}});
  }
  if (auto ok = ensureHomed(); !ok) return ok;
  // Presses down pickUpDistance (plus increments) and comes back: the mount ends where it
  // started, but the critical point is now the tip end, tipLength lower.
  moves_ += 2L * std::max(1, m.spec->pickUpPresses);
  m.tipLength = tipLength;
  m.volume = 0;
  return {};
}

Status SimRobot::dropTip(Mount mount) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountSim& m = sim(mount);
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "the " + mountName(mount) + " pipette has no tip to drop",
                {{"mount", mountName(mount)}});
  }
  if (auto ok = ensureHomed(); !ok) return ok;
  // Ejects (plunger to dropTip), then homes the plunger.
  plungerAxis(mount) = m.spec->plungerTop;
  m.tipLength = 0;
  m.volume = 0;
  m.plungerReady = false;
  return {};
}

Status SimRobot::assumeTip(Mount mount, double tipLength) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  sim(mount).tipLength = tipLength;
  return {};
}

Status SimRobot::delay(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) {
    return fail(ErrorCode::kInvalidArgument, "delay must be >= 0 s, got " + std::to_string(seconds),
                {{"seconds", seconds}});
  }
  return {};
}

MountState SimRobot::stateOf(Mount mount) const {
  const MountSim& m = sim(mount);
  MountState state;
  state.point = axesToDeck(mount, m.spec, m.tipLength, {axes_.x, axes_.y, mount == Mount::kLeft ? axes_.z : axes_.a});
  state.plunger = mount == Mount::kLeft ? axes_.b : axes_.c;
  return state;
}

Result<Positions> SimRobot::positions() {
  return Positions{axes_, stateOf(Mount::kLeft), stateOf(Mount::kRight)};
}

}  // namespace runrec::hardware
