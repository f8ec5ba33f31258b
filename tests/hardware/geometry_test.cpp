// Geometry: slots, well positions, arcs (checked against the basic_smoothie trace) and
// touch-tip points.
#include "doctest_hardware.hpp"

#include "runrec/hardware/geometry.hpp"

using namespace runrec::hardware;

namespace {

LabwareDefinitionPtr builtIn(const std::string& uri) {
  auto found = LabwareLibrary().find(uri);
  REQUIRE_MESSAGE(found, uri);
  return *found;
}

PlacedLabware place(const std::string& uri, const std::string& slot) {
  return PlacedLabware{builtIn(uri), *slotOrigin(slot)};
}

void checkPoint(const Point& actual, const Point& expected) {
  CHECK(actual.x == doctest::Approx(expected.x));
  CHECK(actual.y == doctest::Approx(expected.y));
  CHECK(actual.z == doctest::Approx(expected.z));
}

ArcRequest arcFrom(Point from, Point to, double safeZ, double margin, double maxZ) {
  ArcRequest arc;
  arc.from = from;
  arc.to = to;
  arc.safeZ = safeZ;
  arc.margin = margin;
  arc.maxZ = maxZ;
  return arc;
}

}  // namespace

TEST_CASE("SlotOriginsFollowTheOt2StandardDeck") {
  checkPoint(*slotOrigin("1"), {0, 0, 0});
  checkPoint(*slotOrigin("2"), {132.5, 0, 0});
  checkPoint(*slotOrigin("3"), {265, 0, 0});
  checkPoint(*slotOrigin("5"), {132.5, 90.5, 0});
  checkPoint(*slotOrigin("7"), {0, 181, 0});
  checkPoint(*slotOrigin("11"), {132.5, 271.5, 0});
  checkPoint(*slotOrigin("12"), {265, 271.5, 0});
  for (const char* bad : {"0", "13", "", "A1", "1 ", "01"}) {
    auto r = slotOrigin(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kNotFound);
  }
}

TEST_CASE("WellOriginsParse") {
  CHECK(parseWellOrigin("top") == WellOrigin::kTop);
  CHECK(parseWellOrigin("bottom") == WellOrigin::kBottom);
  CHECK(parseWellOrigin("center") == WellOrigin::kCenter);
  CHECK_FALSE(parseWellOrigin("centre"));
}

TEST_CASE("WellPositionsByHand") {
  // Tip rack in slot 1: A1 top = (14.38, 74.24, 5.39 + 59.3) — the trace's X14.38 Y74.24.
  auto rack = place("opentrons/opentrons_96_tiprack_300ul/1", "1");
  checkPoint(*wellPosition(rack, "A1"), {14.38, 74.24, 64.69});
  checkPoint(*wellPosition(rack, "H12"), {113.38, 11.24, 64.69});  // the trace's drop-tip X/Y
  // Plate in slot 2, bottom and center, with an offset.
  auto plate = place("opentrons/corning_96_wellplate_360ul_flat/2", "2");
  checkPoint(*wellPosition(plate, "A1", WellOrigin::kBottom), {146.88, 74.24, 3.55});
  checkPoint(*wellPosition(plate, "A2", WellOrigin::kBottom, {0, 0, 1}), {155.88, 74.24, 4.55});
  checkPoint(*wellPosition(plate, "C3", WellOrigin::kCenter), {132.5 + 32.38, 56.24, 3.55 + 10.67 / 2});
  // Fixed trash in slot 12: A1 at (82.84, 80, 82) + slot, depth 0 (top == bottom).
  auto trash = place("opentrons/opentrons_1_trash_1100ml_fixed/1", "12");
  checkPoint(*wellPosition(trash, "A1"), {265 + 82.84, 271.5 + 80, 82});
  checkPoint(*wellPosition(trash, "A1", WellOrigin::kBottom), {265 + 82.84, 271.5 + 80, 82});
  // cornerOffsetFromSlot and the placement origin both add in.
  LabwareDefinition shifted = *builtIn("opentrons/nest_12_reservoir_15ml/1");
  shifted.cornerOffset[0] = 1;
  shifted.cornerOffset[2] = 2;
  PlacedLabware onModule{std::make_shared<const LabwareDefinition>(shifted), {265, 90.5, 10}};
  checkPoint(*wellPosition(onModule, "A12", WellOrigin::kBottom), {265 + 1 + 113.38, 90.5 + 42.78, 10 + 2 + 4.55});

  auto missing = wellPosition(plate, "Z99");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(labwareTop(plate) == doctest::Approx(14.22));
  CHECK(labwareTop(trash) == doctest::Approx(82));
  CHECK(labwareTop(onModule) == doctest::Approx(10 + 2 + 31.4));
}

TEST_CASE("ArcWithinOneLabwareClearsItsTopBy5mm") {
  // basic_smoothie: plate A1 bottom -> A2 bottom travels at 14.22 + 5 = 19.22.
  ArcRequest arc = arcFrom({146.88, 74.24, 3.55}, {155.88, 74.24, 3.55}, 14.22, 5, 177.4);
  auto points = planArc(arc);
  REQUIRE(points.size() == 3);
  checkPoint(points[0], {146.88, 74.24, 19.22});
  checkPoint(points[1], {155.88, 74.24, 19.22});
  checkPoint(points[2], {155.88, 74.24, 3.55});
}

