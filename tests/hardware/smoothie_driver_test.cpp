// SmoothieDriver and SmoothieRobot against the in-process VirtualSmoothie: the G-code
// conversation, acknowledgements, typed errors with reset and re-home, timeouts, garbage.
#include "doctest_hardware.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "runrec/hardware/smoothie.hpp"

using namespace runrec::hardware;

namespace {

struct Rig {
  explicit Rig(VirtualSmoothieOptions vo = {}, SmoothieDriverOptions dopt = {}, bool verify = true)
      : board(std::move(vo)) {
    auto port = makeRecordingPort(makeLoopbackPort(board), [this](std::string_view l) { lines.emplace_back(l); });
    SmoothieRobotOptions ro;
    ro.verifyInstruments = verify;
    robot = std::make_unique<SmoothieRobot>(std::make_unique<SmoothieDriver>(std::move(port), dopt), ro);
  }
  bool sent(std::string_view line) const { return std::find(lines.begin(), lines.end(), line) != lines.end(); }
  long count(std::string_view line) const { return std::count(lines.begin(), lines.end(), line); }
  VirtualSmoothie board;
  std::vector<std::string> lines;
  std::unique_ptr<SmoothieRobot> robot;
};

const PipetteSpec* p20() { return *findPipette("p20_single_v2.0"); }

VirtualSmoothieOptions withP20() {
  VirtualSmoothieOptions vo;
  vo.rightModel = "p20_single_v2.0";
  vo.rightId = "P20SV202020070101";
  return vo;
}

SmoothieDriverOptions fast() {
  SmoothieDriverOptions o;
  o.ackTimeout = std::chrono::milliseconds(20);
  o.homeTimeout = std::chrono::milliseconds(20);
  o.retries = 2;
  return o;
}

}  // namespace

TEST_CASE("HomeFollowsTheOt2SequenceAndEndsWithThePlungerAtTheBottom") {
  Rig rig(withP20());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  REQUIRE(rig.robot->home());
  REQUIRE(rig.lines.size() > 10);
  CHECK(rig.lines[0] == "M907 A0.8 B0.05 C0.05 X0.3 Y0.3 Z0.8 G4 P0.005 G28.2 A Z M400");
  CHECK(rig.sent("M907 A0.1 B0.05 C0.05 X1.25 Y0.3 Z0.1 G4 P0.005 G28.2 X M400"));
  CHECK(rig.sent("M907 A0.1 B0.05 C0.05 X0.3 Y1.25 Z0.1 G4 P0.005 G28.2 Y M400"));
  CHECK(rig.sent("M907 A0.1 B0.05 C1.0 X0.3 Y0.3 Z0.1 G4 P0.005 G28.2 C M400"));
  CHECK(rig.sent("M907 A0.1 B0.05 C1.0 X0.3 Y0.3 Z0.1 G4 P0.005 G0 C-8.5 M400"));
  for (auto axis : {VirtualSmoothie::kA, VirtualSmoothie::kC, VirtualSmoothie::kX, VirtualSmoothie::kY,
                    VirtualSmoothie::kZ})
    CHECK(rig.board.homed(axis));
  auto pos = rig.robot->positions();
  REQUIRE(pos);
  CHECK(pos->axes.x == 418);
  CHECK(pos->axes.a == 218);
  CHECK(pos->axes.c == -8.5);
  CHECK(rig.board.position()[VirtualSmoothie::kC] == -8.5);
}

TEST_CASE("TheFirstMotionHomesThenReadsTheInstrumentsThenMoves") {
  Rig rig(withP20());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  CHECK(rig.lines.empty());
  REQUIRE(rig.robot->moveTo(Mount::kRight, {14.38, 74.24, 64.69}, std::nullopt));
  CHECK(rig.sent("M371 L M400"));
  CHECK(rig.sent("M369 R M400"));
  CHECK(rig.lines.back() == "M907 A0.8 B0.05 C0.05 X1.25 Y1.25 Z0.1 G4 P0.005 G0 A54.24 X14.38 Y74.24 M400");
  CHECK(rig.board.position()[VirtualSmoothie::kA] == doctest::Approx(54.24));
}

