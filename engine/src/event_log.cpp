// The run log on SQLite: schema, migrations, appends and reads (docs/event-log.md).
#include "runrec/engine/event_log.hpp"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "runrec/bus/message.hpp"

namespace runrec::engine {

const char* toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo: return "io";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kSchema: return "schema";
    case ErrorCode::kNotFound: return "notFound";
    case ErrorCode::kAmbiguous: return "ambiguous";
    case ErrorCode::kInvalid: return "invalid";
    case ErrorCode::kBus: return "bus";
  }
  return "unknown";
}

std::string nowTimestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = time_point_cast<seconds>(now);
  auto micros = duration_cast<microseconds>(now - secs).count();
  // "YYYY-MM-DDTHH:MM:SS." changes once a second: formatted once per second per thread
  // (gmtime_r and snprintf were a visible share of the per-event cost).
  thread_local std::int64_t cachedSecond = -1;
  thread_local char prefix[32];
  thread_local int prefixLen = 0;
  std::int64_t s = secs.time_since_epoch().count();
  if (s != cachedSecond) {
    std::time_t t = static_cast<std::time_t>(s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    prefixLen = std::snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cachedSecond = s;
  }
  char buf[48];
  std::memcpy(buf, prefix, static_cast<std::size_t>(prefixLen));
  char* p = buf + prefixLen;
  for (int i = 5; i >= 0; --i) {
    p[i] = static_cast<char>('0' + micros % 10);
    micros /= 10;
  }
  p[6] = 'Z';
  return std::string(buf, static_cast<std::size_t>(prefixLen + 7));
}

std::optional<Sync> parseSync(std::string_view text) {
  if (text == "normal") return Sync::kNormal;
  if (text == "full") return Sync::kFull;
  return std::nullopt;
}

const char* toString(Sync sync) { return sync == Sync::kFull ? "full" : "normal"; }

namespace {

// Schema version 1. Every statement is idempotent so a half-created file is finished.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS protocols (
  sha256    TEXT PRIMARY KEY,
  file_name TEXT NOT NULL,
  content   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  run_id          TEXT PRIMARY KEY,
  created_at      TEXT NOT NULL,
  protocol_name   TEXT NOT NULL,
  protocol_sha256 TEXT NOT NULL REFERENCES protocols(sha256),
  robot           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  run_id     TEXT    NOT NULL REFERENCES runs(run_id),
  seq        INTEGER NOT NULL CHECK (seq >= 1),
  type       TEXT    NOT NULL,
  ts         TEXT    NOT NULL,
  command_id TEXT,
  payload    TEXT    NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_run_level ON events (run_id, type) WHERE command_id IS NULL;
CREATE TRIGGER IF NOT EXISTS events_gapless BEFORE INSERT ON events
WHEN NEW.seq <> COALESCE((SELECT MAX(seq) FROM events WHERE run_id = NEW.run_id), 0) + 1
BEGIN
  SELECT RAISE(ABORT, 'events.seq must be the run''s last seq + 1');
END;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE VIEW IF NOT EXISTS commands AS
SELECT s.run_id                                  AS run_id,
       s.command_id                              AS command_id,
       json_extract(s.payload, '$.index')        AS idx,
       json_extract(s.payload, '$.commandType')  AS command_type,
       json_extract(s.payload, '$.intent')       AS intent,
       CASE o.type WHEN 'commandSucceeded' THEN 'succeeded'
                   WHEN 'commandFailed' THEN 'failed'
                   ELSE 'running' END            AS status,
       s.ts                                      AS started_at,
       o.ts                                      AS completed_at,
       round((julianday(o.ts) - julianday(s.ts)) * 86400000.0, 3) AS duration_ms,
       json_extract(s.payload, '$.params')       AS params,
       json_extract(o.payload, '$.result')       AS result,
       json_extract(o.payload, '$.error')        AS error,
       s.seq                                     AS started_seq
FROM events s
LEFT JOIN events o
  ON o.run_id = s.run_id AND o.seq = s.seq + 1 AND o.command_id = s.command_id
 AND o.type IN ('commandSucceeded', 'commandFailed')
WHERE s.type = 'commandStarted';
CREATE VIEW IF NOT EXISTS run_summaries AS
SELECT r.run_id, r.created_at, r.protocol_name, r.robot,
       COALESCE(json_extract(f.payload, '$.status'), 'running') AS status,
       f.ts AS finished_at,
       json_extract(f.payload, '$.reason') AS reason
FROM runs r
LEFT JOIN events f ON f.run_id = r.run_id AND f.type = 'runFinished' AND f.command_id IS NULL;
)sql";

