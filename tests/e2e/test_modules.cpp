// Modules end to end: the runrec binary runs protocols that load modules on virtual modules
// (in-process and on a real pty), module state is read back from the log, a module that
// fails mid-run fails the run cleanly and cleanup still deactivates it.
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "pipeline_support.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/modules.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "support.hpp"

using namespace runrec;
using nlohmann::json;

namespace {

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

json showLast(const std::filesystem::path& db) {
  auto show = test::runrec("show last --json --state --db " + q(db));
  INFO(show.err);
  REQUIRE(show.exitCode == 0);
  return json::parse(show.out);
}

std::vector<json> commandsOf(const json& d, const std::string& type, const std::string& intent = "") {
  std::vector<json> out;
  for (auto& c : d["commands"])
    if (c["commandType"] == type && (intent.empty() || c["intent"] == intent)) out.push_back(c);
  return out;
}

// The acceptance protocol with its module commands replaced: a thermocycler in slot 7 and
// a heater-shaker in slot 3 instead of the temperature and magnetic modules.
json tcAndHsProtocol(const std::filesystem::path& shared, const json& moduleCommands) {
  json p = test::readJson(shared / "protocols/json/v6/tempAndMagModuleCommands.json");
  p["modules"] = {{"temperatureModuleId", {{"model", "thermocyclerModuleV1"}}},
                  {"magneticModuleId", {{"model", "heaterShakerModuleV1"}}}};
  json commands = json::array();
  for (auto& c : p["commands"]) {
    std::string type = c["commandType"];
    if (type.find('/') != std::string::npos) continue;
    if (type == "loadModule" && c["params"]["moduleId"] == "temperatureModuleId") c["params"]["location"]["slotName"] = "7";
    if (type == "loadLabware" && c["params"]["labwareId"] == "tipRackId") c["params"]["location"]["slotName"] = "5";
    commands.push_back(c);
  }
  for (auto& c : moduleCommands) commands.push_back(c);
  p["commands"] = commands;
  return p;
}

json cmd(const std::string& type, json params) { return {{"commandType", type}, {"params", std::move(params)}}; }

}  // namespace

TEST_CASE("the temperature and magnetic module protocol runs to the end on virtual modules") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-accept");
  auto db = dir / "runs.db";
  auto run = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db));
  INFO(run.err);
  REQUIRE(run.exitCode == 0);
  json d = showLast(db);
  CHECK(d["status"] == "succeeded");

  // Each module command's result carries the module's state read back from the device.
  auto set = commandsOf(d, "temperatureModule/setTargetTemperature");
  REQUIRE(set.size() == 1);
  CHECK(set[0]["result"]["moduleStatus"]["targetCelsius"] == 80.0);
  CHECK(set[0]["result"]["simulated"] == true);
  auto wait = commandsOf(d, "temperatureModule/waitForTemperature");
  REQUIRE(wait.size() == 1);
  CHECK(wait[0]["result"]["moduleStatus"]["currentCelsius"] == 80.0);
  auto off = commandsOf(d, "temperatureModule/deactivate", "protocol");
  REQUIRE(off.size() == 1);
  CHECK(off[0]["result"]["moduleStatus"]["targetCelsius"].is_null());
  auto engage = commandsOf(d, "magneticModule/engage");
  REQUIRE(engage.size() == 1);
  CHECK(engage[0]["result"]["moduleStatus"]["engaged"] == true);
  CHECK(engage[0]["result"]["moduleStatus"]["height"] == 10.0);
  CHECK(engage[0]["result"]["moduleStatus"]["hardwareHeight"] == 12.5);  // GEN2: 2.5 mm + height

  // Labware on the modules sits at the module's offset for its model and slot.
  for (auto& c : commandsOf(d, "loadLabware")) {
    if (c["params"]["labwareId"] == "sourcePlateId") {  // temperature GEN2, slot 1
      CHECK(c["result"]["origin"]["x"] == doctest::Approx(-1.45));
      CHECK(c["result"]["origin"]["z"] == doctest::Approx(80.09));
    }
    if (c["params"]["labwareId"] == "destPlateId")  // magnetic GEN2, slot 3: x mirrored + 0.25
      CHECK(c["result"]["origin"]["x"] == doctest::Approx(265 + 1.425));
  }

  // Cleanup deactivated both modules before dropping the tip.
  std::vector<std::string> cleanup;
  for (auto& c : d["commands"])
    if (c["intent"] == "cleanup") cleanup.push_back(c["commandType"]);
  REQUIRE(cleanup.size() >= 3);
  CHECK(std::find(cleanup.begin(), cleanup.end(), "temperatureModule/deactivate") < std::find(cleanup.begin(), cleanup.end(), "dropTip"));
  CHECK(std::find(cleanup.begin(), cleanup.end(), "magneticModule/disengage") != cleanup.end());

  // The folded state shows the modules as the log left them.
  auto& mods = d["state"]["modules"];
  CHECK(mods["temperatureModuleId"]["model"] == "temperatureModuleV2");
  CHECK(mods["temperatureModuleId"]["status"]["targetCelsius"].is_null());
  CHECK(mods["magneticModuleId"]["status"]["engaged"] == false);
}