TEST_CASE("AWrongPipetteOnTheBoardFailsTheFirstMotion") {
  Rig rig(withP20());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, *findPipette("p300_single_gen2")));
  auto st = rig.robot->moveTo(Mount::kRight, {100, 100, 100}, std::nullopt);
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kInvalidArgument);
  CHECK(st.error().message.find("p20_single_v2.0") != std::string::npos);
}

TEST_CASE("PlungerMovesUpOvershootByTheBacklashAndFeedFromTheFlowRate") {
  Rig rig(withP20());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  REQUIRE(rig.robot->moveTo(Mount::kRight, {14.38, 74.24, 64.69}, std::nullopt));
  REQUIRE(rig.robot->pickUpTip(Mount::kRight, 59.3 - 8.25 - 12.3));
  CHECK(rig.sent("G0 F600.0 M907 A0.1 B0.05 C0.05 X0.3 Y0.3 Z0.1 G4 P0.005 G0 A40.24 G0 F24000.0 M400"));
  CHECK(rig.sent("M907 A0.8 B0.05 C0.05 X0.3 Y0.3 Z0.1 G4 P0.005 G0 A202.0 M400"));
  REQUIRE(rig.robot->aspirate(Mount::kRight, 10, 7.56));
  CHECK(rig.lines[rig.lines.size() - 2] ==
        "G0 F601.0 M907 A0.1 B0.05 C1.0 X0.3 Y0.3 Z0.1 G4 P0.005 G0 C5.267 G0 C4.967 G0 F24000.0 M400");
  CHECK(rig.lines.back() == "M907 A0.1 B0.05 C0.05 X0.3 Y0.3 Z0.1 G4 P0.005 M400");
  REQUIRE(rig.robot->dispense(Mount::kRight, 10, 7.56));
  CHECK(rig.board.position()[VirtualSmoothie::kC] == -8.5);
}

TEST_CASE("AnErrorReplyIsABoardErrorOnThatMoveFollowedByAReset") {
  auto vo = withP20();
  vo.faults = {{SmoothieFault::Kind::kError, 0}};
  Rig probe(withP20());
  REQUIRE(probe.robot->attachInstrument(Mount::kRight, p20()));
  REQUIRE(probe.robot->home());
  long homeMoves = probe.board.moves();
  vo.faults[0].nthMove = homeMoves + 1;
  Rig rig(vo);
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  auto st = rig.robot->moveTo(Mount::kRight, {100, 100, 100}, std::nullopt);
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kBoardError);
  CHECK(st.error().details["command"].get<std::string>().find("G0 A") != std::string::npos);
  CHECK(rig.lines.back() == "M999 M400");
  // The board carries on.
  REQUIRE(rig.robot->moveTo(Mount::kRight, {100, 100, 100}, std::nullopt));
}

TEST_CASE("AnAlarmIsTypedThenTheBoardIsResetAndTheAxisRehomed") {
  auto vo = withP20();
  vo.faults = {{SmoothieFault::Kind::kAlarm, 1}};  // the first motion line: G28.2 A Z
  Rig rig(vo);
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  auto st = rig.robot->home();
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kAlarm);
  CHECK(rig.lines.back() == "M999 M400");  // a failed home is not re-homed
  // An alarm on a move homes the axis it names.
  auto vo2 = withP20();
  Rig probe(withP20());
  REQUIRE(probe.robot->attachInstrument(Mount::kRight, p20()));
  REQUIRE(probe.robot->home());
  vo2.faults = {{SmoothieFault::Kind::kAlarm, probe.board.moves() + 1}};
  Rig rig2(vo2);
  REQUIRE(rig2.robot->attachInstrument(Mount::kRight, p20()));
  auto st2 = rig2.robot->moveTo(Mount::kRight, {100, 100, 100}, std::nullopt);
  REQUIRE_FALSE(st2);
  CHECK(st2.error().code == ErrorCode::kAlarm);
  REQUIRE(rig2.lines.size() >= 2);
  CHECK(rig2.lines[rig2.lines.size() - 2] == "M999 M400");
  CHECK(rig2.lines.back() == "G28.2 A M400");
  CHECK(rig2.robot->moveTo(Mount::kRight, {100, 100, 100}, std::nullopt));
}

