// Serial faults at random: the virtual Smoothie answers error, ALARM or garbage, drops a
// reply, goes silent, or disconnects mid-reply, at a random move of a run, across many
// runs. Every run must end in bounded time with the error recorded (or recover, for a
// dropped reply the driver re-sends), cleanup attempted, and no event lost.
// RUNREC_SLOW=1 runs ten times as many.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "runrec/engine/engine.hpp"
#include "runrec/engine/state.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"

using namespace runrec;
using nlohmann::json;

namespace {

// The OT-2 driver on an in-process virtual board, with short timeouts so that silence
// costs milliseconds, not the real 5 s per attempt.
std::unique_ptr<hardware::Robot> boardRobot(std::shared_ptr<hardware::VirtualSmoothie> board) {
  hardware::SmoothieDriverOptions d;
  d.ackTimeout = std::chrono::milliseconds(20);
  d.homeTimeout = std::chrono::milliseconds(40);
  d.retries = 1;
  auto driver = std::make_unique<hardware::SmoothieDriver>(hardware::makeLoopbackPort(*board), d);
  hardware::SmoothieRobotOptions o;
  o.verifyInstruments = false;
  o.name = "virtual smoothie";
  o.board = std::move(board);
  return std::make_unique<hardware::SmoothieRobot>(std::move(driver), o);
}

struct Outcome {
  std::string status;
  json error;
  double seconds = 0;
  std::vector<engine::Event> events;
  std::size_t foldIssues = 0;
  long moves = 0;  // motion lines the board saw
};

Outcome runOnBoard(const std::filesystem::path& db, const runner::Protocol& protocol,
                   std::vector<hardware::SmoothieFault> faults) {
  static int counter = 0;
  hardware::VirtualSmoothieOptions bo;
  bo.faults = std::move(faults);
  auto board = std::make_shared<hardware::VirtualSmoothie>(bo);
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://serial-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  eo.maxRuns = 1;
  eo.controlEndpoint = "none";
  auto t0 = std::chrono::steady_clock::now();
  auto eng = engine::Engine::create(ctx, eo, boardRobot(board));
  REQUIRE(eng.has_value());
  (*eng)->start();
  Outcome out;
  {
    auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
    REQUIRE(client.has_value());
    runner::RunOptions ro;
    ro.timeout = std::chrono::seconds(30);
    auto result = runner::runProtocol(**client, protocol, ro);
    REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  }
  REQUIRE((*eng)->wait());
  eng->reset();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.moves = board->moves();
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(log.has_value());
  auto runs = (*log)->runs();
  REQUIRE(runs.has_value());
  REQUIRE(runs->size() == 1);
  auto events = (*log)->events(runs->front().runId);
  REQUIRE(events.has_value());
  out.events = *events;
  std::vector<engine::FoldIssue> issues;
  (void)engine::fold(out.events, &issues);
  out.foldIssues = issues.size();
  REQUIRE(!out.events.empty());
  out.status = out.events.back().payload.value("status", "");
  out.error = out.events.back().payload.value("error", json());
  return out;
}

}  // namespace

TEST_CASE("serial faults at random moves: every run ends in bounded time, error recorded, cleanup attempted, nothing lost") {
  auto dir = test::tempDir("serial");
  auto protocol = runner::parseProtocol(runner::makeSeedProtocol(12).dump(), "seed.json");
  REQUIRE(protocol.has_value());
  auto clean = runOnBoard(dir / "clean.db", *protocol, {});
  REQUIRE(clean.status == "succeeded");
  REQUIRE(clean.moves > 10);

  const char* kinds[] = {"error", "alarm", "garbage", "drop", "silent", "disconnect"};
  std::mt19937 rng(0x5e71a1);
  int runs = std::getenv("RUNREC_SLOW") ? 300 : 18;
  int failedWithError = 0, recovered = 0, cleanupAttempted = 0;
  long lost = 0;
  double slowest = 0;
  for (int i = 0; i < runs; ++i) {
    std::string fault = std::string(kinds[i % 6]) + "@" + std::to_string(1 + rng() % clean.moves);
    CAPTURE(fault);
    auto parsed = hardware::parseSmoothieFault(fault);
    REQUIRE(parsed.has_value());
    auto db = dir / ("run-" + std::to_string(i) + ".db");
    auto r = runOnBoard(db, *protocol, {*parsed});
    slowest = std::max(slowest, r.seconds);
    CHECK(r.seconds < 10);  // bounded: timeouts and retries, never a hang
    CHECK(r.foldIssues == 0);
    // Every command the engine started has its outcome right after it.
    for (std::size_t k = 0; k < r.events.size(); ++k)
      if (r.events[k].type == engine::event::kCommandStarted) {
        bool outcome = k + 1 < r.events.size() && (r.events[k + 1].type == engine::event::kCommandSucceeded ||
                                                   r.events[k + 1].type == engine::event::kCommandFailed);
        if (!outcome) lost++;
      }
    bool cleanup = false;
    for (const auto& e : r.events) cleanup = cleanup || e.type == engine::event::kCleanupStarted;
    CHECK(cleanup);
    cleanupAttempted += cleanup;
    if (r.status == "failed") {
      CHECK(r.error.value("errorType", "") == "Hardware");
      CHECK_FALSE(r.error.value("message", "").empty());
      failedWithError++;
    } else {
      // Only a dropped reply can be recovered from (the driver re-sends after a timeout).
      CHECK(std::string(kinds[i % 6]) == "drop");
      CHECK(r.status == "succeeded");
      recovered++;
    }
    std::filesystem::remove(db);
  }
  MESSAGE("serial faults: " << runs << " runs with an injected fault, " << failedWithError
                            << " failed with the error recorded, " << recovered << " recovered by a retry, "
                            << cleanupAttempted << " with cleanup attempted, " << lost << " events lost, slowest run "
                            << slowest << " s");
  CHECK(lost == 0);
  CHECK(failedWithError + recovered == runs);
  CHECK(failedWithError >= runs * 4 / 6 - 2);  // error/alarm/garbage/silent/disconnect all fail the run
}