TEST_CASE("a module that fails mid-run fails the run cleanly and cleanup still deactivates it") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-fault");
  auto db = dir / "runs.db";
  // Command lines to the temperature module: 1 M105 (loadModule), 2 M104 (fails), ...
  auto run = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db) +
                          " --module temperatureModuleV2=sim:error@2");
  INFO(run.err);
  CHECK(run.exitCode == 1);
  json d = showLast(db);
  CHECK(d["status"] == "failed");
  auto set = commandsOf(d, "temperatureModule/setTargetTemperature");
  REQUIRE(set.size() == 1);
  CHECK(set[0]["status"] == "failed");
  CHECK(set[0]["error"]["errorType"] == "Hardware");
  CHECK(set[0]["error"]["details"]["code"] == "BoardError");
  CHECK(set[0]["error"]["details"]["hardware"]["command"] == "M104 S80.0");
  CHECK(commandsOf(d, "temperatureModule/waitForTemperature").empty());  // nothing after the failure
  // Cleanup: the module is deactivated (and answers again), the tip dropped, the robot homed.
  auto deact = commandsOf(d, "temperatureModule/deactivate", "cleanup");
  REQUIRE(deact.size() == 1);
  CHECK(deact[0]["status"] == "succeeded");
  CHECK(deact[0]["result"]["moduleStatus"]["targetCelsius"].is_null());
  auto drop = commandsOf(d, "dropTip", "cleanup");
  REQUIRE(drop.size() == 1);
  CHECK(drop[0]["status"] == "succeeded");
  CHECK(d["commands"].back()["commandType"] == "home");
  CHECK(d["state"]["modules"]["temperatureModuleId"]["fault"].is_null());  // cleared by the deactivation
}

TEST_CASE("a silent module times out, the run fails, and the rest of cleanup still runs") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-silent");
  auto db = dir / "runs.db";
  // The temperature module answers loadModule's M105, then never again: the set times out
  // (2 s x 4 attempts), and so does cleanup's deactivation; everything else still runs.
  hardware::VirtualModuleOptions vo;
  vo.faults = {{hardware::ModuleFault::Kind::kSilent, 2}};
  hardware::VirtualModule module("temperatureModuleV2", hardware::ModuleType::kTemperature, vo);
  auto pty = hardware::PtyModule::open(module);
  REQUIRE(pty);
  std::atomic<bool> stop{false};
  std::thread server([&] { (void)(*pty)->serve(stop); });
  auto proto = *shared / "protocols/json/v6/tempAndMagModuleCommands.json";
  auto run = test::runrec("run " + q(proto) + " --db " + q(db) + " --module temperatureModuleV2=serial:" + (*pty)->path());
  stop = true;
  server.join();
  INFO(run.err);
  CHECK(run.exitCode == 1);
  json d = showLast(db);
  CHECK(d["status"] == "failed");
  auto set = commandsOf(d, "temperatureModule/setTargetTemperature");
  REQUIRE(set.size() == 1);
  CHECK(set[0]["error"]["details"]["code"] == "Timeout");
  auto deactivate = commandsOf(d, "temperatureModule/deactivate", "cleanup");
  REQUIRE(deactivate.size() == 1);
  CHECK(deactivate[0]["status"] == "failed");
  CHECK(commandsOf(d, "magneticModule/disengage", "cleanup").at(0)["status"] == "succeeded");
  CHECK(commandsOf(d, "dropTip", "cleanup").at(0)["status"] == "succeeded");
  CHECK(d["commands"].back()["commandType"] == "home");
  CHECK(d["counts"]["cleanupFailed"] == 1);
}

