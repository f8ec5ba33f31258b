// Module drivers against the virtual modules: the G-code each sends, the replies each
// parses, ramps, faults; in-process and over real pseudo-terminals; module geometry.
#include "doctest_hardware.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include "runrec/hardware/modules.hpp"

using namespace runrec::hardware;

namespace {

struct Rig {
  explicit Rig(const char* model, VirtualModuleOptions vo = {}, ModuleDriverOptions dopt = {})
      : m(findModuleModel(model)), sim(model, m->type, vo), driver(*m, makeModuleLoopbackPort(sim), dopt) {}
  const ModuleModel* m;
  VirtualModule sim;
  ModuleDriver driver;
};

struct PtyRig {
  explicit PtyRig(const char* model, VirtualModuleOptions vo = {}) : m(findModuleModel(model)), sim(model, m->type, vo) {
    auto p = PtyModule::open(sim);
    REQUIRE(p);
    pty = std::move(*p);
    server = std::thread([this] { served = pty->serve(stop).has_value(); });
  }
  ~PtyRig() { halt(); }
  void halt() {
    stop = true;
    if (server.joinable()) server.join();
  }
  const ModuleModel* m;
  VirtualModule sim;
  std::unique_ptr<PtyModule> pty;
  std::atomic<bool> stop{false};
  bool served = false;
  std::thread server;
};

}  // namespace

TEST_CASE("TemperatureModuleSetsReadsAndDeactivatesWithItsDialect") {
  Rig r("temperatureModuleV2");
  REQUIRE(r.driver.setTemperature(40));
  auto t = r.driver.waitForTemperature(40);
  REQUIRE(t);
  CHECK(*t->targetCelsius == doctest::Approx(40));
  CHECK(*t->currentCelsius == doctest::Approx(40));
  REQUIRE(r.driver.deactivateHeater());
  auto after = r.driver.readTemperature();
  REQUIRE(after);
  CHECK_FALSE(after->targetCelsius.has_value());
  auto lines = r.sim.received();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "M104 S40.0");
  CHECK(lines[1] == "M105");
  CHECK(lines[2] == "M18");
}

TEST_CASE("TemperaturesRampAtTheConfiguredRateInRealTime") {
  VirtualModuleOptions vo;
  vo.timeScale = 0.01;         // 100x faster than real time
  vo.degreesPerSecond = 10;    // 23 -> 33 °C: 1 simulated second, 10 ms real
  vo.ambientCelsius = 23;
  ModuleDriverOptions dopt;
  dopt.pollInterval = std::chrono::milliseconds(2);
  Rig r("temperatureModuleV1", vo, dopt);
  REQUIRE(r.driver.setTemperature(33));
  auto first = r.driver.readTemperature();
  REQUIRE(first);
  CHECK(*first->currentCelsius < 33);  // not there at once
  auto t = r.driver.waitForTemperature(33);
  REQUIRE(t);
  CHECK(*t->currentCelsius == doctest::Approx(33).epsilon(0.02));
  CHECK(r.sim.commands() >= 3);
}

TEST_CASE("MagneticModuleHomesEngagesAndReportsTheMagnetPosition") {
  Rig r("magneticModuleV2");
  REQUIRE(r.driver.homeMagnet());
  REQUIRE(r.driver.moveMagnet(12.5));
  auto z = r.driver.readMagnetPosition();
  REQUIRE(z);
  CHECK(*z == doctest::Approx(12.5));
  auto lines = r.sim.received();
  CHECK(lines == std::vector<std::string>{"G28.2", "G0 Z12.5", "M114.2"});
  CHECK(magnetHardwareHeight(*findModuleModel("magneticModuleV2"), 10) == doctest::Approx(12.5));
  CHECK(magnetHardwareHeight(*findModuleModel("magneticModuleV1"), 10) == doctest::Approx(25));
}