std::string columnText(sqlite3_stmt* st, int col) {
  auto* p = sqlite3_column_text(st, col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st, col)) : std::string();
}

// RAII for one prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr); }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return st_; }
  void bind(int i, const std::string& s) { sqlite3_bind_text(st_, i, s.data(), (int)s.size(), SQLITE_TRANSIENT); }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(st_, i, v); }

 private:
  sqlite3_stmt* st_ = nullptr;
  int rc_;
};

ErrorCode classify(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return ErrorCode::kCorrupt;
    default: return ErrorCode::kIo;
  }
}

}  // namespace

EventLog::EventLog(std::filesystem::path path, sqlite3* db) : path_(std::move(path)), db_(db) {}

EventLog::~EventLog() {
  sqlite3_finalize(insertEvent_);
  sqlite3_finalize(begin_);
  sqlite3_finalize(commit_);
  sqlite3_finalize(selectEvents_);
  if (db_) {
    if (inTx_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close_v2(db_);
  }
}

Error EventLog::sqlError(const std::string& what) const {
  int rc = sqlite3_extended_errcode(db_);
  std::string msg = path_.string() + ": " + what + ": " + sqlite3_errmsg(db_);
  if ((rc & 0xff) == SQLITE_NOTADB)
    msg = path_.string() + ": not a runrec log: the file is not an SQLite database (damaged header or another kind of file)";
  else if ((rc & 0xff) == SQLITE_CORRUPT)
    msg = path_.string() + ": the database is damaged (" + std::string(sqlite3_errmsg(db_)) +
          ") while trying to " + what + "; committed events before the damage may still be readable with `sqlite3 .recover`";
  return Error{classify(rc), msg};
}

Status EventLog::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    sqlite3_free(err);
    return tl::unexpected(sqlError(std::string("run `") + std::string(sql).substr(0, 40) + "`"));
  }
  return {};
}

