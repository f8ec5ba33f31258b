// Python protocols end to end: the embedded interpreter runs the protocol's run(), its API
// calls go over the bus to a real engine, and the log shows what happened.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "pipeline_support.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/runner/python.hpp"
#include "support.hpp"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct PyRun {
  runrec::runner::RunResult result;
  fs::path db;
};

// Runs Python protocol text through runner -> inproc bus -> engine (SimRobot).
PyRun runPython(const std::string& text, const std::string& name, int hwm = 16,
                runrec::runner::PythonRunOptions options = {},
                std::function<void(runrec::engine::Engine&)> during = nullptr) {
  auto protocol = runrec::runner::parsePythonProtocol(text, name);
  REQUIRE_MESSAGE(protocol.has_value(), (protocol ? "" : protocol.error().message));
  auto db = runrec::test::tempDir("python") / "log.db";
  runrec::test::InProcessEngine e(db, "py", hwm);
  options.timeout = std::chrono::seconds(120);
  std::thread helper;
  if (during) helper = std::thread([&] { during(*e.eng); });
  auto result = runrec::runner::runPythonProtocol(*e.client, *protocol, options);
  if (helper.joinable()) helper.join();
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  e.finish();
  return {*result, db};
}

// One integer from the log.
long long scalar(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK, sqlite3_errmsg(h));
  long long v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

std::string errorMessage(const json& summary) {
  return summary.contains("error") && summary["error"].is_object() ? summary["error"].value("message", "") : "";
}

// The seed's protocol from the PR page, exactly as written there. The page lost the
// indentation: the body of run() is re-indented (4 spaces, 8 for the loop body), nothing else.
std::optional<std::string> seedProtocol(const std::string& apiLevel) {
  auto shared = runrec::test::requireShared();
  if (!shared) return std::nullopt;
  std::string page = runrec::test::readText(*shared / ".." / "context" / "seed-opentrons-pr-16098.txt");
  auto start = page.find("requirements = {");
  auto end = page.find("pipette.return_tip()", start);
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  std::string raw = page.substr(start, end + std::string("pipette.return_tip()").size() - start);
  std::istringstream in(raw);
  std::string line, out;
  int indent = 0;
  bool loopBody = false;
  while (std::getline(in, line)) {
    if (line.rfind("def run", 0) == 0) {
      out += line + "\n";
      indent = 4;
      continue;
    }
    out += std::string(indent + (loopBody ? 4 : 0), ' ') + line + "\n";
    loopBody = line.rfind("for ", 0) == 0;
  }
  if (apiLevel != "2.13") out = std::regex_replace(out, std::regex("\"2\\.13\""), "\"" + apiLevel + "\"");
  return out;
}

void checkSeed(const std::string& level) {
  auto text = seedProtocol(level);
  if (!text) return;
  REQUIRE(text->find("for _ in range(10000):\n        pipette.touch_tip(well_plate[\"H12\"])") != std::string::npos);
  auto run = runPython(*text, "seed.py");
  INFO(run.result.summary.dump());
  CHECK(run.result.succeeded());
  std::string id = run.result.runId;
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id +
                           "' AND command_type='touchTip' AND status='succeeded'") == 10000);
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id + "' AND command_type='pickUpTip'") == 1);
  // return_tip: the tip goes back to A1 of the rack it came from.
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id +
                           "' AND command_type='dropTip' AND intent='protocol'") == 1);
  CHECK(run.result.maxInFlight <= 16);
}

}  // namespace

TEST_CASE("PythonSeedProtocolAtApi213Records10000TouchTips") { checkSeed("2.13"); }

TEST_CASE("PythonSeedProtocolAtApi219Records10000TouchTips") { checkSeed("2.19"); }

TEST_CASE("PythonProtocolReadsBackStateConsistentWithWhatItSent") {
  auto run = runPython(R"(
from opentrons import protocol_api, types
metadata = {"apiLevel": "2.13", "protocolName": "readback"}
def run(ctx: protocol_api.ProtocolContext):
    rack = ctx.load_labware("opentrons_96_tiprack_300ul", 1)
    plate = ctx.load_labware("corning_96_wellplate_360ul_flat", 2)
    p = ctx.load_instrument("p300_single_gen2", types.Mount.RIGHT, tip_racks=[rack])
    assert not p.has_tip and p.current_volume == 0
    assert p.max_volume == 300, p.max_volume
    p.pick_up_tip()
    assert p.has_tip and not rack["A1"].has_tip and rack["B1"].has_tip
    p.aspirate(100, plate["A1"])
    assert p.current_volume == 100
    p.dispense(40, plate["B1"].bottom(2))
    assert p.current_volume == 60
    p.blow_out(plate["B1"].top())
    assert p.current_volume == 0
    p.drop_tip()
    assert not p.has_tip
    p.transfer(50, plate["A1"], [plate.wells_by_name()[w] for w in ("C1", "D1")], new_tip="always")
    assert not rack["B1"].has_tip and not rack["C1"].has_tip and rack["D1"].has_tip
    assert [w.well_name for w in plate.rows()[0][:3]] == ["A1", "A2", "A3"]
    assert [w.well_name for w in plate.columns_by_name()["2"][:2]] == ["A2", "B2"]
    assert plate["H12"] is plate.wells()[-1]
    ctx.comment("done")
)",
                       "readback.py");
  INFO(run.result.summary.dump());
  CHECK(run.result.succeeded());
  std::string id = run.result.runId;
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id + "' AND command_type='pickUpTip'") == 3);
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id + "' AND command_type='aspirate'") == 3);
  CHECK(scalar(run.db, "SELECT count(*) FROM commands WHERE run_id='" + id + "' AND command_type='comment'") == 1);
}

