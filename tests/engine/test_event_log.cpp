// The SQLite event log: schema, gapless sequences, append-only, reopen, damaged files.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>

#include "runrec/engine/event_log.hpp"
#include "support.hpp"
#include "support/event_log.hpp"

using namespace runrec::engine;
using nlohmann::json;

namespace {

using runrec::test::createRun;
using runrec::test::openLog;

Status appendOne(EventLog& log, const std::string& run, std::int64_t seq, const std::string& type = "runStarted") {
  if (auto st = log.begin(); !st) return st;
  auto st = log.append({run, seq, type, nowTimestamp(), "", json{{"n", seq}}});
  if (!st) {
    log.rollback();
    return st;
  }
  return log.commit();
}

int sqliteExec(const std::filesystem::path& p, const std::string& sql, std::string* err = nullptr) {
  sqlite3* db = nullptr;
  sqlite3_open(p.c_str(), &db);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
  if (msg && err) *err = msg;
  sqlite3_free(msg);
  sqlite3_close(db);
  return rc;
}

}  // namespace

TEST_CASE("a new log records its schema version and opens again") {
  auto dir = runrec::test::tempDir("log");
  auto path = dir / "runs.db";
  {
    auto log = openLog(path);
    createRun(*log, "run-1");
    REQUIRE(appendOne(*log, "run-1", 1));
  }
  auto log = openLog(path);
  auto events = log->events("run-1");
  REQUIRE(events);
  REQUIRE(events->size() == 1);
  CHECK(events->at(0).payload["n"] == 1);
  std::string err;
  CHECK(sqliteExec(path, "SELECT 1 FROM meta WHERE key='schema_version' AND value='1'") == SQLITE_OK);
}

TEST_CASE("sequence numbers must be gapless: the schema refuses a gap or a repeat") {
  auto dir = runrec::test::tempDir("log");
  auto log = openLog(dir / "runs.db");
  createRun(*log, "r");
  REQUIRE(appendOne(*log, "r", 1));
  REQUIRE(appendOne(*log, "r", 2));
  auto gap = appendOne(*log, "r", 4);
  REQUIRE_FALSE(gap);
  CHECK(gap.error().message.find("last seq + 1") != std::string::npos);
  CHECK_FALSE(appendOne(*log, "r", 2));
  REQUIRE(appendOne(*log, "r", 3));
  auto last = log->lastSeq("r");
  REQUIRE(last);
  CHECK(*last == 3);
}

TEST_CASE("events are append-only, even from the sqlite3 shell") {
  auto dir = runrec::test::tempDir("log");
  auto path = dir / "runs.db";
  {
    auto log = openLog(path);
    createRun(*log, "r");
    REQUIRE(appendOne(*log, "r", 1));
  }
  std::string err;
  CHECK(sqliteExec(path, "UPDATE events SET type='x'", &err) != SQLITE_OK);
  CHECK(err.find("append-only") != std::string::npos);
  CHECK(sqliteExec(path, "DELETE FROM events", &err) != SQLITE_OK);
}

TEST_CASE("uncommitted events are not visible to another connection and are lost on rollback") {
  auto dir = runrec::test::tempDir("log");
  auto path = dir / "runs.db";
  auto writer = openLog(path);
  createRun(*writer, "r");
  REQUIRE(writer->begin());
  REQUIRE(writer->append({"r", 1, "runStarted", nowTimestamp(), "", json::object()}));
  auto reader = EventLog::open(path, LogOptions{Sync::kNormal, true, false});
  REQUIRE(reader);
  CHECK((*reader)->events("r")->empty());
  REQUIRE(writer->commit());
  CHECK((*reader)->events("r")->size() == 1);
}

TEST_CASE("run ids resolve by full id, unique prefix and `last`") {
  auto dir = runrec::test::tempDir("log");
  auto log = openLog(dir / "runs.db");
  createRun(*log, "aaaa1111");
  createRun(*log, "aaaa2222");
  createRun(*log, "bbbb3333");
  CHECK(*log->resolveRunId("bbbb") == "bbbb3333");
  CHECK(*log->resolveRunId("aaaa1111") == "aaaa1111");
  CHECK(*log->resolveRunId("last") == "bbbb3333");
  auto amb = log->resolveRunId("aaaa");
  REQUIRE_FALSE(amb);
  CHECK(amb.error().code == ErrorCode::kAmbiguous);
  auto none = log->resolveRunId("zzzz");
  REQUIRE_FALSE(none);
  CHECK(none.error().code == ErrorCode::kNotFound);
}

