// The log follower: folds a run's committed events on its own thread and connection; what
// it hands cleanup must be exactly the fold of the committed log.
#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "runrec/engine/engine.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/log_follower.hpp"
#include "runrec/engine/state.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "support/event_log.hpp"

using namespace runrec::engine;
using nlohmann::json;

namespace {

// A fresh log in a new temporary folder with run "run-1" registered, and its path.
std::pair<std::unique_ptr<EventLog>, std::filesystem::path> logWithRun() {
  auto path = runrec::test::tempDir("follower") / "runs.db";
  auto log = runrec::test::openLog(path);
  runrec::test::createRun(*log, "run-1");
  return {std::move(log), path};
}

std::unique_ptr<LogFollower> follow(const std::filesystem::path& path) {
  auto f = LogFollower::start(path, "run-1", std::chrono::milliseconds(1));
  REQUIRE_MESSAGE(f.has_value(), (f ? "" : f.error().message));
  return std::move(*f);
}

// A small run: a pipette, a tip rack, then `n` pick-up/drop cycles, committed in batches of
// `batch` events; the last batch is left uncommitted (the caller commits it).
struct Writer {
  EventLog& log;
  std::string run;
  std::int64_t seq = 0;
  int inBatch = 0;
  int batch;

  void event(const std::string& type, json payload, const std::string& commandId = "") {
    if (!log.inTransaction()) REQUIRE(log.begin());
    REQUIRE(log.append({run, ++seq, type, nowTimestamp(), commandId, std::move(payload)}));
    if (++inBatch == batch) commit();
  }
  void commit() {
    if (log.inTransaction()) REQUIRE(log.commit());
    inBatch = 0;
  }
  void command(const std::string& id, const std::string& type, json params, json result = json::object()) {
    event(event::kCommandStarted,
          {{"commandType", type}, {"params", params}, {"intent", "protocol"}, {"index", seq}}, id);
    event(event::kCommandSucceeded, {{"result", result}}, id);
  }
};

}  // namespace

TEST_CASE("the log follower hands over exactly the fold of the committed log, tail included") {
  auto [log, path] = logWithRun();
  auto f = follow(path);
  auto& follower = *f;

  Writer w{*log, "run-1", 0, 0, 7};
  w.event(event::kRunCreated, {{"protocol", {{"name", "p"}}}, {"robot", "sim"}});
  w.event(event::kRunStarted, json::object());
  w.command("c1", "loadPipette", {{"pipetteName", "p300_single_gen2"}, {"mount", "left"}},
            {{"pipetteId", "pip"}});
  for (int i = 0; i < 200; ++i) {
    std::string well = std::string(1, char('A' + i % 8)) + std::to_string(1 + i % 12);
    w.command("t" + std::to_string(i), "comment", {{"message", "well " + well}});
  }
  w.commit();
  // The follower gets there by itself (it reads every millisecond here).
  for (int i = 0; i < 5000 && follower.foldedSeq() < w.seq; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(follower.foldedSeq() == w.seq);

  // A tail committed after its last read: finish() must fold it too.
  w.batch = 1000;
  w.command("last", "comment", {{"message", "tail"}});
  w.event(event::kRunStopRequested, {{"requestedBy", "test"}});
  w.commit();

  auto handed = follower.finish();
  REQUIRE_MESSAGE(handed.has_value(), (handed ? "" : handed.error().message));
  std::vector<FoldIssue> issues;
  auto all = log->events("run-1");
  REQUIRE(all);
  RunState expected = fold(*all, &issues);
  CHECK(handed->state.lastSeq == w.seq);
  CHECK(handed->state.lastSeq == expected.lastSeq);
  CHECK(toJson(handed->state) == toJson(expected));
  CHECK(handed->issues.size() == issues.size());
  CHECK(handed->state.stopRequestedBy == "test");
}

TEST_CASE("the log follower reads only what is committed") {
  auto [log, path] = logWithRun();
  auto f = follow(path);
  Writer w{*log, "run-1", 0, 0, 1000};
  w.event(event::kRunCreated, {{"protocol", {{"name", "p"}}}, {"robot", "sim"}});
  w.event(event::kRunStarted, json::object());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f->foldedSeq() == 0);  // still in the writer's open transaction
  w.commit();
  auto handed = f->finish();
  REQUIRE(handed);
  CHECK(handed->state.lastSeq == 2);
}

TEST_CASE("a damaged event stops the log follower with an error naming it") {
  auto [log, path] = logWithRun();
  REQUIRE(log->begin());
  REQUIRE(log->append({"run-1", 1, event::kRunCreated, nowTimestamp(), "", json::object()}));
  REQUIRE(log->append({"run-1", 2, event::kRunStarted, nowTimestamp(), "", json::object()}, "{\"torn\":"));
  REQUIRE(log->commit());
  auto handed = follow(path)->finish();
  REQUIRE_FALSE(handed.has_value());
  CHECK(handed.error().code == ErrorCode::kCorrupt);
  CHECK(handed.error().message.find("event 2") != std::string::npos);
}

TEST_CASE("a log follower cannot start on a file that is not there") {
  auto dir = runrec::test::tempDir("follower");
  auto f = LogFollower::start(dir / "missing.db", "run-1", std::chrono::milliseconds(1));
  REQUIRE_FALSE(f.has_value());
  CHECK(f.error().message.find("missing.db") != std::string::npos);
}

TEST_CASE("an engine run's cleanup takes the follower's fold (it never falls back to a whole-run fold)") {
  // The engine warns when cleanup has to fold the run itself (no follower, or one that
  // failed or stopped short); a run on a healthy log must never need to.
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  spdlog::default_logger()->sinks().push_back(sink);
  struct Unhook {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink;
    ~Unhook() {
      auto& sinks = spdlog::default_logger()->sinks();
      sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
    }
  } unhook{sink};

  runrec::bus::Context ctx;
  auto db = runrec::test::tempDir("follower-engine") / "runrec.db";
  EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://follower-engine";
  eo.controlEndpoint = "none";
  eo.maxRuns = 1;
  eo.postRun = EngineOptions::PostRun::kStay;
  auto e = Engine::create(ctx, eo, std::make_unique<runrec::hardware::SimRobot>());
  REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
  (*e)->start();
  auto protocol = runrec::runner::parseProtocol(runrec::runner::makeSeedProtocol(300).dump(), "seed.json");
  REQUIRE(protocol.has_value());
  auto client = runrec::bus::CommandClient::connect(ctx, eo.endpoint, runrec::bus::ChannelOptions{});
  REQUIRE(client.has_value());
  runrec::runner::RunOptions ro;
  ro.timeout = std::chrono::seconds(120);
  auto r = runrec::runner::runProtocol(**client, *protocol, ro);
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
  REQUIRE((*e)->wait());
  CHECK(r->summary["status"] == "succeeded");
  // The seed ends with its tip dropped; cleanup found nothing to drop, as the fold says.
  auto log = runrec::test::openLog(db);
  auto events = log->events(r->summary["runId"].get<std::string>());
  REQUIRE(events);
  bool sawCleanup = false;
  for (const auto& ev : *events)
    if (ev.type == event::kCleanupStarted) {
      sawCleanup = true;
      CHECK(ev.payload["dropTips"] == json::array());
    }
  CHECK(sawCleanup);
  for (const auto& line : sink->last_formatted())
    CHECK_MESSAGE(line.find("log follower") == std::string::npos, line);
}