Result<std::unique_ptr<EventLog>> EventLog::open(const std::filesystem::path& path, LogOptions options) {
  std::error_code ec;
  bool exists = std::filesystem::exists(path, ec);
  if (!exists && (options.readOnly || !options.create))
    return fail(ErrorCode::kNotFound, path.string() + ": no such log file");
  if (exists && std::filesystem::is_directory(path, ec))
    return fail(ErrorCode::kIo, path.string() + ": is a directory, not a log file");
  if (exists && std::filesystem::file_size(path, ec) > 0 && std::filesystem::file_size(path, ec) < 100)
    return fail(ErrorCode::kCorrupt, path.string() + ": truncated: " +
                                         std::to_string(std::filesystem::file_size(path, ec)) +
                                         " bytes is shorter than an SQLite header");
  int flags = options.readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  std::unique_ptr<EventLog> log(new EventLog(path, db));
  if (rc != SQLITE_OK) {
    return fail(classify(rc), path.string() + ": cannot open: " + (db ? sqlite3_errmsg(db) : "out of memory"));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  if (auto st = log->initSchema(options); !st) return tl::unexpected(st.error());
  if (!options.readOnly) {
    if (auto st = log->prepare(); !st) return tl::unexpected(st.error());
  }
  return log;
}

Status EventLog::initSchema(const LogOptions& options) {
  // Reading the header first turns "not a database" into a clear error. Statements are
  // scoped so none is active when the journal mode changes.
  bool empty = false;
  {
    Stmt probe(db_, "SELECT count(*) FROM sqlite_master");
    if (!probe.ok()) return tl::unexpected(sqlError("read the schema"));
    if (sqlite3_step(probe.get()) != SQLITE_ROW) return tl::unexpected(sqlError("read the schema"));
    empty = sqlite3_column_int64(probe.get(), 0) == 0;
  }

  if (!empty) {
    Stmt hasMeta(db_, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'");
    if (!hasMeta.ok()) return tl::unexpected(sqlError("read the schema"));
    if (sqlite3_step(hasMeta.get()) != SQLITE_ROW)
      return fail(ErrorCode::kCorrupt, path_.string() + ": not a runrec log (an SQLite database without runrec's `meta` table)");
    Stmt ver(db_, "SELECT value FROM meta WHERE key='schema_version'");
    if (!ver.ok()) return tl::unexpected(sqlError("read the schema version"));
    int rc = sqlite3_step(ver.get());
    if (rc != SQLITE_ROW) {
      if (rc != SQLITE_DONE) return tl::unexpected(sqlError("read the schema version"));
      return fail(ErrorCode::kCorrupt, path_.string() + ": not a runrec log (no schema_version in `meta`)");
    }
    int version = std::atoi(columnText(ver.get(), 0).c_str());
    if (version > kSchemaVersion)
      return fail(ErrorCode::kSchema, path_.string() + ": written by a newer runrec (log schema version " +
                                          std::to_string(version) + ", this runrec reads up to " +
                                          std::to_string(kSchemaVersion) + ")");
    if (version < 1)
      return fail(ErrorCode::kCorrupt, path_.string() + ": invalid schema_version in `meta`");
    // Migrations from older versions go here (version < kSchemaVersion), one step each.
  }
  if (options.readOnly) {
    if (empty) return fail(ErrorCode::kCorrupt, path_.string() + ": empty file, not a runrec log");
    return {};
  }
  if (auto st = exec("PRAGMA journal_mode=WAL"); !st) return st;
  if (auto st = exec(options.sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !st)
    return st;
  if (auto st = exec("PRAGMA foreign_keys=ON"); !st) return st;
  // Checkpoint every 8192 pages (32 MiB of WAL) instead of 1000: fewer checkpoint fsyncs
  // on the writer's path, and a page appended to many times is copied back once.
  if (auto st = exec("PRAGMA wal_autocheckpoint=8192"); !st) return st;
  if (empty) {
    if (auto st = exec("BEGIN"); !st) return st;
    if (auto st = exec(kSchemaV1); !st) {
      exec("ROLLBACK");
      return st;
    }
    std::string meta = "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '" +
                       std::to_string(kSchemaVersion) + "'), ('format', 'runrec event log'), ('created_at', '" +
                       nowTimestamp() + "')";
    if (auto st = exec(meta.c_str()); !st) {
      exec("ROLLBACK");
      return st;
    }
    if (auto st = exec("COMMIT"); !st) return st;
  }
  return {};
}

Status EventLog::prepare() {
  if (sqlite3_prepare_v3(db_,
                         "INSERT INTO events(run_id, seq, type, ts, command_id, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, SQLITE_PREPARE_PERSISTENT, &insertEvent_, nullptr) != SQLITE_OK)
    return tl::unexpected(sqlError("prepare the event insert"));
  if (sqlite3_prepare_v3(db_, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &begin_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v3(db_, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &commit_, nullptr) != SQLITE_OK)
    return tl::unexpected(sqlError("prepare transactions"));
  return {};
}

Status EventLog::step(sqlite3_stmt* st, const char* what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError(what));
  return {};
}

Status EventLog::begin() {
  if (inTx_) return {};
  if (!begin_) return fail(ErrorCode::kInvalid, path_.string() + ": the log is open read-only");
  if (auto st = step(begin_, "begin a transaction"); !st) return st;
  inTx_ = true;
  return {};
}

Status EventLog::commit() {
  if (!inTx_) return {};
  if (auto st = step(commit_, "commit"); !st) {
    // SQLite rolls the transaction back by itself after some failures (I/O error, disk full).
    inTx_ = sqlite3_get_autocommit(db_) == 0;
    return st;
  }
  inTx_ = false;
  return {};
}

Status EventLog::rollback() {
  if (!inTx_) return {};
  inTx_ = false;
  if (sqlite3_get_autocommit(db_)) return {};  // already rolled back by SQLite
  return exec("ROLLBACK");
}

Status EventLog::createRun(const RunRow& run, const std::string& protocolFileName, const std::string& protocolText) {
  Stmt p(db_, "INSERT OR IGNORE INTO protocols(sha256, file_name, content) VALUES (?1, ?2, ?3)");
  p.bind(1, run.protocolSha256);
  p.bind(2, protocolFileName);
  p.bind(3, protocolText);
  if (sqlite3_step(p.get()) != SQLITE_DONE) return tl::unexpected(sqlError("store the protocol"));
  return insertRunRow(run);
}

Status EventLog::createRunFromFile(const RunRow& run, const std::string& protocolFileName,
                                   const std::filesystem::path& protocolFile) {
  constexpr std::uint64_t kInlineBytes = 8u << 20;
  constexpr std::size_t kPiece = 1u << 20;
  const std::string what = "the protocol file " + protocolFile.string();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(protocolFile.c_str(), "rb"), &std::fclose);
  if (!file)
    return fail(ErrorCode::kInvalid, "cannot read " + what + ": " + std::strerror(errno) +
                                         " (the engine reads a large protocol's file itself: it must see the same files "
                                         "as the runner)");
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(protocolFile, ec);
  if (ec) return fail(ErrorCode::kInvalid, "cannot read " + what + ": " + ec.message());
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return fail(ErrorCode::kInvalid, "cannot hash " + what);
  auto digestMatches = [&]() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) return false;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
      hex += kHex[digest[i] >> 4];
      hex += kHex[digest[i] & 0xf];
    }
    return hex == run.protocolSha256;
  };
  const Error changed{ErrorCode::kInvalid, what + " is not the one the runner validated (SHA-256 differs: changed?)"};

  if (size <= kInlineBytes) {
    std::string text;
    std::vector<char> buffer(kPiece);
    while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get())) text.append(buffer.data(), n);
    if (std::ferror(file.get())) return fail(ErrorCode::kInvalid, "cannot read " + what);
    EVP_DigestUpdate(ctx.get(), text.data(), text.size());
    if (!digestMatches()) return tl::unexpected(changed);
    return createRun(run, protocolFileName, text);
  }

  Stmt p(db_, "INSERT OR IGNORE INTO protocols(sha256, file_name, content) VALUES (?1, ?2, zeroblob(?3))");
  p.bind(1, run.protocolSha256);
  p.bind(2, protocolFileName);
  p.bind(3, static_cast<std::int64_t>(size));
  if (sqlite3_step(p.get()) != SQLITE_DONE) return tl::unexpected(sqlError("store the protocol"));
  sqlite3_blob* blob = nullptr;
  if (sqlite3_changes(db_) == 1 &&
      sqlite3_blob_open(db_, "main", "protocols", "content", sqlite3_last_insert_rowid(db_), 1, &blob) != SQLITE_OK) {
    sqlite3_blob_close(blob);
    return tl::unexpected(sqlError("store the protocol"));
  }
  std::unique_ptr<sqlite3_blob, int (*)(sqlite3_blob*)> owned(blob, &sqlite3_blob_close);
  // Already stored (same digest): the file is still read, to check it is that protocol.
  std::vector<char> buffer(kPiece);
  std::uint64_t offset = 0;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get())) {
    if (offset + n > size) return tl::unexpected(changed);
    EVP_DigestUpdate(ctx.get(), buffer.data(), n);
    if (blob && sqlite3_blob_write(blob, buffer.data(), static_cast<int>(n), static_cast<int>(offset)) != SQLITE_OK)
      return tl::unexpected(sqlError("store the protocol"));
    offset += n;
  }
  if (std::ferror(file.get())) return fail(ErrorCode::kInvalid, "cannot read " + what);
  if (offset != size || !digestMatches()) return tl::unexpected(changed);
  if (blob && sqlite3_blob_close(owned.release()) != SQLITE_OK) return tl::unexpected(sqlError("store the protocol"));
  return insertRunRow(run);
}

