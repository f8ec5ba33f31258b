// Python protocols follow the API level they ask for where Opentrons' motion differs by
// level (touch-tip points), and a stop interrupts a protocol sleeping in time.sleep().
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pipeline_support.hpp"
#include "runrec/runner/python.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;

// `runrec gcode` on a Python protocol (pipette on `mount`, a p300_single_v2.1 on the board);
// returns the G-code, one code per line.
std::vector<std::string> gcodeOf(const std::string& text, const std::string& name, const std::string& mount = "right") {
  auto path = runrec::test::tempDir("pylevels") / name;
  std::ofstream(path) << text;
  auto p = runrec::test::runrec("gcode '" + path.string() + "' --" + mount + " p300_single_v2.1 --post-run stay");
  INFO(p.err);
  REQUIRE(p.exitCode == 0);
  std::vector<std::string> lines;
  std::istringstream in(p.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The moves made at the touch-tip speed (60 mm/s: `G0 F3600.0` before each), as the axes
// each names: "X" for a move along X only, "AX" for the right mount and X, and so on.
std::vector<std::string> touchMoves(const std::vector<std::string>& lines) {
  std::vector<std::string> moves;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != "G0 F3600.0") continue;
    for (std::size_t j = i + 1; j < lines.size(); ++j) {
      if (lines[j].rfind("G0 ", 0) != 0 || lines[j].rfind("G0 F", 0) == 0) continue;
      std::string axes;
      std::istringstream words(lines[j].substr(3));
      for (std::string w; words >> w;) axes += w[0];
      moves.push_back(axes);
      break;
    }
  }
  return moves;
}

std::string touchProtocol(const std::string& level, const std::string& mount, int slot, const std::string& well,
                          const std::string& extra = "") {
  return "metadata = {\"apiLevel\": \"" + level + "\"}\n"
         "def run(ctx):\n"
         "    tips = ctx.load_labware(\"opentrons_96_tiprack_300ul\", 1)\n" +
         extra +
         "    plate = ctx.load_labware(\"corning_96_wellplate_360ul_flat\", " + std::to_string(slot) + ")\n"
         "    p = ctx.load_instrument(\"p300_single_gen2\", \"" + mount + "\", tip_racks=[tips])\n"
         "    p.pick_up_tip()\n"
         "    p.touch_tip(plate[\"" + well + "\"])\n";
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& m : v) s += (s.empty() ? "" : " ") + m;
  return s;
}

}  // namespace

TEST_CASE("PythonTouchTipFollowsTheProtocolsApiLevel") {
  // 2.14 and later: Opentrons' protocol engine: right, left, centre, back, front, centre.
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.14", "right", 2, "A1"), "t214.py"))) == "X X X Y Y Y");
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.20", "right", 2, "A1"), "t220.py"))) == "X X X Y Y Y");
  // 2.4 to 2.13: the legacy build_edges: no return to the centre.
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.13", "right", 2, "A1"), "t213.py"))) == "X X X Y Y");
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.4", "right", 2, "A1"), "t24.py"))) == "X X X Y Y");
  // Before 2.4: no centre at all (left to back is one diagonal move), and the approach is
  // the well's top, so the first edge also goes down by v_offset (A and X together).
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.3", "right", 2, "A1"), "t23.py"))) == "AX X XY Y");
}

TEST_CASE("PythonTouchTipAtApi213LeavesOutTheSideOpentronsLeavesOut") {
  // A left pipette in the last column of labware in slot 3: no right edge (left, centre,
  // back, front); elsewhere in that labware all five.
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.13", "left", 3, "A12"), "l3a12.py", "left"))) == "X X Y Y");
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.13", "left", 3, "A1"), "l3a1.py", "left"))) == "X X X Y Y");
  // A right pipette in the first column, a module left of the labware: no left edge.
  std::string module = "    ctx.load_module(\"temperature module gen2\", 4)\n";
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.13", "right", 5, "A1", module), "r5mod.py"))) == "X X Y Y");
  CHECK(joined(touchMoves(gcodeOf(touchProtocol("2.13", "right", 5, "A2", module), "r5a2.py"))) == "X X X Y Y");
}

TEST_CASE("PythonStopInterruptsAProtocolInTimeSleep") {
  std::atomic<bool> stop{false}, idle{false};
  runrec::runner::PythonRunOptions options;
  options.idlePoll = std::chrono::milliseconds(50);
  options.timeout = std::chrono::seconds(120);
  // Polled only once the run is open and the protocol has made no API call for idlePoll.
  options.stopRequested = [&](const std::string&) {
    idle.store(true);
    return stop.load();
  };
  auto protocol = runrec::runner::parsePythonProtocol(R"(
import time
from time import sleep
metadata = {"apiLevel": "2.13"}
def run(ctx):
    ctx.comment("sleeping")
    time.sleep(0.01)
    sleep(60)
)",
                                                      "sleepy.py");
  REQUIRE_MESSAGE(protocol.has_value(), (protocol ? "" : protocol.error().message));
  runrec::test::InProcessEngine e(runrec::test::tempDir("pysleep") / "log.db", "pysleep");
  auto start = std::chrono::steady_clock::now();
  std::thread helper([&] {
    for (int i = 0; i < 6000 && !idle.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    e.eng->requestStop("test");
    std::this_thread::sleep_for(std::chrono::seconds(1));  // as runrec run: the engine ends the run first
    stop.store(true);
  });
  auto result = runrec::runner::runPythonProtocol(*e.client, *protocol, options);
  helper.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  e.finish();
  CHECK(idle.load());
  CHECK(result->summary.value("status", "") == "stopped");
  // A 60 s sleep, stopped about a second in: it must not have run to its end.
  CHECK(seconds < 30);
}