TEST_CASE("ThermocyclerBlockHoldLidAndLidHeater") {
  Rig r("thermocyclerModuleV1");
  REQUIRE(r.driver.closeLid());
  auto lid = r.driver.readLidStatus();
  REQUIRE(lid);
  CHECK(*lid == "closed");
  REQUIRE(r.driver.setLidTemperature(105));
  REQUIRE(r.driver.waitForLidTemperature(105));
  REQUIRE(r.driver.setTemperature(95, 30, 50));
  auto block = r.driver.waitForTemperature(95);
  REQUIRE(block);
  CHECK(*block->targetCelsius == doctest::Approx(95));
  CHECK(*block->holdSecondsRemaining == doctest::Approx(0));
  REQUIRE(r.driver.openLid());
  auto all = r.driver.readAll();
  REQUIRE(all);
  CHECK(all->lid == "open");
  CHECK(*all->lidTargetCelsius == doctest::Approx(105));
  REQUIRE(r.driver.deactivateAll());
  auto off = r.driver.readAll();
  REQUIRE(off);
  CHECK_FALSE(off->targetCelsius.has_value());
  CHECK_FALSE(off->lidTargetCelsius.has_value());
  auto lines = r.sim.received();
  CHECK(std::find(lines.begin(), lines.end(), "M104 S95.0 H30.0 V50.0") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "M140 S105.0") != lines.end());
}

TEST_CASE("HeaterShakerShakesOnlyWithTheLatchClosedAndEchoesCodes") {
  Rig r("heaterShakerModuleV1");
  REQUIRE(r.driver.openLatch());
  auto latch = r.driver.readLatch();
  REQUIRE(latch);
  CHECK(*latch == "open");
  auto refused = r.driver.setRpm(500);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::kBoardError);
  REQUIRE(r.driver.closeLatch());
  REQUIRE(r.driver.setRpm(500));
  auto rpm = r.driver.waitForRpm(500);
  REQUIRE(rpm);
  CHECK(*rpm->currentRpm == 500);
  auto busy = r.driver.openLatch();
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == ErrorCode::kBoardError);
  REQUIRE(r.driver.setTemperature(37));
  auto all = r.driver.readAll();
  REQUIRE(all);
  CHECK(*all->targetCelsius == doctest::Approx(37));
  CHECK(all->latch == "closed");
  REQUIRE(r.driver.stopShaking());
  REQUIRE(r.driver.deactivateHeater());
  auto off = r.driver.readAll();
  REQUIRE(off);
  CHECK(*off->currentRpm == 0);
  CHECK_FALSE(off->targetCelsius.has_value());
}

TEST_CASE("AnInjectedErrorIsABoardErrorOnThatCommandOnly") {
  VirtualModuleOptions vo;
  vo.faults = {{ModuleFault::Kind::kError, 2}};
  Rig r("temperatureModuleV2", vo);
  REQUIRE(r.driver.readTemperature());
  auto st = r.driver.setTemperature(50);
  REQUIRE_FALSE(st);
  CHECK(st.error().code == ErrorCode::kBoardError);
  CHECK(st.error().details["command"] == "M104 S50.0");
  REQUIRE(r.driver.setTemperature(50));
}

TEST_CASE("ADroppedReplyIsRecoveredByTheResend") {
  VirtualModuleOptions vo;
  vo.faults = {{ModuleFault::Kind::kDrop, 1}};
  ModuleDriverOptions dopt;
  dopt.ackTimeout = std::chrono::milliseconds(50);
  Rig r("magneticModuleV1", vo, dopt);
  REQUIRE(r.driver.moveMagnet(10));
  CHECK(r.driver.linesSent() == 2);
}

TEST_CASE("GarbageIsACommunicationErrorAndSilenceATimeout") {
  VirtualModuleOptions vo;
  vo.faults = {{ModuleFault::Kind::kGarbage, 1}, {ModuleFault::Kind::kSilent, 2}};
  ModuleDriverOptions dopt;
  dopt.ackTimeout = std::chrono::milliseconds(30);
  dopt.retries = 1;
  Rig r("heaterShakerModuleV1", vo, dopt);
  auto g = r.driver.readTemperature();
  REQUIRE_FALSE(g);
  CHECK(g.error().code == ErrorCode::kCommunication);
  auto s = r.driver.readTemperature();
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::kTimeout);
  CHECK(s.error().details["attempts"] == 2);
}

