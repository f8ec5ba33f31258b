// The same driver over a real pseudo-terminal: libserialport on one end, PtySmoothie
// serving the virtual board on the other.
#include "doctest_hardware.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include "runrec/hardware/smoothie.hpp"

using namespace runrec::hardware;

namespace {

struct PtyRig {
  explicit PtyRig(VirtualSmoothieOptions vo) : board(std::move(vo)) {
    auto p = PtySmoothie::open(board);
    REQUIRE(p);
    pty = std::move(*p);
    server = std::thread([this] { served = pty->serve(stop).has_value(); });
  }
  ~PtyRig() { halt(); }
  void halt() {
    stop = true;
    if (server.joinable()) server.join();
  }
  VirtualSmoothie board;
  std::unique_ptr<PtySmoothie> pty;
  std::atomic<bool> stop{false};
  bool served = false;
  std::thread server;
};

}  // namespace

TEST_CASE("TheDriverRunsOverAPseudoTerminalWithLibserialport") {
  VirtualSmoothieOptions vo;
  vo.rightModel = "p20_single_v2.0";
  PtyRig rig(vo);
  CHECK(rig.pty->path().rfind("/dev/", 0) == 0);
  auto robot = makeSerialSmoothieRobot(rig.pty->path());
  REQUIRE(robot);
  CHECK((*robot)->describe() == "smoothie:" + rig.pty->path());
  REQUIRE((*robot)->attachInstrument(Mount::kRight, *findPipette("p20_single_gen2")));
  REQUIRE((*robot)->moveTo(Mount::kRight, {14.38, 74.24, 64.69}, std::nullopt));
  REQUIRE((*robot)->pickUpTip(Mount::kRight, 39.2));
  REQUIRE((*robot)->aspirate(Mount::kRight, 10, 7.56));
  auto pos = (*robot)->positions();
  REQUIRE(pos);
  CHECK(pos->axes.x == doctest::Approx(14.38));
  CHECK(rig.board.position()[VirtualSmoothie::kC] == doctest::Approx(pos->axes.c));
  CHECK(rig.board.lines() > 40);
  rig.halt();
  CHECK(rig.served);
}

TEST_CASE("ABoardThatStopsAnsweringOnAPtyIsATimeoutNotAHang") {
  VirtualSmoothieOptions vo;
  vo.faults = {{SmoothieFault::Kind::kSilent, 2}};
  PtyRig rig(vo);
  auto port = openSerialPort(rig.pty->path());
  REQUIRE(port);
  SmoothieDriverOptions o;
  o.ackTimeout = std::chrono::milliseconds(50);
  o.homeTimeout = std::chrono::milliseconds(50);
  o.retries = 1;
  SmoothieDriver driver(std::move(*port), o);
  REQUIRE(driver.command("G28.2 X"));
  auto t0 = std::chrono::steady_clock::now();
  auto r = driver.command("G28.2 Y");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kTimeout);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
}

TEST_CASE("OpeningAMissingDeviceIsACommunicationError") {
  auto port = openSerialPort("/dev/runrec-no-such-tty");
  REQUIRE_FALSE(port);
  CHECK(port.error().code == ErrorCode::kCommunication);
}