Status EventLog::insertRunRow(const RunRow& run) {
  Stmt r(db_, "INSERT INTO runs(run_id, created_at, protocol_name, protocol_sha256, robot) VALUES (?1, ?2, ?3, ?4, ?5)");
  r.bind(1, run.runId);
  r.bind(2, run.createdAt);
  r.bind(3, run.protocolName);
  r.bind(4, run.protocolSha256);
  r.bind(5, run.robot);
  if (sqlite3_step(r.get()) != SQLITE_DONE) return tl::unexpected(sqlError("create run " + run.runId));
  return {};
}

Status EventLog::append(const Event& e) {
  std::string payload;
  bus::dumpJson(e.payload, payload);
  return append(e, payload);
}

Status EventLog::append(const Event& e, std::string_view payloadJson) {
  if (!inTx_) return fail(ErrorCode::kInvalid, "append outside a transaction");
  // Every parameter is bound on each call, so the statement needs no clear_bindings; it
  // was reset after its last step.
  sqlite3_stmt* st = insertEvent_;
  sqlite3_bind_text(st, 1, e.runId.data(), (int)e.runId.size(), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, e.seq);
  sqlite3_bind_text(st, 3, e.type.data(), (int)e.type.size(), SQLITE_STATIC);
  sqlite3_bind_text(st, 4, e.ts.data(), (int)e.ts.size(), SQLITE_STATIC);
  if (e.commandId.empty())
    sqlite3_bind_null(st, 5);
  else
    sqlite3_bind_text(st, 5, e.commandId.data(), (int)e.commandId.size(), SQLITE_STATIC);
  sqlite3_bind_text(st, 6, payloadJson.data(), (int)payloadJson.size(), SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return tl::unexpected(sqlError("append event " + std::to_string(e.seq) + " (" + e.type + ") of run " + e.runId));
  return {};
}

Result<std::vector<RunRow>> EventLog::runs() {
  Stmt s(db_, "SELECT run_id, created_at, protocol_name, protocol_sha256, robot FROM runs ORDER BY created_at DESC, rowid DESC");
  if (!s.ok()) return tl::unexpected(sqlError("list runs"));
  std::vector<RunRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW)
    out.push_back({columnText(s.get(), 0), columnText(s.get(), 1), columnText(s.get(), 2), columnText(s.get(), 3),
                   columnText(s.get(), 4)});
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("list runs"));
  return out;
}