TEST_CASE("TheDriversRunOverRealPseudoTerminals") {
  for (const char* model : {"temperatureModuleV2", "magneticModuleV1", "thermocyclerModuleV1", "heaterShakerModuleV1"}) {
    CAPTURE(model);
    PtyRig rig(model);
    auto port = openSerialPort(rig.pty->path());
    REQUIRE(port);
    ModuleDriver driver(*rig.m, std::move(*port));
    if (rig.m->type == ModuleType::kMagnetic) {
      REQUIRE(driver.homeMagnet());
      REQUIRE(driver.moveMagnet(20));
    } else {
      if (rig.m->type == ModuleType::kThermocycler) REQUIRE(driver.openLid());
      REQUIRE(driver.setTemperature(40));
      REQUIRE(driver.waitForTemperature(40));
    }
    auto all = driver.readAll();
    REQUIRE(all);
    if (rig.m->type == ModuleType::kMagnetic)
      CHECK(*all->magnetPosition == doctest::Approx(20));
    else
      CHECK(*all->currentCelsius == doctest::Approx(40));
    rig.halt();
    CHECK(rig.served);
  }
}

TEST_CASE("ASilentModuleOnAPtyIsATimeoutNotAHang") {
  VirtualModuleOptions vo;
  vo.faults = {{ModuleFault::Kind::kSilent, 1}};
  PtyRig rig("temperatureModuleV1", vo);
  auto port = openSerialPort(rig.pty->path());
  REQUIRE(port);
  ModuleDriverOptions dopt;
  dopt.ackTimeout = std::chrono::milliseconds(100);
  dopt.retries = 1;
  ModuleDriver driver(*rig.m, std::move(*port), dopt);
  auto r = driver.readTemperature();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kTimeout);
}

TEST_CASE("ModuleLabwareOffsetsFollowTheSlotTransforms") {
  auto off = moduleLabwareOffset(*findModuleModel("temperatureModuleV2"), "1");
  REQUIRE(off);
  CHECK(off->x == doctest::Approx(-1.45));
  CHECK(off->z == doctest::Approx(80.09));
  auto right = moduleLabwareOffset(*findModuleModel("temperatureModuleV2"), "3");
  REQUIRE(right);
  CHECK(right->x == doctest::Approx(1.15));
  auto mag = moduleLabwareOffset(*findModuleModel("magneticModuleV2"), "6");
  REQUIRE(mag);
  CHECK(mag->x == doctest::Approx(1.425));
  auto hs = moduleLabwareOffset(*findModuleModel("heaterShakerModuleV1"), "9");
  REQUIRE(hs);
  CHECK(hs->x == doctest::Approx(0.125));
  CHECK(hs->y == doctest::Approx(-1.125));
  auto tc = moduleSlots(*findModuleModel("thermocyclerModuleV1"), "7");
  REQUIRE(tc);
  CHECK(*tc == std::vector<std::string>{"7", "8", "10", "11"});
  CHECK_FALSE(moduleSlots(*findModuleModel("thermocyclerModuleV1"), "4"));
  auto n = slotNeighbours("5");
  CHECK(n.east == "6");
  CHECK(n.west == "4");
  CHECK(n.north == "8");
  CHECK(n.south == "2");
  CHECK(slotNeighbours("3").east.empty());
}

TEST_CASE("ModuleBindingsParseAndTheHubServesUnboundModulesVirtually") {
  auto b = parseModuleBinding("temperatureModuleV2@3=sim:error@2,silent@5");
  REQUIRE(b);
  CHECK(b->slot == "3");
  CHECK(b->faults.size() == 2);
  CHECK(parseModuleBinding("heaterShakerModuleV1=serial:/dev/ttyACM1")->device == "serial:/dev/ttyACM1");
  CHECK_FALSE(parseModuleBinding("fooModule=sim"));
  CHECK_FALSE(parseModuleBinding("temperatureModuleV2=usb"));
  ModuleHub hub;
  auto d = hub.attach("t1", "temperatureModuleV2", "1");
  REQUIRE(d);
  CHECK(hub.find("t1") == *d);
  CHECK(hub.virtualModule("t1") != nullptr);
  ModuleHubOptions none;
  none.simulateUnbound = false;
  ModuleHub strict(none);
  auto refused = strict.attach("t1", "temperatureModuleV2", "1");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::kNotFound);
}
