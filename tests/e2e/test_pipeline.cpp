// The whole pipeline: runner -> ZeroMQ -> engine -> SQLite -> simulated robot.
#include <doctest/doctest.h>

#include "pipeline_support.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/geometry.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"

using namespace runrec;
using nlohmann::json;

TEST_CASE("the seed protocol (N = 1000) runs to the end, every command recorded, tip back in A1") {
  auto dir = test::tempDir("seed");
  json protocol = runner::makeSeedProtocol(1000);
  REQUIRE(protocol["commands"].size() == 1005);
  auto run = test::runInProcess(protocol, dir / "runs.db");
  const json& d = run.detail;
  CHECK(d["status"] == "succeeded");
  CHECK(run.result.succeeded());
  CHECK(d["counts"]["succeeded"] == 1005);
  CHECK(d["counts"]["failed"] == 0);
  CHECK_FALSE(d.contains("foldIssues"));
  // Every command has a start and an outcome, in protocol order; then cleanup homes (the
  // tip is back in its rack, so there is nothing to drop).
  REQUIRE(d["commands"].size() == 1006);
  CHECK(d["commands"][1005]["intent"] == "cleanup");
  CHECK(d["commands"][1005]["commandType"] == "home");
  CHECK(d["counts"]["cleanup"] == 1);
  for (size_t i = 0; i < 1005; ++i) {
    const json& c = d["commands"][i];
    REQUIRE(c["index"] == i + 1);
    REQUIRE(c["status"] == "succeeded");
    REQUIRE(c["startedAt"].is_string());
    REQUIRE(c["completedAt"].is_string());
  }
  // Events: created, started, 2 per command, cleanupStarted, 2 for the home, finished.
  CHECK(d["events"] == 2 + 2 * 1005 + 1 + 2 + 1);
  // The tip went back to the rack's A1 and nothing is attached at the end.
  const json& last = d["commands"][1004];
  CHECK(last["commandType"] == "dropTip");
  CHECK(last["params"]["labwareId"] == "tiprack");
  CHECK(last["params"]["wellName"] == "A1");
  const json& state = d["state"];
  CHECK(state["pipettes"]["pipette"]["tip"].is_null());
  CHECK(state["labware"]["tiprack"]["usedTips"] == json::array({"A1"}));
  // The robot received real coordinates: touch tips at H12 of the plate in slot 2.
  const json& touch = d["commands"][5]["result"]["position"];
  CHECK(touch["x"].get<double>() > 132.5 + 90);
  CHECK(touch["x"].get<double>() < 265);
  // Backpressure held: never more than N in flight.
  CHECK(run.result.maxInFlight <= static_cast<std::uint64_t>(bus::kDefaultHwm));
  CHECK(run.result.maxInFlight >= 1);
}

TEST_CASE("every Opentrons JSON fixture runs to the end on the simulated robot") {
  auto shared = test::requireShared();
  if (!shared) return;
  std::vector<std::filesystem::path> files;
  for (auto& v : {"v6", "v7", "v8"})
    for (auto& e : std::filesystem::directory_iterator(*shared / "protocols" / "json" / v)) files.push_back(e.path());
  files.push_back(*shared / "gcode" / "no_mods" / "protocol.json");
  REQUIRE(files.size() >= 9);
  auto dir = test::tempDir("fixtures");
  for (auto& f : files) {
    CAPTURE(f.string());
    auto run = test::runInProcess(test::readJson(f), dir / (f.stem().string() + ".db"));
    INFO(run.detail["error"].dump());
    if (f.filename() == "simpleV7.json") {
      // simpleV7 loads p1000_96, the Flex 96-channel, onto an OT-2 mount: an OT-2 cannot
      // carry it, so the run fails at once with a clear error instead of inventing geometry.
      CHECK(run.detail["status"] == "failed");
      CHECK(run.detail["counts"]["succeeded"] == 0);
      CHECK(run.detail["error"]["message"].get<std::string>().find("p1000_96") != std::string::npos);
      continue;
    }
    CHECK(run.detail["status"] == "succeeded");
    CHECK(run.detail["counts"]["succeeded"] == test::readJson(f)["commands"].size());
  }
}

