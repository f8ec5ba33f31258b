// The interface the engine drives: one OT-2 (gantry, two mounts, two plungers).
//
// Implementations: SimRobot (tracks axes and tips, answers instantly) and, later, the
// Smoothie G-code driver. The engine validates a command against its folded state and
// plans the path (arcs, touch-tip points) before calling this; the robot converts deck
// coordinates to axis positions (mount offset, nozzle offset, attached tip length) and
// executes. Not thread-safe: the engine's single writer thread owns its robot.
#pragma once

#include <optional>
#include <string>

#include "runrec/hardware/error.hpp"
#include "runrec/hardware/pipettes.hpp"

namespace runrec::hardware {

enum class Mount { kLeft, kRight };

const char* toString(Mount mount);
std::optional<Mount> parseMount(std::string_view text);  // "left" / "right"

struct Point {
  double x = 0, y = 0, z = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

// Machine axis positions in mm: X, Y gantry; Z left mount; A right mount; B left plunger;
// C right plunger.
struct AxisPositions {
  double x = 0, y = 0, z = 0, a = 0, b = 0, c = 0;
};

// Where one mount is: the critical point (tip end if a tip is attached, else the nozzle)
// in deck coordinates, and its plunger position in mm.
struct MountState {
  Point point;
  double plunger = 0;
};

struct Positions {
  AxisPositions axes;
  MountState left, right;
};

class Robot {
 public:
  virtual ~Robot() = default;

  // A short name for the log, e.g. "sim" or "smoothie:/dev/ttyACM0".
  virtual std::string describe() const = 0;

  // Tells the robot which pipette is on a mount (nullptr: none). Called by loadPipette.
  virtual Status attachInstrument(Mount mount, const PipetteSpec* spec) = 0;

  // Homes every axis in the OT-2 order (Z and A, then X, then Y, then plungers).
  virtual Status home() = 0;

  // Ends a run as Opentrons' hardware stop(home_after=True) does: whatever the board
  // needs to be left in a known state, then home. By default just home().
  virtual Status stopAndHome() { return home(); }

  // Moves the mount in a straight line so that its critical point (tip end when a tip
  // is attached, else the nozzle) reaches `target` in deck coordinates. `speed` in mm/s;
  // nullopt means the default gantry speed. The engine plans arcs as several calls.
  virtual Status moveTo(Mount mount, const Point& target, std::optional<double> speed) = 0;

  // Plunger moves. Volumes in µL, flow rates in µL/s.
  // preparePlunger: moves the plunger to the bottom (ready to aspirate) at the current
  // position; call it before the first aspirate after a pick-up or blow-out.
  virtual Status preparePlunger(Mount mount) = 0;
  virtual Status aspirate(Mount mount, double volume, double flowRate) = 0;
  virtual Status dispense(Mount mount, double volume, double flowRate) = 0;
  virtual Status blowOut(Mount mount, double flowRate) = 0;

  // Tip handling at the current position. pickUpTip presses onto the tip (as the
  // pipette's pick-up configuration says) and records `tipLength` (effective length:
  // tip length minus overlap); dropTip ejects and homes the plunger.
  virtual Status pickUpTip(Mount mount, double tipLength) = 0;
  virtual Status dropTip(Mount mount) = 0;

  // Tells the robot that a tip of `tipLength` is (or may be) on `mount`, without moving:
  // after a crash the robot's own memory is gone but the log says a tip may be attached.
  virtual Status assumeTip(Mount mount, double tipLength) = 0;

  // Waits (real or simulated time). The simulated robot returns at once.
  virtual Status delay(double seconds) = 0;

  virtual Result<Positions> positions() = 0;
};

}  // namespace runrec::hardware