TEST_CASE("a module bound to a serial device runs over a real pseudo-terminal") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-pty");
  auto db = dir / "runs.db";
  hardware::VirtualModule module("temperatureModuleV2", hardware::ModuleType::kTemperature);
  auto pty = hardware::PtyModule::open(module);
  REQUIRE(pty);
  std::atomic<bool> stop{false};
  std::thread server([&] { (void)(*pty)->serve(stop); });
  auto run = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db) +
                          " --modules sim --module temperatureModuleV2=serial:" + (*pty)->path());
  stop = true;
  server.join();
  INFO(run.err);
  CHECK(run.exitCode == 0);
  json d = showLast(db);
  auto load = commandsOf(d, "loadModule");
  REQUIRE(load.size() == 2);
  for (auto& c : load)
    if (c["params"]["moduleId"] == "temperatureModuleId") {
      CHECK(c["result"]["device"] == (*pty)->path());
      CHECK(c["result"]["simulated"] == false);
    }
  auto lines = module.received();
  CHECK(std::find(lines.begin(), lines.end(), "M104 S80.0") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "M18") != lines.end());
}

TEST_CASE("--modules none refuses a module nothing serves") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-none");
  auto db = dir / "runs.db";
  auto run = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db) +
                          " --modules none");
  CHECK(run.exitCode == 1);
  json d = showLast(db);
  auto load = commandsOf(d, "loadModule");
  REQUIRE(!load.empty());
  CHECK(load[0]["error"]["details"]["code"] == "NotFound");
  auto bad = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db) +
                          " --module fooModule=sim");
  CHECK(bad.exitCode == 2);
}