TEST_CASE("ASilentBoardTimesOutAfterBoundedRetriesAndNeverHangs") {
  auto vo = withP20();
  vo.faults = {{SmoothieFault::Kind::kSilent, 1}};
  Rig rig(vo, fast());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  auto t0 = std::chrono::steady_clock::now();
  auto st = rig.robot->home();
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kTimeout);
  CHECK(rig.lines.size() == 3);  // the first try and two retries
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("ADroppedReplyIsRecoveredByARetry") {
  auto vo = withP20();
  vo.faults = {{SmoothieFault::Kind::kDropReply, 1}};
  Rig rig(vo, fast());
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  REQUIRE(rig.robot->home());
  CHECK(rig.count("M907 A0.8 B0.05 C0.05 X0.3 Y0.3 Z0.8 G4 P0.005 G28.2 A Z M400") == 2);
}

TEST_CASE("GarbageInAReplyIsReportedNotTrusted") {
  auto vo = withP20();
  vo.faults = {{SmoothieFault::Kind::kGarbage, 1}};
  Rig rig(vo);
  REQUIRE(rig.robot->attachInstrument(Mount::kRight, p20()));
  auto st = rig.robot->home();
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kCommunication);
  CHECK(st.error().message.find("garbage") != std::string::npos);
}

TEST_CASE("AVanishedPortFailsTheCommand") {
  VirtualSmoothie board(withP20());
  auto loop = makeLoopbackPort(board);
  SerialPort* raw = loop.get();
  SmoothieDriver driver(std::move(loop), fast());
  REQUIRE(driver.command("G90"));
  raw->close();
  auto r = driver.command("G90");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kCommunication);
}

TEST_CASE("PositionAndInstrumentRepliesAreParsed") {
  VirtualSmoothie board(withP20());
  SmoothieDriver driver(makeLoopbackPort(board));
  REQUIRE(driver.command("G28.2 X Y"));
  auto pos = driver.updatePosition();
  REQUIRE(pos);
  CHECK((*pos)[kAxisX] == 418);
  CHECK((*pos)[kAxisY] == 353);
  CHECK(*driver.readInstrument(Mount::kRight, true) == "p20_single_v2.0");
  CHECK(*driver.readInstrument(Mount::kRight, false) == "P20SV202020070101");
  CHECK(driver.readInstrument(Mount::kLeft, true)->empty());
  CHECK(decodeInstrumentHex(encodeInstrumentHex("p300_multi_v2.1")) == "p300_multi_v2.1");
  auto bad = driver.command("M12345");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == ErrorCode::kBoardError);
}

TEST_CASE("AMovePastTheSwitchTripsTheLimitAlarm") {
  VirtualSmoothie board;
  SmoothieDriver driver(makeLoopbackPort(board));
  AxisTargets t;
  t[kAxisX] = 450;
  auto r = driver.move(t, AxisArray{0.1, 0.05, 0.05, 1.25, 0.3, 0.1});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kAlarm);
  CHECK(driver.position()[kAxisX] == 418);  // re-homed after the alarm
  CHECK(board.homed(VirtualSmoothie::kX));
}

TEST_CASE("MotionTakesRealTimeWhenScaled") {
  VirtualSmoothieOptions vo;
  vo.timeScale = 0.5;
  VirtualSmoothie board(vo);
  SmoothieDriver driver(makeLoopbackPort(board));
  auto t0 = std::chrono::steady_clock::now();
  AxisTargets t;
  t[kAxisX] = 200;  // 200 mm at 400 mm/s, 3000 mm/s²: ~0.63 s
  REQUIRE(driver.move(t, AxisArray{0.1, 0.05, 0.05, 1.25, 0.3, 0.1}));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(board.simulatedSeconds() == doctest::Approx(200.0 / 400 + 400.0 / 3000).epsilon(0.01));
  CHECK(wall >= board.simulatedSeconds() * 0.5 * 0.9);
  CHECK(parseSmoothieFault("alarm@3")->nthMove == 3);
  CHECK_FALSE(parseSmoothieFault("boom@3"));
  CHECK_FALSE(parseSmoothieFault("error@0"));
}
