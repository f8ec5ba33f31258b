// Storage faults in the middle of a run (tests/engine/fault_vfs.hpp): a write that fails,
// a full disk, a failed sync. The engine must not act on a command whose start could not be
// committed (under --commit group, only motion and liquid commands may run ahead of their
// commit: docs/event-log.md), must end the run as failed with the reason once the log takes
// writes again (or stop, leaving the run to be closed as interrupted), and must never damage
// what was committed: checked with PRAGMA integrity_check and by re-opening and folding the
// log.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include "fault_vfs.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/state.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"

using namespace runrec;
using nlohmann::json;

namespace {

// Robot calls: all of them, and those no motion or liquid command makes (tips, pipettes,
// homing, delays): under --commit group only the first may run ahead of the log.
struct Calls {
  std::atomic<long> all{0};
  std::atomic<long> notMotion{0};
};

// SimRobot, counting every call that could move or change the robot.
class CountingRobot final : public hardware::Robot {
 public:
  explicit CountingRobot(std::shared_ptr<Calls> calls) : calls_(std::move(calls)) {}
  std::string describe() const override { return "sim (counted)"; }
  hardware::Status attachInstrument(hardware::Mount m, const hardware::PipetteSpec* s) override { return b(), sim_.attachInstrument(m, s); }
  hardware::Status home() override { return b(), sim_.home(); }
  hardware::Status moveTo(hardware::Mount m, const hardware::Point& p, std::optional<double> v) override { return n(), sim_.moveTo(m, p, v); }
  hardware::Status preparePlunger(hardware::Mount m) override { return n(), sim_.preparePlunger(m); }
  hardware::Status aspirate(hardware::Mount m, double v, double f) override { return n(), sim_.aspirate(m, v, f); }
  hardware::Status dispense(hardware::Mount m, double v, double f) override { return n(), sim_.dispense(m, v, f); }
  hardware::Status blowOut(hardware::Mount m, double f) override { return n(), sim_.blowOut(m, f); }
  hardware::Status pickUpTip(hardware::Mount m, double l) override { return b(), sim_.pickUpTip(m, l); }
  hardware::Status dropTip(hardware::Mount m) override { return b(), sim_.dropTip(m); }
  hardware::Status assumeTip(hardware::Mount m, double l) override { return b(), sim_.assumeTip(m, l); }
  hardware::Status delay(double s) override { return b(), sim_.delay(s); }
  hardware::Result<hardware::Positions> positions() override { return sim_.positions(); }

 private:
  void n() { ++calls_->all; }
  void b() {
    ++calls_->all;
    ++calls_->notMotion;
  }
  hardware::SimRobot sim_;
  std::shared_ptr<Calls> calls_;
};

struct FaultRun {
  bool runnerFinished = false;  // the runner got the engine's summary
  json summary;
  std::string runnerError;
  engine::Status engineStatus;
  long injected = 0;
  long robotCallsAtFault = -1;  // robot calls when the first fault was injected
  long robotCalls = 0;          // at the end
  long notMotionAtFault = -1;   // the same, counting only calls no motion or liquid command makes
  long notMotion = 0;
  long writes = 0;
  long writesAtFinish = 0;  // writes and syncs until the runner had its answer
};

// One run of the seed protocol (`touches` touchTips) with `fault` armed once the run is open.
FaultRun runWithFault(const std::filesystem::path& db, int touches, std::optional<test::StorageFault> fault,
                      engine::Sync sync = engine::Sync::kNormal,
                      engine::CommitPolicy commit = engine::CommitPolicy::kGroup) {
  static int counter = 0;
  auto& vfs = test::FaultVfs::install();
  auto protocol = runner::parseProtocol(runner::makeSeedProtocol(touches).dump(), "seed.json");
  REQUIRE(protocol.has_value());
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.sync = sync;
  eo.commit = commit;
  eo.endpoint = "inproc://storage-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  eo.maxRuns = 1;
  eo.controlEndpoint = "none";
  auto calls = std::make_shared<Calls>();
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<CountingRobot>(calls));
  REQUIRE_MESSAGE(eng.has_value(), (eng ? "" : eng.error().message));
  FaultRun out;
  std::atomic<long> atFault{-1}, notMotionAtFault{-1};
  if (fault)
    vfs.arm(std::filesystem::absolute(db).string(), *fault, [&] {
      long expected = -1;
      if (atFault.compare_exchange_strong(expected, calls->all.load())) notMotionAtFault.store(calls->notMotion.load());
    });
  (*eng)->start();
  {
    auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
    REQUIRE(client.has_value());
    runner::RunOptions ro;
    ro.timeout = std::chrono::seconds(8);
    auto result = runner::runProtocol(**client, *protocol, ro);
    out.writesAtFinish = vfs.writes() + vfs.syncs();
    if (result) {
      out.runnerFinished = true;
      out.summary = result->summary;
    } else {
      out.runnerError = result.error().message;
    }
  }
  (*eng)->requestShutdown();
  out.engineStatus = (*eng)->wait();
  eng->reset();
  out.injected = vfs.injected();
  out.writes = vfs.writes() + vfs.syncs();
  vfs.disarm();
  out.robotCallsAtFault = atFault.load();
  out.robotCalls = calls->all.load();
  out.notMotionAtFault = notMotionAtFault.load();
  out.notMotion = calls->notMotion.load();
  return out;
}