Result<RunRow> EventLog::run(const std::string& runId) {
  Stmt s(db_, "SELECT run_id, created_at, protocol_name, protocol_sha256, robot FROM runs WHERE run_id = ?1");
  s.bind(1, runId);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW)
    return RunRow{columnText(s.get(), 0), columnText(s.get(), 1), columnText(s.get(), 2), columnText(s.get(), 3),
                  columnText(s.get(), 4)};
  if (rc == SQLITE_DONE) return fail(ErrorCode::kNotFound, "no run " + runId + " in " + path_.string());
  return tl::unexpected(sqlError("read run " + runId));
}

Result<std::string> EventLog::resolveRunId(const std::string& id) {
  if (id.empty()) return fail(ErrorCode::kInvalid, "empty run id");
  if (id == "last" || id == "latest") {
    Stmt s(db_, "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1");
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return columnText(s.get(), 0);
    if (rc == SQLITE_DONE) return fail(ErrorCode::kNotFound, "no runs in " + path_.string());
    return tl::unexpected(sqlError("find the last run"));
  }
  Stmt s(db_, "SELECT run_id FROM runs WHERE run_id >= ?1 AND run_id < ?1 || char(1114111) ORDER BY run_id LIMIT 3");
  s.bind(1, id);
  std::vector<std::string> hits;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) hits.push_back(columnText(s.get(), 0));
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("find run " + id));
  for (auto& h : hits)
    if (h == id) return h;
  if (hits.empty()) return fail(ErrorCode::kNotFound, "no run matching \"" + id + "\" in " + path_.string() + " (see `runrec runs`)");
  if (hits.size() > 1)
    return fail(ErrorCode::kAmbiguous, "\"" + id + "\" matches several runs (" + hits[0] + ", " + hits[1] +
                                           (hits.size() > 2 ? ", ..." : "") + "): give more characters");
  return hits[0];
}

Result<std::vector<Event>> EventLog::events(const std::string& runId, std::int64_t fromSeq, std::int64_t limit) {
  std::vector<Event> out;
  auto st = forEachEvent(
      runId,
      [&](Event& e) -> Status {
        out.push_back(std::move(e));
        return {};
      },
      fromSeq, limit);
  if (!st) return tl::unexpected(st.error());
  return out;
}

Status EventLog::forEachEvent(const std::string& runId, const std::function<Status(Event&)>& visit,
                              std::int64_t fromSeq) {
  return forEachEvent(runId, visit, fromSeq, -1);
}

