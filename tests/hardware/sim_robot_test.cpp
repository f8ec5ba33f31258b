// SimRobot: deck points to axes (as the basic_smoothie trace shows), tips, plunger and the
// requests it refuses.
#include "doctest_hardware.hpp"

#include "runrec/hardware/sim_robot.hpp"

using namespace runrec::hardware;

namespace {

const PipetteSpec& p20() { return **findPipette("p20_single_v2.0"); }
const PipetteSpec& p300multi() { return **findPipette("p300_multi_gen2"); }

Positions where(SimRobot& robot) {
  auto p = robot.positions();
  REQUIRE(p);
  return *p;
}

}  // namespace

TEST_CASE("HomeParksEveryAxisAndThePlungersAtTheirTop") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  REQUIRE(robot.home());
  auto p = where(robot);
  CHECK(p.axes.x == 418);
  CHECK(p.axes.y == 353);
  CHECK(p.axes.z == 218);
  CHECK(p.axes.a == 218);
  CHECK(p.axes.b == 19);     // no pipette on the left
  CHECK(p.axes.c == 19.5);   // p20 plunger top
  CHECK(p.right.point.z == doctest::Approx(218 + 10.45));
  CHECK(p.right.plunger == 19.5);
  CHECK(robot.describe() == "sim");
}

TEST_CASE("MovesMapDeckPointsToAxesAsTheTraceShows") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  // No explicit home: the first move homes implicitly.
  REQUIRE(robot.moveTo(Mount::kRight, {14.38, 74.24, 64.69}, std::nullopt));
  auto p = where(robot);
  CHECK(p.axes.x == doctest::Approx(14.38));
  CHECK(p.axes.y == doctest::Approx(74.24));
  CHECK(p.axes.a == doctest::Approx(54.24));  // trace: G0 A54.24
  CHECK(p.right.point.z == doctest::Approx(64.69));

  // 300 µL tip on a p20: 59.3 - 8.25 = 51.05; plate A1 bottom in slot 2 is A44.15.
  REQUIRE(robot.pickUpTip(Mount::kRight, 59.3 - p20().tipOverlapFor("opentrons/opentrons_96_tiprack_300ul/1")));
  CHECK(where(robot).right.point.z == doctest::Approx(64.69 - 51.05));
  REQUIRE(robot.moveTo(Mount::kRight, {146.88, 74.24, 3.55}, 400.0));
  p = where(robot);
  CHECK(p.axes.x == doctest::Approx(146.88));
  CHECK(p.axes.a == doctest::Approx(44.15));  // trace: G0 A44.15
  CHECK(p.right.point.x == doctest::Approx(146.88));
  CHECK(p.right.point.z == doctest::Approx(3.55));
  // Arc height 92 between labware: trace G0 A132.6.
  REQUIRE(robot.moveTo(Mount::kRight, {155.88, 74.24, 92}, std::nullopt));
  CHECK(where(robot).axes.a == doctest::Approx(132.6));
  CHECK(robot.moveCount() >= 3);
}

TEST_CASE("TheLeftMountSits34mmLeftAndUsesZ") {
  // no_mods trace: p300_multi_gen2 on the left over the 300 µL rack A1 (slot 2) top:
  // G0 X180.88 Y42.74, G0 Z29.17; with a 300 µL tip (59.3 - 8.2) over the fixed trash
  // (top 82) it travels at Z107.58 (82 + 10 = 92).
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kLeft, &p300multi()));
  REQUIRE(robot.moveTo(Mount::kLeft, {146.88, 74.24, 64.69}, std::nullopt));
  auto p = where(robot);
  CHECK(p.axes.x == doctest::Approx(180.88));
  CHECK(p.axes.y == doctest::Approx(42.74));  // multi-channel nozzle y offset 31.5
  CHECK(p.axes.z == doctest::Approx(29.17));
  CHECK(p.axes.a == 218);
  CHECK(p.left.point.x == doctest::Approx(146.88));
  CHECK(p.left.point.y == doctest::Approx(74.24));
  CHECK(p.left.point.z == doctest::Approx(64.69));
  REQUIRE(robot.pickUpTip(Mount::kLeft, 59.3 - p300multi().tipOverlapFor("opentrons/opentrons_96_tiprack_300ul/1")));
  REQUIRE(robot.moveTo(Mount::kLeft, {146.88, 74.24, 92}, std::nullopt));
  CHECK(where(robot).axes.z == doctest::Approx(107.58));
}

TEST_CASE("SwitchingMountsRetractsTheOtherMount") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kLeft, &p20()));
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  REQUIRE(robot.moveTo(Mount::kLeft, {100, 100, 20}, std::nullopt));
  CHECK(where(robot).axes.z == doctest::Approx(20 - 10.45));
  REQUIRE(robot.moveTo(Mount::kRight, {100, 100, 30}, std::nullopt));
  auto p = where(robot);
  CHECK(p.axes.z == 218);
  CHECK(p.axes.a == doctest::Approx(30 - 10.45));
}