std::string integrity(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
  std::string result;
  while (sqlite3_step(st) == SQLITE_ROW) result += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return result;
}

struct Folded {
  std::string status, reason;
  std::size_t issues = 0;
  long startedWithoutOutcome = 0;  // committed commandStarted with no outcome after it
  long commands = 0;
};

// Re-opens the log read-only and folds the (single) run in it.
Folded refold(const std::filesystem::path& db) {
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE_MESSAGE(log.has_value(), (log ? "" : log.error().message));
  auto runs = (*log)->runs();
  REQUIRE(runs.has_value());
  REQUIRE(runs->size() <= 1);
  if (runs->empty()) return {};  // the fault hit the run's creation: it was refused, nothing recorded
  auto events = (*log)->events(runs->front().runId);
  REQUIRE(events.has_value());
  std::vector<engine::FoldIssue> issues;
  auto state = engine::fold(*events, &issues);
  Folded f;
  f.issues = issues.size();
  for (const auto& i : issues) MESSAGE("fold issue: " << i.message);
  for (std::size_t k = 0; k < events->size(); ++k) {
    const auto& e = (*events)[k];
    if (e.type != engine::event::kCommandStarted) continue;
    f.commands++;
    bool outcome = k + 1 < events->size() && ((*events)[k + 1].type == engine::event::kCommandSucceeded ||
                                              (*events)[k + 1].type == engine::event::kCommandFailed);
    if (!outcome) f.startedWithoutOutcome++;
  }
  if (!events->empty() && events->back().type == engine::event::kRunFinished) {
    f.status = events->back().payload.value("status", "");
    f.reason = events->back().payload.value("reason", "");
  }
  return f;
}

// What the robot may do after the first failed write: under `each` nothing at all; under
// `group` at most the motion and liquid commands started within the window of the last
// commit, whose starts the log thread was committing when the write failed, never a tip,
// pipette or homing call.
void checkNothingActedAfter(const FaultRun& r, engine::CommitPolicy commit) {
  REQUIRE(r.robotCallsAtFault >= 0);
  if (commit == engine::CommitPolicy::kEach) {
    CHECK(r.robotCalls == r.robotCallsAtFault);
  } else {
    CHECK(r.notMotion == r.notMotionAtFault);
    if (r.robotCalls != r.robotCallsAtFault)
      MESSAGE("motion calls after the fault (commit group): " << r.robotCalls - r.robotCallsAtFault);
  }
}

}  // namespace

TEST_CASE("a clean run through the fault shim writes and syncs, and injects nothing") {
  auto dir = test::tempDir("storage");
  auto r = runWithFault(dir / "clean.db", 5, test::StorageFault{test::StorageFault::Kind::kWriteError, 1'000'000, 1});
  REQUIRE(r.runnerFinished);
  CHECK(r.summary["status"] == "succeeded");
  CHECK(r.injected == 0);
  CHECK(r.writes > 10);  // the shim really sees the engine's I/O
  CHECK(integrity(dir / "clean.db") == "ok");
}

