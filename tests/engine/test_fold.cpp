// The fold: each event type's effect on run state, and anomalies reported, not skipped.
#include <doctest/doctest.h>

#include "runrec/engine/state.hpp"
#include "runrec/hardware/labware.hpp"
#include "support.hpp"

using namespace runrec::engine;
using nlohmann::json;

namespace {

json definition(const std::string& loadName) {
  for (auto& d : runrec::hardware::LabwareLibrary::builtIns())
    if (d->loadName == loadName) return d->raw;
  FAIL("no built-in " << loadName);
  return {};
}

// Builds a run's events one command at a time.
struct Script {
  std::vector<Event> events;
  int command = 0;
  void add(const std::string& type, json payload, const std::string& commandId = "") {
    events.push_back({"run", static_cast<std::int64_t>(events.size() + 1), type, nowTimestamp(), commandId, payload});
  }
  void ok(const std::string& type, json params, json result = json::object()) {
    std::string id = "c" + std::to_string(++command);
    add(event::kCommandStarted, {{"commandId", id}, {"index", command}, {"commandType", type}, {"params", params}}, id);
    add(event::kCommandSucceeded, {{"commandId", id}, {"result", result}}, id);
  }
  void failed(const std::string& type, json params, json error) {
    std::string id = "c" + std::to_string(++command);
    add(event::kCommandStarted, {{"commandId", id}, {"index", command}, {"commandType", type}, {"params", params}}, id);
    add(event::kCommandFailed, {{"commandId", id}, {"error", error}}, id);
  }
};

Script setup() {
  Script s;
  s.add(event::kRunCreated, {{"protocol", {{"name", "t"}, {"commandCount", 10}}},
                             {"fixedTrash", {{"labwareId", "fixedTrash"}, {"slotName", "12"},
                                             {"definition", definition("opentrons_1_trash_1100ml_fixed")},
                                             {"origin", {{"x", 265}, {"y", 271.5}, {"z", 0}}}}}});
  s.add(event::kRunStarted, json::object());
  s.ok("loadPipette", {{"pipetteId", "p"}, {"pipetteName", "p300_single_gen2"}, {"mount", "right"}},
       {{"model", "p300_single_v2.1"}});
  s.ok("loadLabware", {{"labwareId", "tips"}, {"location", {{"slotName", "1"}}}},
       {{"definition", definition("opentrons_96_tiprack_300ul")}, {"origin", {{"x", 0}, {"y", 0}, {"z", 0}}}});
  s.ok("loadLabware", {{"labwareId", "plate"}, {"location", {{"slotName", "2"}}}},
       {{"definition", definition("biorad_96_wellplate_200ul_pcr")}, {"origin", {{"x", 132.5}, {"y", 0}, {"z", 0}}}});
  return s;
}

}  // namespace

TEST_CASE("runCreated places the fixed trash; runStarted starts the run") {
  Script s = setup();
  std::vector<FoldIssue> issues;
  RunState st = fold(s.events, &issues);
  CHECK(issues.empty());
  CHECK(st.status == RunStatus::kRunning);
  REQUIRE(st.findLabware("fixedTrash"));
  CHECK(st.findLabware("fixedTrash")->slotName == "12");
  CHECK(st.labwareInSlot("1")->id == "tips");
  REQUIRE(st.pipette("p"));
  CHECK(st.pipette("p")->mount == runrec::hardware::Mount::kRight);
  CHECK(st.pipette("p")->spec != nullptr);
}

TEST_CASE("tips: pick-up attaches and marks the tip used; drop detaches") {
  Script s = setup();
  s.ok("pickUpTip", {{"pipetteId", "p"}, {"labwareId", "tips"}, {"wellName", "A1"}},
       {{"tipLength", 51.1}, {"tipVolume", 300}, {"position", {{"x", 14.38}, {"y", 74.24}, {"z", 64.69}}}});
  RunState st = fold(s.events);
  REQUIRE(st.pipette("p")->tip);
  CHECK(st.pipette("p")->tip->length == doctest::Approx(51.1));
  CHECK(st.findLabware("tips")->usedTips.count("A1") == 1);
  CHECK(st.pipette("p")->position->x == doctest::Approx(14.38));
  s.ok("dropTip", {{"pipetteId", "p"}, {"labwareId", "tips"}, {"wellName", "A1"}});
  st = fold(s.events);
  CHECK_FALSE(st.pipette("p")->tip);
  CHECK(st.findLabware("tips")->usedTips.count("A1") == 1);  // a returned tip stays used
}