TEST_CASE("thermocycler and heater-shaker commands, including runProfile, run and fold") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-tc-hs");
  auto db = dir / "runs.db";
  json tc = {{"moduleId", "temperatureModuleId"}}, hs = {{"moduleId", "magneticModuleId"}};
  auto with = [](json base, json extra) {
    base.update(extra);
    return base;
  };
  json p = tcAndHsProtocol(*shared, json::array({
      cmd("heaterShaker/openLabwareLatch", hs), cmd("heaterShaker/closeLabwareLatch", hs),
      cmd("heaterShaker/setTargetTemperature", with(hs, {{"celsius", 37}})),
      cmd("heaterShaker/waitForTemperature", hs),
      cmd("heaterShaker/setAndWaitForShakeSpeed", with(hs, {{"rpm", 500}})),
      cmd("thermocycler/closeLid", tc),
      cmd("thermocycler/setTargetLidTemperature", with(tc, {{"celsius", 105}})),
      cmd("thermocycler/waitForLidTemperature", tc),
      cmd("thermocycler/runProfile",
          with(tc, {{"profile", json::array({{{"celsius", 95}, {"holdSeconds", 10}}, {{"celsius", 60}, {"holdSeconds", 5}}})},
                    {"blockMaxVolumeUl", 20}})),
      cmd("thermocycler/setTargetBlockTemperature", with(tc, {{"celsius", 4}, {"holdTimeSeconds", 30}})),
      cmd("thermocycler/waitForBlockTemperature", tc),
  }));
  auto proto = dir / "tc_hs.json";
  std::ofstream(proto) << p.dump();
  auto run = test::runrec("run " + q(proto) + " --db " + q(db));
  INFO(run.err);
  REQUIRE(run.exitCode == 0);
  json d = showLast(db);
  auto profile = commandsOf(d, "thermocycler/runProfile");
  REQUIRE(profile.size() == 1);
  CHECK(profile[0]["result"]["stepsCompleted"] == 2);
  CHECK(profile[0]["result"]["moduleStatus"]["targetBlockCelsius"] == 60.0);
  CHECK(profile[0]["result"]["moduleStatus"]["lid"] == "closed");
  auto shake = commandsOf(d, "heaterShaker/setAndWaitForShakeSpeed");
  REQUIRE(shake.size() == 1);
  CHECK(shake[0]["result"]["moduleStatus"]["currentRpm"] == 500);
  // The thermocycler covers 7, 8, 10, 11.
  auto load = commandsOf(d, "loadModule");
  for (auto& c : load)
    if (c["params"]["moduleId"] == "temperatureModuleId")
      CHECK(c["result"]["slots"] == json::array({"7", "8", "10", "11"}));
  // Cleanup stopped the shaker first, then every heater; lid and latch stay.
  std::vector<std::string> cleanup;
  for (auto& c : d["commands"])
    if (c["intent"] == "cleanup") cleanup.push_back(c["commandType"]);
  REQUIRE(cleanup.size() >= 4);
  CHECK(cleanup[0] == "heaterShaker/deactivateShaker");
  auto& mods = d["state"]["modules"];
  CHECK(mods["magneticModuleId"]["status"]["targetRpm"].is_null());
  CHECK(mods["magneticModuleId"]["status"]["targetCelsius"].is_null());
  CHECK(mods["temperatureModuleId"]["status"]["targetBlockCelsius"].is_null());
  CHECK(mods["temperatureModuleId"]["status"]["targetLidCelsius"].is_null());
  CHECK(mods["temperatureModuleId"]["status"]["lid"] == "closed");
}

TEST_CASE("pipettes keep away from a closed thermocycler and a shaking heater-shaker") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-restrict");
  auto db = dir / "runs.db";
  json tc = {{"moduleId", "temperatureModuleId"}}, hs = {{"moduleId", "magneticModuleId"}};
  auto dispense = [] {
    return cmd("dispense", {{"pipetteId", "pipetteId"}, {"labwareId", "destPlateId"}, {"wellName", "A1"}, {"volume", 0.5},
                            {"flowRate", 2}});
  };
  json shaking = tcAndHsProtocol(*shared, json::array({
      cmd("heaterShaker/setAndWaitForShakeSpeed", json{{"moduleId", "magneticModuleId"}, {"rpm", 1000}}), dispense()}));
  // The acceptance protocol's aspirate comes before the module commands; dispense again after.
  auto proto = dir / "shaking.json";
  std::ofstream(proto) << shaking.dump();
  auto run = test::runrec("run " + q(proto) + " --db " + q(db));
  CHECK(run.exitCode == 1);
  json d = showLast(db);
  auto disp = commandsOf(d, "dispense", "protocol");
  REQUIRE(disp.size() == 2);
  CHECK(disp[1]["status"] == "failed");
  CHECK(disp[1]["error"]["errorType"] == "InvalidAction");
  CHECK(disp[1]["error"]["message"].get<std::string>().find("shaking") != std::string::npos);
  auto stopShake = commandsOf(d, "heaterShaker/deactivateShaker", "cleanup");
  REQUIRE(stopShake.size() == 1);
  CHECK(stopShake[0]["status"] == "succeeded");
  CHECK(commandsOf(d, "dropTip", "cleanup").at(0)["status"] == "succeeded");

  json closed = tcAndHsProtocol(*shared, json::array({
      cmd("thermocycler/closeLid", tc),
      cmd("aspirate", {{"pipetteId", "pipetteId"}, {"labwareId", "sourcePlateId"}, {"wellName", "A1"}, {"volume", 1},
                       {"flowRate", 2}})}));
  proto = dir / "closed.json";
  std::ofstream(proto) << closed.dump();
  run = test::runrec("run " + q(proto) + " --db " + q(db));
  CHECK(run.exitCode == 1);
  d = showLast(db);
  auto asp = commandsOf(d, "aspirate", "protocol");
  REQUIRE(asp.size() == 2);
  CHECK(asp[1]["error"]["errorType"] == "InvalidAction");
  CHECK(asp[1]["error"]["message"].get<std::string>().find("lid") != std::string::npos);

  // Nothing may be loaded in the slots the thermocycler covers: the runner's validation
  // refuses the file, and the engine checks again (docs/modules.md).
  json blocked = tcAndHsProtocol(*shared, json::array());
  for (auto& c : blocked["commands"])
    if (c["commandType"] == "loadLabware" && c["params"]["labwareId"] == "tipRackId") c["params"]["location"]["slotName"] = "10";
  proto = dir / "blocked.json";
  std::ofstream(proto) << blocked.dump();
  run = test::runrec("run " + q(proto) + " --db " + q(db));
  CHECK(run.exitCode == 2);
  CHECK(run.err.find("occupied by module") != std::string::npos);
}