TEST_CASE("a failed write or a full disk mid-run: nothing unrecorded is executed, the run ends failed, the log is intact") {
  auto dir = test::tempDir("storage");
  // How many writes a run makes, to aim the faults inside it.
  auto clean = runWithFault(dir / "count.db", 20, test::StorageFault{test::StorageFault::Kind::kWriteError, 1'000'000, 1});
  REQUIRE(clean.runnerFinished);
  // Faults land before the run's last commit (the engine's close checkpoints afterwards).
  long total = clean.writesAtFinish * 9 / 10;
  REQUIRE(total > 20);
  int runs = 0, survived = 0;
  long lost = 0;
  std::mt19937 rng(0x5eed);
  int n = std::getenv("RUNREC_SLOW") ? 120 : 12;
  for (int i = 0; i < n; ++i) {
    auto kind = i % 2 ? test::StorageFault::Kind::kDiskFull : test::StorageFault::Kind::kWriteError;
    long nth = std::uniform_int_distribution<long>(1, total)(rng);
    long count = std::uniform_int_distribution<long>(1, 4)(rng);
    auto db = dir / ("fault-" + std::to_string(i) + ".db");
    CAPTURE(i);
    CAPTURE(std::string(test::toString(kind)));
    CAPTURE(nth);
    CAPTURE(count);
    // Every third run commits each command's start before the robot acts on it.
    const auto commit = i % 3 == 2 ? engine::CommitPolicy::kEach : engine::CommitPolicy::kGroup;
    CAPTURE(std::string(engine::toString(commit)));
    auto r = runWithFault(db, 20, test::StorageFault{kind, nth, count}, engine::Sync::kNormal, commit);
    runs++;
    REQUIRE(r.injected > 0);
    checkNothingActedAfter(r, commit);
    // The runner was told: the run failed (or, if the fault hit run creation, refused or the engine stopped).
    CHECK(integrity(db) == "ok");
    auto f = refold(db);
    CHECK(f.issues == 0);
    CHECK(f.startedWithoutOutcome == 0);
    lost += f.startedWithoutOutcome;
    if (f.status.empty()) {  // the fault hit the run's creation: refused, nothing recorded, the engine serves on
      CHECK(r.engineStatus.has_value());
      CHECK(r.runnerError.find("the event log could not be written") != std::string::npos);
      survived++;
      continue;
    }
    CHECK(f.status == "failed");
    CHECK(f.reason.find("the event log could not be written") != std::string::npos);
    CHECK(f.reason.find(kind == test::StorageFault::Kind::kDiskFull ? "full" : "I/O error") != std::string::npos);
    CHECK(r.engineStatus.has_value());
    REQUIRE(r.runnerFinished);
    CHECK(r.summary["status"] == "failed");
    survived++;
  }
  MESSAGE("storage faults: " << runs << " runs with injected faults, " << survived << " ended failed with the reason, "
                             << lost << " events lost");
  CHECK(lost == 0);
}

TEST_CASE("a failed fsync with --sync full ends the run failed with the reason") {
  auto dir = test::tempDir("storage");
  auto db = dir / "sync.db";
  auto r = runWithFault(db, 10, test::StorageFault{test::StorageFault::Kind::kSyncError, 8, 2}, engine::Sync::kFull);
  REQUIRE(r.injected > 0);
  checkNothingActedAfter(r, engine::CommitPolicy::kGroup);
  REQUIRE(r.runnerFinished);
  CHECK(r.summary["status"] == "failed");
  CHECK(integrity(db) == "ok");
  auto f = refold(db);
  CHECK(f.issues == 0);
  CHECK(f.startedWithoutOutcome == 0);
  CHECK(f.status == "failed");
  CHECK(f.reason.find("I/O error") != std::string::npos);
}

TEST_CASE("a disk that stays full: the engine stops, keeps what was committed, and the next engine closes the run") {
  auto dir = test::tempDir("storage");
  auto db = dir / "full.db";
  auto clean = runWithFault(dir / "count.db", 20, test::StorageFault{test::StorageFault::Kind::kWriteError, 1'000'000, 1});
  // Half-way through the run's writes, the disk fills for good.
  auto r = runWithFault(db, 20, test::StorageFault{test::StorageFault::Kind::kDiskFull, clean.writesAtFinish / 2, -1});
  REQUIRE(r.injected > 0);
  checkNothingActedAfter(r, engine::CommitPolicy::kGroup);
  CHECK_FALSE(r.runnerFinished);
  REQUIRE_FALSE(r.engineStatus.has_value());
  CHECK(r.engineStatus.error().message.find("full") != std::string::npos);
  CHECK(integrity(db) == "ok");
  {
    auto f = refold(db);
    CHECK(f.issues == 0);
    CHECK(f.status.empty());  // no terminal event yet: the log could not take one
  }
  // A later engine, with space again, closes the run as interrupted.
  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://storage-reopen-" + std::to_string(::getpid());
  eo.controlEndpoint = "none";
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE(eng.has_value());
  eng->reset();
  CHECK(integrity(db) == "ok");
  auto f = refold(db);
  CHECK(f.status == "interrupted");
}
