// Run control and cleanup: pause holds the runner by backpressure, stop discards what is
// queued, cleanup reads the fold of the committed log and drops tips whatever the moment
// the run ends, and a crash is closed as interrupted with a cleanup from the log.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "pipeline_support.hpp"
#include "runrec/bus/control.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/recorder/report.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "tracking_robot.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/hardware/virtual_smoothie.hpp"

using namespace runrec;
using nlohmann::json;

namespace {

// An engine and a runner thread over inproc, with a control client.
struct LiveRun {
  bus::Context ctx;
  std::unique_ptr<engine::Engine> eng;
  std::unique_ptr<bus::CommandClient> client;
  std::thread runnerThread;
  runner::Result<runner::RunResult> result = tl::unexpected(runner::Error{runner::ErrorCode::kBus, "not run"});
  std::string endpoint, control;
  std::filesystem::path db;

  std::shared_ptr<test::PhysicalTips> tips = std::make_shared<test::PhysicalTips>();

  LiveRun(const json& protocolJson, const std::filesystem::path& dbPath, int hwm = 4, bool autoResume = true,
          long failAtMove = -1, std::unique_ptr<hardware::Robot> inner = std::make_unique<hardware::SimRobot>(),
          std::function<void(long)> onMove = {})
      : db(dbPath) {
    tips->failAtMove = failAtMove;
    tips->onMove = std::move(onMove);
    static int n = 0;
    endpoint = "inproc://life-" + std::to_string(++n);
    engine::EngineOptions eo;
    eo.dbPath = db;
    eo.endpoint = endpoint;
    eo.channel.hwm = hwm;
    eo.maxRuns = 1;
    eo.autoResume = autoResume;
    auto e = engine::Engine::create(ctx, eo, std::make_unique<test::TrackingRobot>(tips, std::move(inner)));
    REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
    eng = std::move(*e);
    control = eng->controlEndpoint();
    REQUIRE(control == endpoint + ".control");
    eng->start();
    auto c = bus::CommandClient::connect(ctx, endpoint, eo.channel);
    REQUIRE(c.has_value());
    client = std::move(*c);
    auto protocol = runner::parseProtocol(protocolJson.dump(), "life.json");
    REQUIRE(protocol.has_value());
    runnerThread = std::thread([this, p = *protocol] { result = runner::runProtocol(*client, p); });
  }
  json ask(const std::string& action) {
    auto a = bus::controlRequest(ctx, control, {{"action", action}, {"requestedBy", "test"}});
    REQUIRE_MESSAGE(a.has_value(), (a ? "" : a.error().message));
    return *a;
  }
  json finish() {
    runnerThread.join();
    REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
    client.reset();
    REQUIRE(eng->wait());
    eng.reset();
    auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
    REQUIRE(log);
    auto d = recorder::runDetail(**log, result->runId, true);
    REQUIRE(d);
    auto ev = (*log)->events(result->runId);
    REQUIRE(ev);
    events = *ev;
    return *d;
  }
  std::vector<engine::Event> events;
};

// A protocol that keeps picking up and dropping tips: stop it anywhere and a tip may be on.
json tipChurn(int cycles) {
  json p = runner::makeSeedProtocol(0);
  json drop = p["commands"].back();
  p["commands"].erase(p["commands"].size() - 1);
  p["commands"].erase(p["commands"].size() - 1);  // the seed's pick-up
  const char* rows = "ABCDEFGH";
  for (int i = 0; i < cycles; ++i) {
    std::string well = std::string(1, rows[i % 8]) + std::to_string(i / 8 + 1);
    p["commands"].push_back({{"commandType", "pickUpTip"},
                             {"params", {{"pipetteId", "pipette"}, {"labwareId", "tiprack"}, {"wellName", well}}}});
    for (int k = 0; k < 3; ++k)
      p["commands"].push_back({{"commandType", "touchTip"},
                               {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", "H12"}}}});
    p["commands"].push_back({{"commandType", "dropTip"},
                             {"params", {{"pipetteId", "pipette"}, {"labwareId", "fixedTrash"}, {"wellName", "A1"}}}});
  }
  return p;
}

// Checks the cleanup invariants on a finished run's events.
void checkCleanup(const std::vector<engine::Event>& events) {
  std::int64_t cleanupAt = 0;
  for (auto& e : events)
    if (e.type == "cleanupStarted") cleanupAt = e.seq;
  REQUIRE(cleanupAt > 0);
  // Every command started before cleanup has its outcome before cleanup.
  std::set<std::string> open;
  for (auto& e : events) {
    if (e.seq >= cleanupAt) break;
    if (e.type == "commandStarted") open.insert(e.commandId);
    if (e.type == "commandSucceeded" || e.type == "commandFailed") open.erase(e.commandId);
  }
  CHECK(open.empty());
  // The fold of everything before cleanup says whether a tip is on; cleanup drops exactly then.
  std::vector<engine::Event> before(events.begin(), events.begin() + (cleanupAt - 1));
  engine::RunState s = engine::fold(before);
  // A tip is on, or may be (a tip command failed part-way): cleanup must drop either way.
  bool tipOn = s.pipette("pipette") && (s.pipette("pipette")->tip.has_value() || s.pipette("pipette")->tipUnknown);
  int drops = 0;
  for (auto& e : events)
    if (e.seq > cleanupAt && e.type == "commandStarted" && e.payload["intent"] == "cleanup" &&
        e.payload["commandType"] == "dropTip")
      drops++;
  CHECK(drops == (tipOn ? 1 : 0));
  CHECK(events.back().type == "runFinished");
  engine::RunState end = engine::fold(events);
  if (end.pipette("pipette")) CHECK_FALSE(end.pipette("pipette")->tip.has_value());
}

}  // namespace

TEST_CASE("pause holds the runner at the window; resume finishes; both are recorded with who asked") {
  auto dir = test::tempDir("pause");
  LiveRun run(runner::makeSeedProtocol(3000), dir / "runs.db", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  json answer = run.ask("pause");
  CHECK(answer["ok"] == true);
  // While paused no command starts, and the runner is blocked with N in flight.
  auto startedNow = [&] { return run.ask("status")["run"]["counts"]["started"].get<long>(); };
  long s1 = startedNow();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(startedNow() == s1);
  CHECK(run.ask("status")["run"]["paused"] == true);
  CHECK(run.ask("resume")["ok"] == true);
  json d = run.finish();
  CHECK(d["status"] == "succeeded");
  CHECK(d["counts"]["succeeded"] == 3005);
  int paused = 0, resumed = 0;
  for (auto& e : run.events) {
    if (e.type == "runPaused" && e.payload["requestedBy"] == "test") paused++;
    if (e.type == "runResumed" && e.payload["requestedBy"] == "test") resumed++;
  }
  CHECK(paused == 1);
  CHECK(resumed == 1);
  CHECK(run.result->maxInFlight <= 4);
  checkCleanup(run.events);
  // The same as a run never paused: same commands, results and final state.
  auto plain = test::runInProcess(runner::makeSeedProtocol(3000), dir / "plain.db", 4);
  json a = d["state"], b = plain.detail["state"];
  a.erase("runId");
  b.erase("runId");
  a.erase("lastSeq");  // the paused run has two more events (runPaused, runResumed)
  b.erase("lastSeq");
  CHECK(a == b);
  REQUIRE(d["commands"].size() == plain.detail["commands"].size());
  for (size_t i = 0; i < d["commands"].size(); ++i) {
    REQUIRE(d["commands"][i]["params"] == plain.detail["commands"][i]["params"]);
    REQUIRE(d["commands"][i]["result"] == plain.detail["commands"][i]["result"]);
  }
}

TEST_CASE("stop ends the run stopped: queued commands are discarded (at most N) and cleanup drops the tip") {
  auto dir = test::tempDir("stop");
  LiveRun run(runner::makeSeedProtocol(20000), dir / "runs.db", 8);
  // Stop once the tip is on (the pick-up is among the first five commands), however fast
  // the build is.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    json s = run.ask("status");
    if (s["run"].is_object() && s["run"]["counts"]["started"].get<long>() > 10) break;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(run.ask("stop")["ok"] == true);
  json d = run.finish();
  CHECK(d["status"] == "stopped");
  CHECK(d["reason"].get<std::string>().find("test") != std::string::npos);
  CHECK(d["counts"]["discarded"].get<int>() <= 8);
  CHECK(d["counts"]["succeeded"].get<int>() < 20005);
  CHECK(d["counts"]["cleanup"] == 2);  // drop the tip, home
  // Stop, cleanup plan and terminal event, in that order.
  bool sawStop = false;
  for (auto& e : run.events)
    if (e.type == "runStopRequested") {
      sawStop = true;
      CHECK(e.payload["requestedBy"] == "test");
    }
  CHECK(sawStop);
  checkCleanup(run.events);
  CHECK(d["state"]["pipettes"]["pipette"]["tip"].is_null());
}

TEST_CASE("a failed command still gets cleanup from the folded state") {
  auto dir = test::tempDir("failclean");
  json p = runner::makeSeedProtocol(50);
  p["commands"].insert(p["commands"].begin() + 10,
                       json{{"commandType", "aspirate"},
                            {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", "A1"},
                                        {"volume", 1000}, {"flowRate", 50}}}});
  LiveRun run(p, dir / "runs.db", 4);
  json d = run.finish();
  CHECK(d["status"] == "failed");
  checkCleanup(run.events);
}

// Runs in the default tier; RUNREC_SLOW=1 (ctest -L slow) runs the slow tier. Sanitizer
// builds (CI) run two fifths of the default tier: the checks are proportions of the runs.
int tier(int dflt, int slow) {
  const char* e = std::getenv("RUNREC_SLOW");
  return e && std::string(e) == "1" ? slow : test::rounds(dflt, dflt * 2 / 5);
}

// The seed's race, as a proof: whatever moment a run ends at, the tips cleanup drops are
// exactly the tips the robot physically carried (tracked by the robot, not the engine).
void checkPhysical(const LiveRun& run) {
  CHECK(run.tips->carried[0] == 0);          // nothing left on the robot
  CHECK(run.tips->carried[1] == 0);
  CHECK(run.tips->uncertain[0] == 0);        // and no doubt left either
  CHECK(run.tips->uncertain[1] == 0);
  CHECK(run.tips->dropsWithoutTip == 0);     // no drop of a tip that was not there
  int terminal = 0;
  for (auto& e : run.events) terminal += e.type == "runFinished";
  CHECK(terminal == 1);
  CHECK(run.events.back().type == "runFinished");
}

// A stop handed from the engine's thread to the test's at move `at`: the robot waits inside
// that move while the test asks the engine to stop, so the stop lands during the command
// that makes the move, however fast or slow the build is.
struct StopAtMove {
  explicit StopAtMove(long move) : at(move) {}
  const long at;
  std::mutex m;
  std::condition_variable cv;
  bool reached = false, go = false;
  void onMove(long n) {  // the engine's thread
    if (n != at) return;
    std::unique_lock lk(m);
    reached = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(60), [&] { return go; });
  }
  bool waitReached() {
    std::unique_lock lk(m);
    return cv.wait_for(lk, std::chrono::seconds(60), [&] { return reached; });
  }
  void release() {
    std::lock_guard lk(m);
    go = true;
    cv.notify_all();
  }
};

// The moments are robot moves, not clock time, so the proof is the same at any speed (the
// ASan build is several times slower): a calibration run counts the moves of the whole
// protocol, then each run is stopped at a random move K of it, either
//   - from inside move K (even runs): the robot waits there while another thread calls
//     Engine::requestStop (what Ctrl-C on `runrec run` does); the stop lands exactly during
//     the command making move K; or
//   - over the control socket (odd runs) once the robot has made K moves, while the engine
//     goes on: the stop lands at move K or later, as a real operator's would.
TEST_CASE("stopped at random moments with the bus full, cleanup drops exactly the tips the robot carried") {
  auto dir = test::tempDir("race");
  long protocolMoves = 0;
  {
    LiveRun full(tipChurn(40), dir / "full.db");
    json d = full.finish();
    REQUIRE(d["status"] == "succeeded");
    protocolMoves = full.tips->moves.load();
    checkPhysical(full);
  }
  REQUIRE(protocolMoves > 200);
  std::mt19937 rng(12345);
  int runs = tier(50, 500), stoppedWithTip = 0, stoppedExactly = 0;
  for (int i = 0; i < runs; ++i) {
    long stopAt = 1 + static_cast<long>(rng() % static_cast<unsigned long>(protocolMoves));
    bool fromInside = i % 2 == 0;
    int hwm = 1 + static_cast<int>(rng() % 4);
    CAPTURE(i);
    CAPTURE(stopAt);
    CAPTURE(fromInside);
    bool stopAnswered = true;
    auto gate = std::make_shared<StopAtMove>(fromInside ? stopAt : -1);
    LiveRun run(tipChurn(40), dir / ("runs-" + std::to_string(i) + ".db"), hwm, true, -1,
                std::make_unique<hardware::SimRobot>(), [gate](long n) { gate->onMove(n); });
    if (fromInside) {
      bool reached = gate->waitReached();
      if (reached) CHECK(run.eng->requestStop("test"));
      gate->release();
      REQUIRE(reached);
    } else {
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (run.tips->moves.load() < stopAt && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      REQUIRE(run.tips->moves.load() >= stopAt);
      // Near the end the run may finish (and the engine, serving one run, exit) before the
      // request arrives: then nobody answers, and the run must have succeeded.
      auto a = bus::controlRequest(run.ctx, run.control, {{"action", "stop"}, {"requestedBy", "test"}});
      stopAnswered = a.has_value();
    }
    json d = run.finish();
    if (!stopAnswered) CHECK(d["status"] == "succeeded");
    if (fromInside) {
      // Stopped during the command making move K: no protocol command started after it.
      REQUIRE(d["status"] == "stopped");
      std::int64_t stopSeq = 0, lastProtocolStart = 0;
      for (auto& e : run.events) {
        if (e.type == "runStopRequested") stopSeq = e.seq;
        if (e.type == "commandStarted" && e.payload["intent"] == "protocol") lastProtocolStart = e.seq;
      }
      CHECK(stopSeq > lastProtocolStart);
      stoppedExactly++;
    } else {
      CHECK((d["status"] == "stopped" || d["status"] == "succeeded"));
    }
    checkCleanup(run.events);
    checkPhysical(run);
    if (d["status"] == "stopped" && d["counts"]["cleanup"] == 2) stoppedWithTip++;
    std::filesystem::remove(run.db);
  }
  MESSAGE("random stops: " << runs << " runs of " << protocolMoves << " moves, " << stoppedExactly
                           << " stopped from inside a move, " << stoppedWithTip << " stopped with a tip on");
  // The proof means something only if many runs were cut off with a tip on.
  CHECK(stoppedWithTip > runs / 4);
}

TEST_CASE("hardware failures at random moves: the run fails cleanly and cleanup drops the carried tip") {
  auto dir = test::tempDir("hwfail");
  std::mt19937 rng(777);
  int runs = tier(30, 300), failed = 0;
  for (int i = 0; i < runs; ++i) {
    long failAt = 1 + static_cast<long>(rng() % 600);
    CAPTURE(failAt);
    LiveRun run(tipChurn(40), dir / ("runs-" + std::to_string(i) + ".db"), 2, true, failAt);
    json d = run.finish();
    if (run.tips->moves >= failAt) {
      CHECK(d["status"] == "failed");
      CHECK(d["error"]["errorType"] == "Hardware");
      CHECK(d["error"]["message"].get<std::string>().find("ALARM") != std::string::npos);
      failed++;
    }
    checkCleanup(run.events);
    checkPhysical(run);
    std::filesystem::remove(run.db);
  }
  CHECK(failed > runs / 3);
}

TEST_CASE("faults injected by the virtual Smoothie at random moves: failed cleanly, tips accounted for") {
  auto dir = test::tempDir("vsfail");
  std::mt19937 rng(99);
  int runs = tier(20, 200), failed = 0;
  const char* kinds[] = {"alarm", "error", "garbage"};
  for (int i = 0; i < runs; ++i) {
    std::string fault = std::string(kinds[i % 3]) + "@" + std::to_string(1 + rng() % 900);
    CAPTURE(fault);
    hardware::VirtualSmoothieOptions board;
    auto parsed = hardware::parseSmoothieFault(fault);
    REQUIRE(parsed.has_value());
    board.faults.push_back(*parsed);
    LiveRun run(tipChurn(40), dir / ("runs-" + std::to_string(i) + ".db"), 2, true, -1,
                hardware::makeSimulatedSmoothieRobot(board));
    json d = run.finish();
    if (d["status"] == "failed") {
      CHECK(d["error"]["errorType"] == "Hardware");
      failed++;
    } else {
      CHECK(d["status"] == "succeeded");
    }
    checkCleanup(run.events);
    checkPhysical(run);
    std::filesystem::remove(run.db);
  }
  CHECK(failed > runs / 4);
}

TEST_CASE("waitForResume pauses until resumed when the engine waits for an operator") {
  auto dir = test::tempDir("wait");
  json p = runner::makeSeedProtocol(10);
  p["commands"].insert(p["commands"].begin() + 5, json{{"commandType", "waitForResume"}, {"params", {{"message", "add reagent"}}}});
  LiveRun run(p, dir / "runs.db", 4, /*autoResume=*/false);
  for (int i = 0; i < 200 && run.ask("status")["run"]["paused"] != true; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  json st = run.ask("status")["run"];
  CHECK(st["paused"] == true);
  CHECK(st["counts"]["succeeded"] == 6);
  run.ask("resume");
  json d = run.finish();
  CHECK(d["status"] == "succeeded");
  bool pausedByProtocol = false;
  for (auto& e : run.events)
    if (e.type == "runPaused" && e.payload["requestedBy"] == "protocol" && e.payload["message"] == "add reagent")
      pausedByProtocol = true;
  CHECK(pausedByProtocol);
}

TEST_CASE("a run cut off mid pick-up is closed as interrupted, homing and dropping the maybe-tip") {
  auto dir = test::tempDir("recover");
  auto db = dir / "runs.db";
  {
    // A real run, then append by hand what a crash during a pick-up leaves: a start, no outcome.
    auto run = test::runInProcess(runner::makeSeedProtocol(2), db);
    auto log = engine::EventLog::open(db);
    REQUIRE(log);
    auto& l = **log;
    REQUIRE(l.begin());
    REQUIRE(l.createRun({"cut-off", engine::nowTimestamp(), "p", run.detail["protocolName"].get<std::string>() == "" ? "x" : "sha", "sim"}, "p.json", "{}"));
    auto events = l.events(run.result.runId);
    REQUIRE(events);
    // Replay the first 10 events (created .. load commands) under the new run id.
    std::int64_t seq = 0;
    for (auto& e : *events) {
      if (e.type == "runFinished" || e.type == "cleanupStarted") break;
      if (e.payload.value("commandType", "") == "pickUpTip" && e.type == "commandStarted") {
        REQUIRE(l.append({"cut-off", ++seq, e.type, engine::nowTimestamp(), e.commandId, e.payload}));
        break;
      }
      REQUIRE(l.append({"cut-off", ++seq, e.type, engine::nowTimestamp(), e.commandId, e.payload}));
    }
    REQUIRE(l.commit());
  }
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://recover-test";
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE_MESSAGE(eng.has_value(), (eng ? "" : eng.error().message));
  REQUIRE((*eng)->recoveredRuns() == std::vector<std::string>{"cut-off"});
  eng->reset();
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  auto events = (*log)->events("cut-off");
  REQUIRE(events);
  std::vector<std::string> cleanupTypes;
  json plan;
  for (auto& e : *events) {
    if (e.type == "cleanupStarted") plan = e.payload;
    if (e.type == "commandStarted" && e.payload["intent"] == "cleanup") cleanupTypes.push_back(e.payload["commandType"]);
  }
  CHECK(plan["homeFirst"] == true);
  REQUIRE(plan["assumptions"].size() >= 1);
  CHECK(plan["assumptions"][0].get<std::string>().find("may have a tip attached") != std::string::npos);
  CHECK(cleanupTypes == std::vector<std::string>{"home", "dropTip", "home"});
  CHECK(events->back().type == "runFinished");
  CHECK(events->back().payload["status"] == "interrupted");
  CHECK(events->back().payload["commandInProgress"].is_string());
}
