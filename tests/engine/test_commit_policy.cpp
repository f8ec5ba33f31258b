// The engine's commit policy (EngineOptions::commit, docs/event-log.md "Commit policy"):
// what is committed at the moment the robot acts. A robot wrapper reads the log through its
// own read-only SQLite connection each time the engine calls it, so it sees exactly what a
// crash at that instant would leave behind.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "runrec/engine/engine.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "support/robot_wrapper.hpp"

using namespace runrec;
using nlohmann::json;

namespace {

// What the committed log held at each robot call.
struct Observed {
  long calls = 0;
  long lastCommittedNotStarted = 0;  // calls where the last committed event was not a commandStarted
  long tipCalls = 0;
  long tipCallsUncommitted = 0;  // tip calls whose own commandStarted was not the last committed event
  // Each call: when it was made (µs since the epoch, the clock of events' `ts`) and the last
  // committed seq then. aheadOfLog() matches them with the commands' starts.
  std::vector<std::pair<std::int64_t, std::int64_t>> at;
};

std::int64_t epochMicros(const std::string& ts) {  // 2026-11-25T21:47:16.123456Z
  std::tm tm{};
  int us = 0;
  REQUIRE(std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                      &tm.tm_min, &tm.tm_sec, &us) == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1'000'000 + us;
}

class CommitWatchingRobot final : public test::RobotWrapper {
 public:
  CommitWatchingRobot(std::filesystem::path db, Observed& seen) : db_(std::move(db)), seen_(seen) {}
  ~CommitWatchingRobot() override {
    if (conn_) sqlite3_close(conn_);
  }
  std::string describe() const override { return "sim (commit-watching)"; }
  hardware::Status moveTo(hardware::Mount m, const hardware::Point& p, std::optional<double> speed) override {
    look(nullptr);
    return inner().moveTo(m, p, speed);
  }
  hardware::Status pickUpTip(hardware::Mount m, double len) override {
    look("pickUpTip");
    return inner().pickUpTip(m, len);
  }
  hardware::Status dropTip(hardware::Mount m) override {
    look("dropTip");
    return inner().dropTip(m);
  }

