// The fold that takes payloads (apply(state, Event&&), the engine's hot path and cleanup's
// re-fold) derives exactly what the copying fold derives, anomalies included.
#include <doctest/doctest.h>

#include "runrec/engine/state.hpp"
#include "runrec/hardware/labware.hpp"

using namespace runrec::engine;
using nlohmann::json;

TEST_CASE("folding with apply(state, Event&&) derives the same state as apply(state, const Event&)") {
  json tiprack, plate;
  for (auto& d : runrec::hardware::LabwareLibrary::builtIns()) {
    if (d->loadName == "opentrons_96_tiprack_300ul") tiprack = d->raw;
    if (d->loadName == "biorad_96_wellplate_200ul_pcr") plate = d->raw;
  }
  REQUIRE(tiprack.is_object());
  REQUIRE(plate.is_object());
  std::vector<Event> events;
  auto add = [&](const std::string& type, json payload, const std::string& id = "") {
    events.push_back({"run", static_cast<std::int64_t>(events.size() + 1), type, nowTimestamp(), id, payload});
  };
  int n = 0;
  auto command = [&](const std::string& type, json params, json result, bool ok = true) {
    std::string id = "c" + std::to_string(++n);
    add(event::kCommandStarted, {{"commandId", id}, {"index", n}, {"commandType", type}, {"params", params},
                                 {"intent", "protocol"}}, id);
    if (ok)
      add(event::kCommandSucceeded, {{"commandId", id}, {"result", result}}, id);
    else
      add(event::kCommandFailed, {{"commandId", id}, {"error", result}}, id);
  };
  add(event::kRunCreated, {{"protocol", {{"name", "p"}}}, {"liquids", {{"water", {{"displayName", "W"}}}}}});
  add(event::kRunStarted, json::object());
  command("loadPipette", {{"pipetteId", "p"}, {"pipetteName", "p300_single_gen2"}, {"mount", "right"}},
          {{"pipetteId", "p"}, {"model", "p300_single_v2.1"}});
  command("loadLabware", {{"labwareId", "t"}, {"location", {{"slotName", "1"}}}},
          {{"labwareId", "t"}, {"definition", tiprack}, {"origin", {{"x", 0}, {"y", 0}, {"z", 0}}}});
  command("loadLabware", {{"labwareId", "w"}, {"location", {{"slotName", "2"}}}},
          {{"labwareId", "w"}, {"definition", plate}, {"origin", {{"x", 132.5}, {"y", 0}, {"z", 0}}}});
  command("loadLiquid", {{"liquidId", "water"}, {"labwareId", "w"}, {"volumeByWell", {{"A1", 150}}}}, json::object());
  json pos = {{"x", 1}, {"y", 2}, {"z", 3}};
  command("pickUpTip", {{"pipetteId", "p"}, {"labwareId", "t"}, {"wellName", "A1"}},
          {{"tipLength", 50}, {"tipVolume", 300}, {"position", pos}});
  command("aspirate", {{"pipetteId", "p"}, {"labwareId", "w"}, {"wellName", "A1"}, {"volume", 40}},
          {{"volume", 40}, {"position", pos}});
  command("touchTip", {{"pipetteId", "p"}, {"labwareId", "w"}, {"wellName", "H12"}}, {{"position", pos}});
  command("dispense", {{"pipetteId", "p"}, {"labwareId", "w"}, {"wellName", "B1"}, {"volume", 15}},
          {{"volume", 15}, {"position", pos}});
  command("moveToCoordinates", {{"pipetteId", "p"}, {"coordinates", pos}}, {{"position", pos}});
  command("savePosition", {{"pipetteId", "p"}, {"positionId", "here"}}, {{"positionId", "here"}, {"position", pos}});
  command("dropTip", {{"pipetteId", "p"}, {"labwareId", "t"}, {"wellName", "A1"}},
          {{"errorType", "Hardware"}, {"message", "jam"}, {"tipStateUnknown", true}}, false);
  add(event::kRunPaused, {{"requestedBy", "x"}});
  add(event::kRunResumed, {{"requestedBy", "x"}});
  add(event::kCleanupStarted, {{"reason", "run failed"}});
  command("home", json::object(), json::object());
  add("noSuchEvent", json::object());
  add(event::kRunFinished, {{"status", "failed"}, {"reason", "command failed"}});

  std::vector<FoldIssue> copiedIssues, movedIssues;
  RunState copied = fold(events, &copiedIssues);
  RunState moved;
  std::vector<Event> consumed = events;
  for (auto& e : consumed) apply(moved, std::move(e), &movedIssues);
  CHECK(toJson(moved) == toJson(copied));
  CHECK(moved.lastError == copied.lastError);
  CHECK(moved.savedPositions.size() == 1);
  CHECK(copied.pipettes.at("p").tipUnknown);
  REQUIRE(movedIssues.size() == copiedIssues.size());
  REQUIRE(copiedIssues.size() == 1);  // the unknown event type, reported either way
  CHECK(movedIssues[0].message == copiedIssues[0].message);
  // A started command's payload is taken, not copied, when the event is given up.
  RunState s;
  Event started{"run", 1, event::kCommandStarted, nowTimestamp(), "c1",
                {{"commandId", "c1"}, {"commandType", "comment"}, {"params", {{"message", "hi"}}}}};
  apply(s, std::move(started));
  CHECK(s.currentCommand["params"]["message"] == "hi");
  CHECK(started.payload.is_null());
}
