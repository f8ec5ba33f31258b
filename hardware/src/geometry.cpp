// OT-2 deck geometry: slot origins, well positions, arcs and touch-tip points.
#include "runrec/hardware/geometry.hpp"

#include <algorithm>
#include <cmath>

namespace runrec::hardware {
namespace {

// Homed mount axis (Z and A), mm. The critical point's highest z derives from it.
constexpr double kMountHomeZ = 218.0;

bool samePoint(const Point& a, const Point& b) {
  return std::abs(a.x - b.x) < 1e-9 && std::abs(a.y - b.y) < 1e-9 && std::abs(a.z - b.z) < 1e-9;
}

bool hasQuirk(const LabwareDefinition& def, std::string_view quirk) {
  return std::find(def.quirks.begin(), def.quirks.end(), quirk) != def.quirks.end();
}

}  // namespace

Result<Point> slotOrigin(std::string_view slotName) {
  // OT-2 standard deck (deck definition ot2_standard): 3 columns x 4 rows of 128 x 86 mm
  // slots, numbered left to right from the front. Slot 12 holds the fixed trash.
  static constexpr double kX[3] = {0.0, 132.5, 265.0};
  static constexpr double kY[4] = {0.0, 90.5, 181.0, 271.5};
  int slot = 0;
  if (slotName.size() == 1 && slotName[0] >= '1' && slotName[0] <= '9') {
    slot = slotName[0] - '0';
  } else if (slotName == "10" || slotName == "11" || slotName == "12") {
    slot = 10 + (slotName[1] - '0');
  } else {
    return fail(ErrorCode::kNotFound, "no deck slot \"" + std::string(slotName) + "\" on the OT-2 (slots are 1-12)",
                {{"slot", std::string(slotName)}});
  }
  int index = slot - 1;
  return Point{kX[index % 3], kY[index / 3], 0.0};
}

std::optional<WellOrigin> parseWellOrigin(std::string_view text) {
  if (text == "top") return WellOrigin::kTop;
  if (text == "bottom") return WellOrigin::kBottom;
  if (text == "center") return WellOrigin::kCenter;
  return std::nullopt;
}

Result<Point> wellPosition(const PlacedLabware& labware, std::string_view wellName, WellOrigin origin,
                           Point offset) {
  if (!labware.definition) return fail(ErrorCode::kInvalidArgument, "wellPosition: no labware definition");
  const auto& def = *labware.definition;
  const WellDefinition* well = def.well(wellName);
  if (!well) {
    return fail(ErrorCode::kNotFound, "labware " + def.uri() + " has no well \"" + std::string(wellName) + "\"",
                {{"labware", def.uri()}, {"well", std::string(wellName)}});
  }
  double height = origin == WellOrigin::kTop ? well->depth : origin == WellOrigin::kCenter ? well->depth / 2 : 0.0;
  return Point{labware.origin.x + def.cornerOffset[0] + well->x + offset.x,
               labware.origin.y + def.cornerOffset[1] + well->y + offset.y,
               labware.origin.z + def.cornerOffset[2] + well->z + height + offset.z};
}

double labwareTop(const PlacedLabware& labware) {
  if (!labware.definition) return labware.origin.z;
  return labware.origin.z + labware.definition->cornerOffset[2] + labware.definition->zDimension;
}

// Opentrons' arc (protocol engine, motion_planning.get_waypoints), for the critical point:
//
//   safe     = max(safeZ, minimumZHeight)            (minimumZHeight only raises it)
//   travel_z = max(min(maxZ, max(safe + margin, to.z)), from.z)
//   waypoints: (from.x, from.y, travel_z) -> (to.x, to.y, travel_z) -> to
//
// safeZ is the highest labware on the deck (fixed trash included: 82 mm) with margin 10
// for moves between labware, or the labware's own top with margin 5 within one labware.
// The trace basic_smoothie checks both: plate A1 -> A2 travels at 14.22 + 5 = 19.22;
// plate -> tip rack travels at 82 + 10 = 92. A move already above travel_z stays at its
// height (from.z wins). Waypoints equal to the previous point are left out, so a move
// from a high point yields [over, down] and a direct move yields [to].
std::vector<Point> planArc(const ArcRequest& request) {
  if (request.forceDirect) return {request.to};
  double safe = request.safeZ;
  if (request.minimumZHeight) safe = std::max(safe, *request.minimumZHeight);
  double travel = std::max(std::min(request.maxZ, std::max(safe + request.margin, request.to.z)), request.from.z);
  std::vector<Point> points;
  Point previous = request.from;
  for (const Point& p : {Point{request.from.x, request.from.y, travel}, Point{request.to.x, request.to.y, travel},
                         request.to}) {
    if (samePoint(p, previous)) continue;
    points.push_back(p);
    previous = p;
  }
  if (points.empty()) points.push_back(request.to);
  return points;
}

Result<std::vector<Point>> touchTipPoints(const PlacedLabware& labware, std::string_view wellName, double radius,
                                          double z) {
  if (!labware.definition) return fail(ErrorCode::kInvalidArgument, "touchTip: no labware definition");
  const auto& def = *labware.definition;
  if (def.isTiprack) {
    return fail(ErrorCode::kInvalidArgument, "cannot touch tip on a tip rack (" + def.uri() + ")",
                {{"labware", def.uri()}});
  }
  if (hasQuirk(def, "fixedTrash")) {
    return fail(ErrorCode::kInvalidArgument, "cannot touch tip on the fixed trash (" + def.uri() + ")",
                {{"labware", def.uri()}});
  }
  if (hasQuirk(def, "touchTipDisabled")) {
    return fail(ErrorCode::kInvalidArgument, "touch tip is disabled for " + def.uri() + " (quirk touchTipDisabled)",
                {{"labware", def.uri()}});
  }
  if (!(radius > 0 && radius <= 1)) {
    return fail(ErrorCode::kInvalidArgument, "touch tip radius must be in (0, 1], got " + std::to_string(radius),
                {{"radius", radius}});
  }
  auto centre = wellPosition(labware, wellName, WellOrigin::kTop);
  if (!centre) return tl::unexpected(centre.error());
  const WellDefinition& well = *def.well(wellName);
  double halfX = well.shape == "circular" ? well.diameter / 2 : well.xDimension / 2;
  double halfY = well.shape == "circular" ? well.diameter / 2 : well.yDimension / 2;
  double cx = centre->x, cy = centre->y;
  return std::vector<Point>{
      {cx + radius * halfX, cy, z},  // right
      {cx - radius * halfX, cy, z},  // left
      {cx, cy, z},                   // centre
      {cx, cy + radius * halfY, z},  // back (+y)
      {cx, cy - radius * halfY, z},  // front (-y)
      {cx, cy, z},                   // centre
  };
}

// Mount axis = point z - nozzle z + tip length (see sim_robot.cpp), so at the homed mount
// axis the critical point is at 218 + nozzle z - tip length.
double maxCriticalPointZ(const PipetteSpec& spec, double tipLength) {
  return kMountHomeZ + spec.nozzleOffset[2] - tipLength;
}

}  // namespace runrec::hardware
