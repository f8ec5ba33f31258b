// OT-2 deck and motion geometry: slots, well positions, arcs, touch-tip points.
// Pure functions of definitions; the engine calls them with state folded from the log.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runrec/hardware/labware.hpp"
#include "runrec/hardware/robot.hpp"

namespace runrec::hardware {

// Front-left-bottom corner of a deck slot ("1".."12") on the OT-2 standard deck.
Result<Point> slotOrigin(std::string_view slotName);

enum class WellOrigin { kTop, kBottom, kCenter };
std::optional<WellOrigin> parseWellOrigin(std::string_view text);  // "top"/"bottom"/"center"

// A labware placed on the deck: its definition and the point its definition's origin
// sits at (slot origin, plus a module's offset once modules exist).
struct PlacedLabware {
  LabwareDefinitionPtr definition;
  Point origin;  // slot origin (+ module offset); cornerOffsetFromSlot is added by wellPosition
};

// Deck coordinates of a well's reference point: origin + cornerOffsetFromSlot + well
// (x, y, z) + (top: depth, center: depth/2, bottom: 0) + offset.
Result<Point> wellPosition(const PlacedLabware& labware, std::string_view wellName,
                           WellOrigin origin = WellOrigin::kTop, Point offset = {});

// Highest point of a placed labware (origin z + cornerOffset z + zDimension).
double labwareTop(const PlacedLabware& labware);

// The waypoints of a move from `from` to `to` for the critical point, as Opentrons plans
// them: up to a travel height, across, down. `safeZ` is the highest obstacle to clear
// (the caller passes the highest labware on the deck for moves between labware, the
// labware's own top for moves within one), `margin` is the clearance above it (10 mm
// between labware, 5 mm within one), `maxZ` the highest the critical point can go.
// `minimumZHeight` raises the travel height; `forceDirect` skips the arc.
// travel_z = max(min(maxZ, max(max(safeZ, minimumZHeight) + margin, to.z)), from.z); the
// result lists the waypoints after `from` (up, across, down), omitting zero-length legs.
struct ArcRequest {
  Point from, to;
  double safeZ = 0;
  double margin = 10;
  double maxZ = 0;
  std::optional<double> minimumZHeight;
  bool forceDirect = false;
};
std::vector<Point> planArc(const ArcRequest& request);

// Touch-tip points around a well at height `z` (deck coords): right, left, centre, +y,
// -y, centre (engine behaviour, API >= 2.14). `radius` is the fraction (0..1] of the
// well's half-size (circular: diameter/2; rectangular: xDimension/2 and yDimension/2).
// kInvalidArgument for tip racks, the fixed trash, labware with the touchTipDisabled
// quirk (reservoirs), or a radius outside (0, 1]; kNotFound for an unknown well.
Result<std::vector<Point>> touchTipPoints(const PlacedLabware& labware, std::string_view wellName,
                                          double radius, double z);

// The highest z the critical point can reach for a mount with the given pipette and
// effective tip length: homed mount axis (218) + nozzle offset z - tipLength (the same
// convention as SimRobot: mount axis = point z - nozzle z + tip length).
double maxCriticalPointZ(const PipetteSpec& spec, double tipLength);

}  // namespace runrec::hardware