Status EventLog::forEachEvent(const std::string& runId, const std::function<Status(Event&)>& visit,
                              std::int64_t fromSeq, std::int64_t limit) {
  Stmt s(db_, "SELECT seq, type, ts, command_id, payload FROM events WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3");
  s.bind(1, runId);
  s.bind(2, fromSeq);
  s.bind(3, limit);
  std::string why;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    Event e;
    e.runId = runId;
    e.seq = sqlite3_column_int64(s.get(), 0);
    e.type = columnText(s.get(), 1);
    e.ts = columnText(s.get(), 2);
    e.commandId = columnText(s.get(), 3);
    // The bus's parser: the same values as nlohmann::json::parse, about 3x faster (cleanup
    // and recovery fold a whole run from here).
    auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 4));
    std::string_view view(text ? text : "", text ? static_cast<std::size_t>(sqlite3_column_bytes(s.get(), 4)) : 0);
    if (!bus::parseJson(view, e.payload, why))
      return fail(ErrorCode::kCorrupt, path_.string() + ": run " + runId + " event " + std::to_string(e.seq) +
                                           ": payload is not valid JSON");
    if (auto st = visit(e); !st) return st;
  }
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("read events of run " + runId));
  return {};
}

Result<std::vector<Event>> EventLog::runLevelEvents(const std::string& runId) {
  Stmt s(db_, "SELECT seq, type, ts, payload FROM events WHERE run_id = ?1 AND command_id IS NULL ORDER BY seq");
  s.bind(1, runId);
  std::vector<Event> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    Event e;
    e.runId = runId;
    e.seq = sqlite3_column_int64(s.get(), 0);
    e.type = columnText(s.get(), 1);
    e.ts = columnText(s.get(), 2);
    e.payload = nlohmann::json::parse(columnText(s.get(), 3), nullptr, false);
    if (e.payload.is_discarded())
      return fail(ErrorCode::kCorrupt, path_.string() + ": run " + runId + " event " + std::to_string(e.seq) +
                                           ": payload is not valid JSON");
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("read run events of " + runId));
  return out;
}

Result<std::map<std::string, std::int64_t>> EventLog::countByType(const std::string& runId) {
  Stmt s(db_, "SELECT type, count(*) FROM events WHERE run_id = ?1 GROUP BY type");
  s.bind(1, runId);
  std::map<std::string, std::int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out[columnText(s.get(), 0)] = sqlite3_column_int64(s.get(), 1);
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("count events of " + runId));
  return out;
}

Result<std::int64_t> EventLog::lastSeq(const std::string& runId) {
  Stmt s(db_, "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?1");
  s.bind(1, runId);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return tl::unexpected(sqlError("read the last seq of " + runId));
  return sqlite3_column_int64(s.get(), 0);
}

Result<std::optional<Event>> EventLog::terminalEvent(const std::string& runId) {
  Stmt s(db_, "SELECT seq, ts, payload FROM events WHERE run_id = ?1 AND type = 'runFinished' AND command_id IS NULL");
  s.bind(1, runId);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<Event>{};
  if (rc != SQLITE_ROW) return tl::unexpected(sqlError("read the end of run " + runId));
  Event e;
  e.runId = runId;
  e.seq = sqlite3_column_int64(s.get(), 0);
  e.type = event::kRunFinished;
  e.ts = columnText(s.get(), 1);
  e.payload = nlohmann::json::parse(columnText(s.get(), 2), nullptr, false);
  if (e.payload.is_discarded()) return fail(ErrorCode::kCorrupt, path_.string() + ": run " + runId + ": terminal event payload is not JSON");
  return std::optional<Event>(std::move(e));
}

Result<std::vector<std::string>> EventLog::unfinishedRuns() {
  Stmt s(db_, "SELECT run_id FROM runs r WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.run_id = r.run_id AND e.type = 'runFinished' AND e.command_id IS NULL) ORDER BY created_at");
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(columnText(s.get(), 0));
  if (rc != SQLITE_DONE) return tl::unexpected(sqlError("list unfinished runs"));
  return out;
}

Result<std::string> EventLog::protocolText(const std::string& sha256) {
  Stmt s(db_, "SELECT content FROM protocols WHERE sha256 = ?1");
  s.bind(1, sha256);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) return columnText(s.get(), 0);
  if (rc == SQLITE_DONE) return fail(ErrorCode::kNotFound, "no protocol " + sha256 + " in " + path_.string());
  return tl::unexpected(sqlError("read protocol " + sha256));
}

std::uint64_t EventLog::fileBytes() const {
  std::error_code ec;
  std::uint64_t n = 0;
  for (auto suffix : {"", "-wal"}) {
    auto p = path_.string() + suffix;
    auto sz = std::filesystem::file_size(p, ec);
    if (!ec) n += sz;
  }
  return n;
}

}  // namespace runrec::engine