TEST_CASE("after a crash mid-wait, recovery attaches the modules again and deactivates them") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto dir = test::tempDir("modules-recover");
  auto db = dir / "runs.db";
  auto run = test::runrec("run " + q(*shared / "protocols/json/v6/tempAndMagModuleCommands.json") + " --db " + q(db));
  REQUIRE(run.exitCode == 0);
  std::string runId = showLast(db)["runId"];
  {
    // What a crash during waitForTemperature leaves: the run's events up to that start.
    auto log = engine::EventLog::open(db);
    REQUIRE(log);
    auto& l = **log;
    REQUIRE(l.begin());
    REQUIRE(l.createRun({"cut-off", engine::nowTimestamp(), "p", "sha", "sim"}, "p.json", "{}"));
    auto events = l.events(runId);
    REQUIRE(events);
    std::int64_t seq = 0;
    for (auto& e : *events) {
      REQUIRE(l.append({"cut-off", ++seq, e.type, engine::nowTimestamp(), e.commandId, e.payload}));
      if (e.type == "commandStarted" && e.payload.value("commandType", "") == "temperatureModule/waitForTemperature") break;
    }
    REQUIRE(l.commit());
  }
  auto hub = std::make_shared<hardware::ModuleHub>();
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://modules-recover-test";
  eo.modules = hub;
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE_MESSAGE(eng.has_value(), (eng ? "" : eng.error().message));
  REQUIRE((*eng)->recoveredRuns() == std::vector<std::string>{"cut-off"});
  auto* temp = hub->virtualModule("temperatureModuleId");
  REQUIRE(temp != nullptr);  // attached again by the recovery, from the logged model and slot
  auto lines = temp->received();
  CHECK(std::find(lines.begin(), lines.end(), "M18") != lines.end());
  eng->reset();
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(log);
  auto events = (*log)->events("cut-off");
  REQUIRE(events);
  std::vector<std::string> cleanup;
  json plan;
  for (auto& e : *events) {
    if (e.type == "cleanupStarted") plan = e.payload;
    if (e.type == "commandStarted" && e.payload["intent"] == "cleanup") cleanup.push_back(e.payload["commandType"]);
  }
  CHECK(plan["deactivateModules"].size() == 2);
  REQUIRE(cleanup.size() >= 3);
  CHECK(cleanup[0] == "magneticModule/disengage");
  CHECK(cleanup[1] == "temperatureModule/deactivate");
  CHECK(events->back().payload["status"] == "interrupted");
  CHECK(events->back().payload["cleanupSucceeded"] == true);
}