TEST_CASE("an invalid action fails the command, ends the run failed, and nothing after it runs") {
  auto dir = test::tempDir("fail");
  json protocol = runner::makeSeedProtocol(200);
  // Aspirate before any tip is picked up: command 4 of 204.
  protocol["commands"].insert(protocol["commands"].begin() + 3,
                              json{{"commandType", "aspirate"},
                                   {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", "A1"},
                                               {"volume", 10}, {"flowRate", 50}}}});
  auto run = test::runInProcess(protocol, dir / "runs.db", 4);
  const json& d = run.detail;
  CHECK(d["status"] == "failed");
  CHECK_FALSE(run.result.succeeded());
  CHECK(d["counts"]["succeeded"] == 3);
  CHECK(d["counts"]["failed"] == 1);
  CHECK(d["error"]["errorType"] == "InvalidAction");
  CHECK(d["error"]["message"].get<std::string>().find("no tip") != std::string::npos);
  // Nothing after the failure executed; what was already in the bus is discarded (≤ N).
  CHECK(d["commands"].size() == 4 + 1);  // + cleanup's home (no tip to drop)
  // The runner learns of the failure with its window full: at most N more were sent.
  CHECK(d["counts"]["discarded"].get<int>() <= 4);
  CHECK(run.result.sent <= 4 + 4);
}

TEST_CASE("other invalid actions fail as on the robot") {
  auto dir = test::tempDir("invalid");
  auto failsWith = [&](json extra, const std::string& needle, int at = 4) {
    json protocol = runner::makeSeedProtocol(0);
    protocol["commands"].insert(protocol["commands"].begin() + at, extra);
    auto run = test::runInProcess(protocol, dir / ("r" + std::to_string(std::rand()) + ".db"));
    CHECK(run.detail["status"] == "failed");
    CHECK(run.detail["error"]["message"].get<std::string>().find(needle) != std::string::npos);
  };
  SUBCASE("picking up a tip while one is attached") {
    failsWith({{"commandType", "pickUpTip"}, {"params", {{"pipetteId", "pipette"}, {"labwareId", "tiprack"}, {"wellName", "B1"}}}},
              "already has a tip");
  }
  SUBCASE("picking up a used tip") {
    json protocol = runner::makeSeedProtocol(0);
    failsWith({{"commandType", "pickUpTip"}, {"params", {{"pipetteId", "pipette"}, {"labwareId", "tiprack"}, {"wellName", "A1"}}}},
              "already been used", 5);
  }
  SUBCASE("aspirating more than the tip holds") {
    failsWith({{"commandType", "aspirate"},
               {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", "A1"}, {"volume", 400}, {"flowRate", 50}}}},
              "takes at most");
  }
}

TEST_CASE("a run left without an end is closed as interrupted when an engine opens the log") {
  auto dir = test::tempDir("crash");
  auto db = dir / "runs.db";
  {
    auto log = engine::EventLog::open(db);
    REQUIRE(log);
    auto& l = **log;
    REQUIRE(l.begin());
    REQUIRE(l.createRun({"crashed-run", engine::nowTimestamp(), "p", "sha", "sim"}, "p.json", "{}"));
    REQUIRE(l.append({"crashed-run", 1, "runCreated", engine::nowTimestamp(), "", json::object()}));
    REQUIRE(l.append({"crashed-run", 2, "runStarted", engine::nowTimestamp(), "", json::object()}));
    REQUIRE(l.append({"crashed-run", 3, "commandStarted", engine::nowTimestamp(), "c1",
                      json{{"commandId", "c1"}, {"commandType", "home"}, {"params", json::object()}}}));
    REQUIRE(l.commit());
  }
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://crash-test";
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE(eng);
  REQUIRE((*eng)->recoveredRuns() == std::vector<std::string>{"crashed-run"});
  eng->reset();
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  auto end = (*log)->terminalEvent("crashed-run");
  REQUIRE(end);
  REQUIRE(end->has_value());
  CHECK((**end).payload["status"] == "interrupted");
  CHECK((**end).payload["commandInProgress"] == "c1");
  auto events = (*log)->events("crashed-run");
  REQUIRE(events);
  CHECK((**end).seq == events->back().seq);
  CHECK(events->at(3).type == "cleanupStarted");
}

TEST_CASE("a second engine cannot write the same log") {
  auto dir = test::tempDir("lock");
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = dir / "runs.db";
  eo.endpoint = "inproc://lock-a";
  auto a = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE(a);
  eo.endpoint = "inproc://lock-b";
  auto b = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE_FALSE(b);
  CHECK(b.error().message.find("another engine is writing this log") != std::string::npos);
}