TEST_CASE("PythonExceptionFailsTheRunWithItsTracebackInTheLog") {
  auto run = runPython(R"(
metadata = {"apiLevel": "2.13"}
def helper():
    return 1 / 0
def run(ctx):
    ctx.home()
    helper()
)",
                       "boom.py");
  CHECK(run.result.summary.value("status", "") == "failed");
  std::string msg = errorMessage(run.result.summary);
  CHECK(msg.find("ZeroDivisionError") != std::string::npos);
  CHECK(msg.find("line 4") != std::string::npos);  // the innermost line of the protocol file
  CHECK(scalar(run.db, "SELECT count(*) FROM events WHERE run_id='" + run.result.runId +
                           "' AND type='runFinished' AND payload LIKE '%Traceback%line 4, in helper%'") == 1);
}

TEST_CASE("PythonSysExitFailsTheRun") {
  auto run = runPython("metadata = {'apiLevel': '2.13'}\nimport sys\ndef run(ctx):\n    sys.exit(3)\n", "exit.py");
  CHECK(run.result.summary.value("status", "") == "failed");
  CHECK(errorMessage(run.result.summary).find("sys.exit(3)") != std::string::npos);
}

TEST_CASE("PythonFailedCommandRaisesInTheProtocolNamingTheCommand") {
  // hwm 1: the runner waits for each outcome before the next send, so the failure of
  // command 4 (aspirate without a tip, sent directly to skip the API's own check) is
  // raised at the very next API call.
  auto run = runPython(R"(
import _runrec, json
metadata = {"apiLevel": "2.13"}
seen = []
def run(ctx):
    plate = ctx.load_labware("corning_96_wellplate_360ul_flat", 2)
    p = ctx.load_instrument("p300_single_gen2", "left")
    _runrec.send("aspirate", json.dumps({"pipetteId": p._id, "labwareId": plate._id, "wellName": "A1", "volume": 10}))
    try:
        ctx.comment("after")
    except Exception as e:
        seen.append(str(e))
        raise
)",
                       "fail.py", 1);
  CHECK(run.result.summary.value("status", "") == "failed");
  std::string msg = errorMessage(run.result.summary);
  CHECK(msg.find("no tip") != std::string::npos);
}

TEST_CASE("PythonUnknownLabwarePipetteAndUnimplementedCallsNameThemselves") {
  auto lab = runPython("metadata={'apiLevel':'2.13'}\ndef run(ctx):\n    ctx.load_labware('corning_96_wellplate_360ul_flt', 2)\n",
                       "lab.py");
  CHECK(errorMessage(lab.result.summary).find("unknown labware 'corning_96_wellplate_360ul_flt'") != std::string::npos);
  CHECK(errorMessage(lab.result.summary).find("did you mean 'corning_96_wellplate_360ul_flat'") != std::string::npos);
  auto pip = runPython("metadata={'apiLevel':'2.13'}\ndef run(ctx):\n    ctx.load_instrument('p400_single', 'left')\n", "pip.py");
  CHECK(errorMessage(pip.result.summary).find("unknown pipette 'p400_single'") != std::string::npos);
  auto un = runPython("metadata={'apiLevel':'2.13'}\ndef run(ctx):\n    ctx.load_trash_bin('A3')\n", "un.py");
  CHECK(errorMessage(un.result.summary).find("ProtocolContext.load_trash_bin is not implemented") != std::string::npos);
}

TEST_CASE("PythonStopInterruptsAProtocolBusyInItsOwnLoop") {
  std::atomic<bool> stop{false}, spinning{false};
  runrec::runner::PythonRunOptions options;
  options.idlePoll = std::chrono::milliseconds(50);
  // Polled only once the run is open and the protocol has made no API call for idlePoll.
  options.stopRequested = [&](const std::string&) {
    spinning.store(true);
    return stop.load();
  };
  auto run = runPython(R"(
metadata = {"apiLevel": "2.13"}
def run(ctx):
    ctx.comment("spinning")
    while True:
        pass
)",
                       "spin.py", 16, options, [&](runrec::engine::Engine& e) {
                         // Stop once the protocol spins in its loop, not after a fixed delay: the
                         // engine drops a stop that comes before the run is open, and under ASan
                         // starting the interpreter alone can outlast any such delay.
                         for (int i = 0; i < 6000 && !spinning.load(); ++i)
                           std::this_thread::sleep_for(std::chrono::milliseconds(10));
                         CHECK(spinning.load());
                         e.requestStop("test");
                         // As `runrec run` does: interrupt the protocol only after the engine
                         // has ended the run (here: given it a second to do so), so the runner's
                         // "protocol interrupted" end cannot overtake the stop.
                         std::this_thread::sleep_for(std::chrono::seconds(1));
                         stop.store(true);
                       });
  CHECK(run.result.summary.value("status", "") == "stopped");
}