TEST_CASE("ArcBetweenLabwareClearsTheHighestLabwareBy10mm") {
  // basic_smoothie: plate A2 -> tip rack H12 top travels at trash 82 + 10 = 92.
  ArcRequest arc = arcFrom({155.88, 74.24, 3.55}, {113.38, 11.24, 64.69}, 82, 10, 177.4);
  auto points = planArc(arc);
  REQUIRE(points.size() == 3);
  CHECK(points[0].z == doctest::Approx(92));
  CHECK(points[1].z == doctest::Approx(92));
  checkPoint(points[2], {113.38, 11.24, 64.69});
}

TEST_CASE("ArcStaysAtTheOriginWhenAlreadyHigher") {
  // From the homed height the move goes across then down: no climb.
  ArcRequest arc = arcFrom({418, 353, 177.4}, {146.88, 74.24, 3.55}, 82, 10, 177.4);
  auto points = planArc(arc);
  REQUIRE(points.size() == 2);
  checkPoint(points[0], {146.88, 74.24, 177.4});
  checkPoint(points[1], {146.88, 74.24, 3.55});
}

TEST_CASE("ArcTravelHeightIsCappedByMaxZ") {
  ArcRequest arc = arcFrom({0, 0, 10}, {50, 0, 20}, 100, 10, 60);
  auto points = planArc(arc);
  REQUIRE(points.size() == 3);
  CHECK(points[0].z == doctest::Approx(60));
  CHECK(points[1].z == doctest::Approx(60));
}

TEST_CASE("ArcTravelHeightIsAtLeastTheDestination") {
  ArcRequest arc = arcFrom({0, 0, 10}, {50, 0, 40}, 20, 10, 100);
  auto points = planArc(arc);
  REQUIRE(points.size() == 2);  // up to 40, then across: no descent
  checkPoint(points[0], {0, 0, 40});
  checkPoint(points[1], {50, 0, 40});
}

TEST_CASE("MinimumZHeightRaisesTheSafeHeight") {
  ArcRequest arc = arcFrom({0, 0, 5}, {50, 0, 5}, 20, 10, 200);
  CHECK(planArc(arc)[0].z == doctest::Approx(30));
  arc.minimumZHeight = 50;
  CHECK(planArc(arc)[0].z == doctest::Approx(60));
  arc.minimumZHeight = 5;  // lower than safeZ: no effect
  CHECK(planArc(arc)[0].z == doctest::Approx(30));
}

TEST_CASE("ForceDirectSkipsTheArc") {
  ArcRequest arc = arcFrom({0, 0, 5}, {50, 0, 5}, 20, 10, 200);
  arc.forceDirect = true;
  auto points = planArc(arc);
  REQUIRE(points.size() == 1);
  checkPoint(points[0], {50, 0, 5});
}

TEST_CASE("TouchTipVisitsRightLeftCentreBackFrontCentre") {
  auto plate = place("opentrons/corning_96_wellplate_360ul_flat/1", "2");
  double z = 14.22 - 1;
  auto points = touchTipPoints(plate, "A1", 1.0, z);
  REQUIRE(points);
  REQUIRE(points->size() == 6);
  double cx = 146.88, cy = 74.24, r = 6.86 / 2;
  checkPoint((*points)[0], {cx + r, cy, z});
  checkPoint((*points)[1], {cx - r, cy, z});
  checkPoint((*points)[2], {cx, cy, z});
  checkPoint((*points)[3], {cx, cy + r, z});
  checkPoint((*points)[4], {cx, cy - r, z});
  checkPoint((*points)[5], {cx, cy, z});
  auto half = touchTipPoints(plate, "A1", 0.5, z);
  checkPoint((*half)[0], {cx + r / 2, cy, z});
}

TEST_CASE("TouchTipOnRectangularWellsUsesEachHalfSize") {
  auto deep = place("opentrons/nest_96_wellplate_2ml_deep/1", "4");
  auto points = touchTipPoints(deep, "B2", 0.8, 40);
  REQUIRE(points);
  double cx = 23.3, cy = 90.5 + 65.15;
  checkPoint((*points)[0], {cx + 0.8 * 4.1, cy, 40});
  checkPoint((*points)[3], {cx, cy + 0.8 * 4.1, 40});
}

TEST_CASE("TouchTipIsRefusedOnTipRacksTrashAndDisabledLabware") {
  for (auto [uri, slot] : {std::pair{"opentrons/opentrons_96_tiprack_20ul/1", "1"},
                           std::pair{"opentrons/opentrons_1_trash_1100ml_fixed/1", "12"},
                           std::pair{"opentrons/usascientific_12_reservoir_22ml/1", "3"}}) {
    const char* labware = uri;  // clang cannot capture a structured binding (C++20)
    CAPTURE(labware);
    auto r = touchTipPoints(place(uri, slot), "A1", 1.0, 50);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  auto plate = place("opentrons/corning_96_wellplate_360ul_flat/1", "2");
  CHECK(touchTipPoints(plate, "A1", 0, 10).error().code == ErrorCode::kInvalidArgument);
  CHECK(touchTipPoints(plate, "A1", 1.5, 10).error().code == ErrorCode::kInvalidArgument);
  CHECK(touchTipPoints(plate, "Q1", 1, 10).error().code == ErrorCode::kNotFound);
}

TEST_CASE("MaxCriticalPointZIsTheHomedMountLessTheTip") {
  const PipetteSpec& p20 = **findPipette("p20_single_v2.0");
  CHECK(maxCriticalPointZ(p20, 0) == doctest::Approx(218 + 10.45));
  CHECK(maxCriticalPointZ(p20, 51.05) == doctest::Approx(218 + 10.45 - 51.05));
}