TEST_CASE("a file that is not a runrec log gives a clear error") {
  auto dir = runrec::test::tempDir("log");
  SUBCASE("text file") {
    auto p = dir / "notes.db";
    std::ofstream(p) << std::string(4096, 'x');
    auto log = EventLog::open(p);
    REQUIRE_FALSE(log);
    CHECK(log.error().code == ErrorCode::kCorrupt);
    CHECK(log.error().message.find("not a runrec log") != std::string::npos);
  }
  SUBCASE("truncated to a few bytes") {
    auto p = dir / "short.db";
    std::ofstream(p) << "SQLite";
    auto log = EventLog::open(p);
    REQUIRE_FALSE(log);
    CHECK(log.error().message.find("truncated") != std::string::npos);
  }
  SUBCASE("another application's SQLite database") {
    auto p = dir / "other.db";
    REQUIRE(sqliteExec(p, "CREATE TABLE x(a)") == SQLITE_OK);
    auto log = EventLog::open(p);
    REQUIRE_FALSE(log);
    CHECK(log.error().message.find("without runrec's `meta` table") != std::string::npos);
  }
  SUBCASE("written by a newer runrec") {
    auto p = dir / "newer.db";
    { openLog(p); }
    REQUIRE(sqliteExec(p, "UPDATE meta SET value='99' WHERE key='schema_version'") == SQLITE_OK);
    auto log = EventLog::open(p);
    REQUIRE_FALSE(log);
    CHECK(log.error().code == ErrorCode::kSchema);
    CHECK(log.error().message.find("newer runrec") != std::string::npos);
  }
  SUBCASE("reading a log that does not exist does not create it") {
    auto p = dir / "missing.db";
    auto log = EventLog::open(p, LogOptions{Sync::kNormal, true, false});
    REQUIRE_FALSE(log);
    CHECK(log.error().code == ErrorCode::kNotFound);
    CHECK_FALSE(std::filesystem::exists(p));
  }
}

TEST_CASE("a log damaged in the middle reports the damage instead of crashing") {
  auto dir = runrec::test::tempDir("log");
  auto path = dir / "runs.db";
  {
    auto log = openLog(path);
    createRun(*log, "r");
    REQUIRE(log->begin());
    for (int i = 1; i <= 2000; ++i)
      REQUIRE(log->append({"r", i, "commandStarted", nowTimestamp(), "c" + std::to_string(i),
                           json{{"filler", std::string(200, 'a')}}}));
    REQUIRE(log->commit());
  }
  REQUIRE(sqliteExec(path, "PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
  auto size = std::filesystem::file_size(path);
  {
    // Overwrite pages in the middle of the file with garbage.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    std::string junk(8192, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto log = EventLog::open(path, LogOptions{Sync::kNormal, true, false});
  if (log) {
    auto events = (*log)->events("r");
    REQUIRE_FALSE(events);
    CHECK(events.error().code == ErrorCode::kCorrupt);
    CHECK(events.error().message.find("damaged") != std::string::npos);
  } else {
    CHECK(log.error().code == ErrorCode::kCorrupt);
  }
}

TEST_CASE("the commands view joins each command's start and outcome") {
  auto dir = runrec::test::tempDir("log");
  auto path = dir / "runs.db";
  {
    auto log = openLog(path);
    createRun(*log, "r");
    REQUIRE(log->begin());
    REQUIRE(log->append({"r", 1, "commandStarted", "2026-01-01T00:00:00.000000Z", "c1",
                         json{{"commandType", "home"}, {"index", 1}, {"params", json::object()}, {"intent", "protocol"}}}));
    REQUIRE(log->append({"r", 2, "commandSucceeded", "2026-01-01T00:00:00.250000Z", "c1", json{{"result", json::object()}}}));
    REQUIRE(log->commit());
  }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT command_type, status, duration_ms FROM commands", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "home");
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 1))) == "succeeded");
  CHECK(sqlite3_column_double(st, 2) == doctest::Approx(250.0).epsilon(0.001));
  sqlite3_finalize(st);
  sqlite3_close(db);
}