 private:
  // The last committed event of the newest run: its type and, for a commandStarted, the
  // command's type.
  void look(const char* tipCommand) {
    if (!conn_) REQUIRE(sqlite3_open_v2(db_.c_str(), &conn_, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(conn_,
                               "SELECT type, json_extract(payload, '$.commandType'), seq FROM events "
                               "WHERE run_id = (SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1) "
                               "ORDER BY seq DESC LIMIT 1",
                               -1, &st, nullptr) == SQLITE_OK);
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::string type, commandType;
    std::int64_t seq = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
      type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      if (auto* t = sqlite3_column_text(st, 1)) commandType = reinterpret_cast<const char*>(t);
      seq = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    seen_.at.emplace_back(now, seq);
    seen_.calls++;
    if (type != "commandStarted") seen_.lastCommittedNotStarted++;
    if (tipCommand) {
      seen_.tipCalls++;
      if (type != "commandStarted" || commandType != tipCommand) seen_.tipCallsUncommitted++;
    }
  }

  std::filesystem::path db_;
  Observed& seen_;
  sqlite3* conn_ = nullptr;
};

struct Ran {
  Observed seen;
  json summary;
  std::vector<std::string> types;  // every event's type, in order
  // Robot calls made while the start of the command they belong to was not yet committed.
  // A call belongs to the last command whose start was recorded strictly before it (a call
  // in the same microsecond as its own start counts for the command before: never ahead).
  long aheadOfLog = 0;
};

Ran runSeed(const char* name, engine::CommitPolicy policy, std::chrono::microseconds window, int touches) {
  Ran out;
  bus::Context ctx;
  auto db = test::tempDir(std::string("commit-") + name) / "runrec.db";
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = std::string("inproc://commit-") + name;
  eo.controlEndpoint = "none";
  eo.maxRuns = 1;
  eo.commit = policy;
  eo.commitWindow = window;
  eo.postRun = engine::EngineOptions::PostRun::kStay;
  // The log file exists before the robot first looks at it.
  auto e = engine::Engine::create(ctx, eo, std::make_unique<CommitWatchingRobot>(db, out.seen));
  REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
  (*e)->start();
  auto protocol = runner::parseProtocol(runner::makeSeedProtocol(touches).dump(), "seed.json");
  REQUIRE(protocol.has_value());
  auto client = bus::CommandClient::connect(ctx, eo.endpoint, bus::ChannelOptions{});
  REQUIRE(client.has_value());
  runner::RunOptions ro;
  ro.timeout = std::chrono::seconds(120);
  auto r = runner::runProtocol(**client, *protocol, ro);
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
  out.summary = r->summary;
  REQUIRE((*e)->wait());
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(log.has_value());
  auto ev = (*log)->events(out.summary["runId"].get<std::string>());
  REQUIRE(ev.has_value());
  std::vector<std::pair<std::int64_t, std::int64_t>> starts;  // (ts µs, seq), in order
  for (auto& x : *ev) {
    out.types.push_back(x.type);
    if (x.type == engine::event::kCommandStarted) starts.emplace_back(epochMicros(x.ts), x.seq);
  }
  for (auto [when, committed] : out.seen.at) {
    auto it = std::lower_bound(starts.begin(), starts.end(), std::make_pair(when, std::int64_t{0}));
    if (it == starts.begin()) continue;
    if (std::prev(it)->second > committed) out.aheadOfLog++;
  }
  return out;
}

}  // namespace

TEST_CASE("commit each: every command's start is the last committed event whenever the robot acts") {
  auto r = runSeed("each", engine::CommitPolicy::kEach, std::chrono::microseconds(5000), 200);
  CHECK(r.summary["status"] == "succeeded");
  REQUIRE(r.seen.calls > 200);
  CHECK(r.seen.lastCommittedNotStarted == 0);
  CHECK(r.aheadOfLog == 0);
  CHECK(r.seen.tipCalls >= 2);
  CHECK(r.seen.tipCallsUncommitted == 0);
  // One transaction per command at least (plus the run's open and end).
  CHECK(r.summary["commits"].get<long>() >= r.summary["counts"]["started"].get<long>());
}

TEST_CASE("commit group: motion shares commits, tip commands are still committed before the robot acts") {
  // A window long enough that only the bus running dry, the batch cap and the tip commands
  // force a commit.
  auto group = runSeed("group", engine::CommitPolicy::kGroup, std::chrono::seconds(10), 200);
  CHECK(group.summary["status"] == "succeeded");
  CHECK(group.seen.tipCalls >= 2);
  CHECK(group.seen.tipCallsUncommitted == 0);
  // Grouping happened: the robot acted on commands whose start was not yet committed...
  CHECK(group.aheadOfLog > 0);
  // ...and the run took fewer transactions than commands.
  CHECK(group.summary["commits"].get<long>() < group.summary["counts"]["started"].get<long>());
  // The same events in the same order as committing each command.
  auto each = runSeed("group-vs-each", engine::CommitPolicy::kEach, std::chrono::microseconds(5000), 200);
  CHECK(group.types == each.types);
}

TEST_CASE("commit group with a zero window commits like each") {
  auto r = runSeed("group0", engine::CommitPolicy::kGroup, std::chrono::microseconds(0), 100);
  CHECK(r.summary["status"] == "succeeded");
  CHECK(r.seen.lastCommittedNotStarted == 0);
  CHECK(r.aheadOfLog == 0);
}

TEST_CASE("commit policy names") {
  CHECK(engine::parseCommitPolicy("each") == engine::CommitPolicy::kEach);
  CHECK(engine::parseCommitPolicy("group") == engine::CommitPolicy::kGroup);
  CHECK_FALSE(engine::parseCommitPolicy("batch").has_value());
  CHECK(std::string(engine::toString(engine::CommitPolicy::kGroup)) == "group");
}