TEST_CASE("AspirateAndDispenseMoveThePlungerByTheUlPerMmTable") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  REQUIRE(robot.home());
  REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
  REQUIRE(robot.preparePlunger(Mount::kRight));
  CHECK(where(robot).axes.c == -8.5);
  REQUIRE(robot.aspirate(Mount::kRight, 10, 7.56));
  CHECK(where(robot).axes.c == doctest::Approx(4.9665).epsilon(1e-4));  // trace: C4.967
  REQUIRE(robot.aspirate(Mount::kRight, 10, 7.56));                      // exactly max volume
  CHECK(where(robot).axes.c == doctest::Approx(p20().plungerPositionFor(20, false)));
  REQUIRE(robot.dispense(Mount::kRight, 15, 7.56));
  CHECK(where(robot).axes.c == doctest::Approx(p20().plungerPositionFor(5, true)));
  REQUIRE(robot.dispense(Mount::kRight, 5, 7.56));
  CHECK(where(robot).axes.c == -8.5);  // trace: C-8.5
  REQUIRE(robot.blowOut(Mount::kRight, 7.56));
  CHECK(where(robot).axes.c == -13);
  REQUIRE(robot.dropTip(Mount::kRight));
  CHECK(where(robot).axes.c == 19.5);
}

TEST_CASE("AspirateAfterPickUpPreparesAnEmptyPlungerImplicitly") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
  REQUIRE(robot.aspirate(Mount::kRight, 5, 7.56));
  CHECK(where(robot).axes.c == doctest::Approx(p20().plungerPositionFor(5, false)));
}

TEST_CASE("RefusedRequestsAreErrorValues") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  auto expectInvalid = [](const Status& s) {
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::kInvalidArgument);
    CHECK_FALSE(s.error().message.empty());
  };
  SUBCASE("no pipette on the mount") {
    expectInvalid(robot.moveTo(Mount::kLeft, {10, 10, 10}, std::nullopt));
    expectInvalid(robot.aspirate(Mount::kLeft, 1, 1));
    expectInvalid(robot.pickUpTip(Mount::kLeft, 50));
  }
  SUBCASE("aspirate without a tip") { expectInvalid(robot.aspirate(Mount::kRight, 5, 7.56)); }
  SUBCASE("aspirate more than the pipette holds") {
    REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
    expectInvalid(robot.aspirate(Mount::kRight, 20.5, 7.56));
    REQUIRE(robot.aspirate(Mount::kRight, 15, 7.56));
    expectInvalid(robot.aspirate(Mount::kRight, 6, 7.56));
    expectInvalid(robot.preparePlunger(Mount::kRight));  // liquid in the tip
  }
  SUBCASE("dispense more than the tip holds") {
    REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
    REQUIRE(robot.aspirate(Mount::kRight, 5, 7.56));
    expectInvalid(robot.dispense(Mount::kRight, 6, 7.56));
  }
  SUBCASE("pick up with a tip already attached") {
    REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
    expectInvalid(robot.pickUpTip(Mount::kRight, 51.05));
  }
  SUBCASE("drop or blow out without a tip") {
    expectInvalid(robot.dropTip(Mount::kRight));
    expectInvalid(robot.blowOut(Mount::kRight, 5));
  }
  SUBCASE("bad numbers") {
    expectInvalid(robot.pickUpTip(Mount::kRight, 0));
    expectInvalid(robot.moveTo(Mount::kRight, {10, 10, 10}, -1.0));
    expectInvalid(robot.delay(-1));
    REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
    expectInvalid(robot.aspirate(Mount::kRight, -1, 7.56));
    expectInvalid(robot.aspirate(Mount::kRight, 1, 0));
  }
  SUBCASE("out of reach") {
    expectInvalid(robot.moveTo(Mount::kRight, {10, 10, 218 + 10.45 + 1}, std::nullopt));
    expectInvalid(robot.moveTo(Mount::kRight, {500, 10, 10}, std::nullopt));
    REQUIRE(robot.moveTo(Mount::kRight, {10, 10, 218 + 10.45}, std::nullopt));  // exactly home
  }
  CHECK(robot.delay(0));
}

TEST_CASE("ReattachingAnInstrumentClearsTheTip") {
  SimRobot robot;
  REQUIRE(robot.attachInstrument(Mount::kRight, &p20()));
  REQUIRE(robot.pickUpTip(Mount::kRight, 51.05));
  REQUIRE(robot.attachInstrument(Mount::kRight, &**findPipette("p300_single_gen2")));
  CHECK(where(robot).axes.c == 19.5);
  REQUIRE(robot.pickUpTip(Mount::kRight, 51.1));
  REQUIRE(robot.attachInstrument(Mount::kRight, nullptr));
  CHECK_FALSE(robot.moveTo(Mount::kRight, {1, 1, 1}, std::nullopt));
}

TEST_CASE("MountNamesRoundTrip") {
  CHECK(std::string(toString(Mount::kLeft)) == "left");
  CHECK(std::string(toString(Mount::kRight)) == "right");
  CHECK(parseMount("left") == Mount::kLeft);
  CHECK(parseMount("right") == Mount::kRight);
  CHECK_FALSE(parseMount("Left"));
  CHECK(std::string(toString(ErrorCode::kInvalidDefinition)) == "InvalidDefinition");
  CHECK(std::string(toString(ErrorCode::kCommunication)) == "Communication");
}
