// Deck coordinates <-> machine axes for one mount of an uncalibrated OT-2, shared by every
// Robot implementation (SimRobot, SmoothieRobot): the left mount sits 34 mm left of the
// right one; the critical point is the nozzle (pipette nozzle offset) or, with a tip, the
// tip end, tipLength lower; gantry X/Y and the mount axis (Z left, A right) end at their
// home switches (418, 353, 218).
#pragma once

#include <string>

#include "runrec/hardware/error.hpp"
#include "runrec/hardware/pipettes.hpp"
#include "runrec/hardware/robot.hpp"

namespace runrec::hardware {

constexpr double kLeftMountOffsetX = -34;  // left mount relative to the right, mm
constexpr double kHomeX = 418, kHomeY = 353, kHomeMount = 218;
// µL: volumes closer than this are equal (so both robots refuse the same requests).
constexpr double kVolumeTolerance = 1e-6;

// Gantry X, Y and the mount's own axis.
struct MountAxes {
  double x = 0, y = 0, mount = 0;
};

inline const double* nozzleOf(const PipetteSpec* spec) {
  static constexpr double kNone[3] = {0, 0, 0};
  return spec ? spec->nozzleOffset : kNone;
}

// The axes that put `mount`'s critical point at `p`.
inline MountAxes deckToAxes(Mount mount, const PipetteSpec* spec, double tipLength, const Point& p) {
  const double* n = nozzleOf(spec);
  return {p.x - n[0] - (mount == Mount::kLeft ? kLeftMountOffsetX : 0.0), p.y - n[1], p.z - n[2] + tipLength};
}

// Where `mount`'s critical point is for the given axes.
inline Point axesToDeck(Mount mount, const PipetteSpec* spec, double tipLength, const MountAxes& a) {
  const double* n = nozzleOf(spec);
  return {a.x + n[0] + (mount == Mount::kLeft ? kLeftMountOffsetX : 0.0), a.y + n[1], a.mount + n[2] - tipLength};
}

// kInvalidArgument naming the target and the axes when they pass a home switch (or go
// below 0 on X/Y); {} otherwise.
inline Status checkReach(Mount mount, const Point& target, const MountAxes& a) {
  constexpr double kTolerance = 1e-6;
  if (a.x < -kTolerance || a.x > kHomeX + kTolerance || a.y < -kTolerance || a.y > kHomeY + kTolerance ||
      a.mount > kHomeMount + kTolerance)
    return tl::unexpected(Error{ErrorCode::kInvalidArgument,
                                "target (" + std::to_string(target.x) + ", " + std::to_string(target.y) + ", " +
                                    std::to_string(target.z) + ") is out of reach of the " + toString(mount) +
                                    " mount",
                                {{"mount", toString(mount)},
                                 {"target", {target.x, target.y, target.z}},
                                 {"axes", {{"x", a.x}, {"y", a.y}, {mount == Mount::kLeft ? "z" : "a", a.mount}}}}});
  return {};
}

}  // namespace runrec::hardware