TEST_CASE("liquids: loadLiquid, aspirate, dispense and blowout move volumes by liquid") {
  Script s = setup();
  s.ok("loadLiquid", {{"liquidId", "water"}, {"labwareId", "plate"}, {"volumeByWell", {{"A1", 100}, {"B1", 50}}}});
  s.ok("pickUpTip", {{"pipetteId", "p"}, {"labwareId", "tips"}, {"wellName", "A1"}}, {{"tipLength", 51.1}, {"tipVolume", 300}});
  s.ok("aspirate", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "A1"}, {"volume", 30}}, {{"volume", 30}});
  RunState st = fold(s.events);
  CHECK(total(st.pipette("p")->contents) == doctest::Approx(30));
  CHECK(st.pipette("p")->contents.at("water") == doctest::Approx(30));
  CHECK(st.findLabware("plate")->wells.at("A1").at("water") == doctest::Approx(70));
  s.ok("dispense", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "C1"}, {"volume", 20}}, {{"volume", 20}});
  st = fold(s.events);
  CHECK(st.findLabware("plate")->wells.at("C1").at("water") == doctest::Approx(20));
  CHECK(total(st.pipette("p")->contents) == doctest::Approx(10));
  s.ok("blowout", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "C1"}});
  st = fold(s.events);
  CHECK(total(st.pipette("p")->contents) == doctest::Approx(0));
  CHECK(st.findLabware("plate")->wells.at("C1").at("water") == doctest::Approx(30));
  SUBCASE("aspirating from a well of unknown contents is tracked as unknown liquid") {
    s.ok("aspirate", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "H12"}, {"volume", 5}}, {{"volume", 5}});
    st = fold(s.events);
    CHECK(st.pipette("p")->contents.at("") == doctest::Approx(5));
  }
}

TEST_CASE("a failed command is counted, keeps the state, and records the error") {
  Script s = setup();
  s.failed("aspirate", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "A1"}, {"volume", 30}},
           {{"errorType", "InvalidAction"}, {"message", "no tip"}});
  RunState st = fold(s.events);
  CHECK(st.commandsFailed == 1);
  CHECK(st.commandsSucceeded == 3);
  CHECK((*st.lastError)["errorType"] == "InvalidAction");
  CHECK_FALSE(st.currentCommandId);
}

TEST_CASE("a command that started without an outcome is the current command") {
  Script s = setup();
  s.add(event::kCommandStarted, {{"commandId", "c9"}, {"commandType", "home"}, {"params", json::object()}}, "c9");
  RunState st = fold(s.events);
  REQUIRE(st.currentCommandId);
  CHECK(*st.currentCommandId == "c9");
}

TEST_CASE("home forgets positions; savePosition and module status are recorded") {
  Script s = setup();
  s.ok("moveToWell", {{"pipetteId", "p"}, {"labwareId", "plate"}, {"wellName", "A1"}},
       {{"position", {{"x", 1}, {"y", 2}, {"z", 3}}}});
  CHECK(fold(s.events).pipette("p")->lastLabwareId == "plate");
  s.ok("savePosition", {{"pipetteId", "p"}}, {{"positionId", "here"}, {"position", {{"x", 1}, {"y", 2}, {"z", 3}}}});
  s.ok("home", json::object());
  RunState st = fold(s.events);
  CHECK_FALSE(st.pipette("p")->position);
  CHECK(st.pipette("p")->lastLabwareId.empty());
  CHECK(st.savedPositions.at("here").z == 3);
  s.ok("loadModule", {{"moduleId", "temp"}, {"model", "temperatureModuleV2"}, {"location", {{"slotName", "3"}}}});
  s.ok("temperatureModule/setTargetTemperature", {{"moduleId", "temp"}, {"celsius", 4}},
       {{"moduleStatus", {{"targetCelsius", 4}}}});
  st = fold(s.events);
  CHECK(st.modules.at("temp").status["targetCelsius"] == 4);
}

TEST_CASE("terminal events set the final status; paused/resumed and discards are folded") {
  Script s = setup();
  s.add(event::kRunPaused, json::object());
  CHECK(fold(s.events).status == RunStatus::kPaused);
  s.add(event::kRunResumed, json::object());
  s.add(event::kCommandsDiscarded, {{"count", 3}});
  s.add(event::kRunFinished, {{"status", "stopped"}, {"reason", "user"}});
  RunState st = fold(s.events);
  CHECK(st.status == RunStatus::kStopped);
  CHECK(st.commandsDiscarded == 3);
  CHECK(isTerminal(st.status));
}

TEST_CASE("anomalies are reported, never skipped silently") {
  Script s = setup();
  s.events.push_back({"run", 99, "commandSucceeded", nowTimestamp(), "c77", json::object()});
  s.events.push_back({"run", 100, "somethingNew", nowTimestamp(), "", json::object()});
  std::vector<FoldIssue> issues;
  fold(s.events, &issues);
  REQUIRE(issues.size() == 3);
  CHECK(issues[0].message.find("sequence gap") != std::string::npos);
  CHECK(issues[1].message.find("not the command in progress") != std::string::npos);
  CHECK(issues[2].message.find("unknown event type") != std::string::npos);
}

TEST_CASE("the fold is deterministic: folding twice gives the same state") {
  Script s = setup();
  s.ok("loadLiquid", {{"liquidId", "w"}, {"labwareId", "plate"}, {"volumeByWell", {{"A1", 10}}}});
  CHECK(toJson(fold(s.events)) == toJson(fold(s.events)));
}
