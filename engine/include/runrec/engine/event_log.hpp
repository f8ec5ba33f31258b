// The run log: an append-only SQLite file of events (format: docs/event-log.md).
//
// One EventLog object is one SQLite connection. Writes come from a single writer (the
// engine's thread); readers open their own EventLog (WAL lets them read while the writer
// appends). Not thread-safe: use one object per thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/engine/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace runrec::engine {

constexpr int kSchemaVersion = 1;

// Event types (docs/event-log.md).
namespace event {
inline constexpr const char* kRunCreated = "runCreated";
inline constexpr const char* kRunStarted = "runStarted";
inline constexpr const char* kCommandStarted = "commandStarted";
inline constexpr const char* kCommandSucceeded = "commandSucceeded";
inline constexpr const char* kCommandFailed = "commandFailed";
inline constexpr const char* kRunPaused = "runPaused";
inline constexpr const char* kRunResumed = "runResumed";
inline constexpr const char* kRunStopRequested = "runStopRequested";
inline constexpr const char* kCleanupStarted = "cleanupStarted";
inline constexpr const char* kBusMessageRejected = "busMessageRejected";
inline constexpr const char* kCommandsDiscarded = "commandsDiscarded";
inline constexpr const char* kRunFinished = "runFinished";  // the one terminal event
}  // namespace event

struct Event {
  std::string runId;
  std::int64_t seq = 0;       // 1..n per run, no gaps
  std::string type;
  std::string ts;             // ISO 8601 UTC, microseconds: 2026-11-25T21:47:16.123456Z
  std::string commandId;      // command events only, else empty
  nlohmann::json payload = nlohmann::json::object();
};

// Current time as an ISO 8601 UTC timestamp with microseconds.
std::string nowTimestamp();

enum class Sync {
  kNormal,  // WAL + synchronous=NORMAL: survives a process crash; a power cut may lose the
            // last transactions (never corrupts)
  kFull,    // WAL + synchronous=FULL: every commit is fsynced; survives a power cut
};
std::optional<Sync> parseSync(std::string_view text);
const char* toString(Sync sync);

struct LogOptions {
  Sync sync = Sync::kNormal;
  bool readOnly = false;
  bool create = true;  // create the file if missing (ignored when readOnly)
};

struct RunRow {
  std::string runId;
  std::string createdAt;
  std::string protocolName;
  std::string protocolSha256;
  std::string robot;
};

class EventLog {
 public:
  // Opens (and creates or migrates) a log. A file that is not a runrec log, is damaged,
  // or was written by a newer version gives a clear error naming the file and problem.
  static Result<std::unique_ptr<EventLog>> open(const std::filesystem::path& path,
                                                LogOptions options = {});
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // --- writing (single writer) ---
  // Explicit transactions: append() requires one to be open.
  Status begin();
  Status commit();
  Status rollback();
  bool inTransaction() const { return inTx_; }

  // Registers a run and stores its protocol text (deduplicated by SHA-256).
  Status createRun(const RunRow& run, const std::string& protocolFileName,
                   const std::string& protocolText);
  // The same, reading the protocol text from `protocolFile` (a streamed protocol: the runner
  // does not hold it). Its SHA-256 must be run.protocolSha256. Files up to 8 MiB are stored
  // as TEXT like createRun's; larger ones as a BLOB of the same bytes, written in 1 MiB
  // pieces (SQLite's incremental I/O), so memory stays flat however large the file.
  Status createRunFromFile(const RunRow& run, const std::string& protocolFileName,
                           const std::filesystem::path& protocolFile);
  // Appends one event. Its seq must be the run's last seq + 1 (enforced by the schema).
  Status append(const Event& event);
  // The same, with the payload already encoded: `payloadJson` must be event.payload as
  // compact JSON (the engine encodes each payload once, for the log and for subscribers).
  Status append(const Event& event, std::string_view payloadJson);

  // --- reading ---
  Result<std::vector<RunRow>> runs();  // newest first
  Result<RunRow> run(const std::string& runId);
  // Resolves a full id, a unique prefix, or "last" (the newest run).
  Result<std::string> resolveRunId(const std::string& idOrPrefix);
  // Events of a run with seq >= fromSeq, at most `limit` (-1: all), in seq order.
  Result<std::vector<Event>> events(const std::string& runId, std::int64_t fromSeq = 1,
                                    std::int64_t limit = -1);
  // The same events one at a time, without holding them all: `visit` sees each in seq
  // order (its Event may be moved from); its first error stops the read and is returned.
  Status forEachEvent(const std::string& runId, const std::function<Status(Event&)>& visit,
                      std::int64_t fromSeq = 1);
  Result<std::int64_t> lastSeq(const std::string& runId);
  // Run-level events only (not command events): cheap even for very long runs.
  Result<std::vector<Event>> runLevelEvents(const std::string& runId);
  // Number of events of each type in a run.
  Result<std::map<std::string, std::int64_t>> countByType(const std::string& runId);
  // The terminal event of a run, if it has one.
  Result<std::optional<Event>> terminalEvent(const std::string& runId);
  // Runs without a terminal event (still running, or the process died).
  Result<std::vector<std::string>> unfinishedRuns();
  Result<std::string> protocolText(const std::string& sha256);

  // Bytes of the database file (+ WAL), for benchmarks.
  std::uint64_t fileBytes() const;

 private:
  EventLog(std::filesystem::path path, sqlite3* db);
  Status exec(const char* sql);
  Status insertRunRow(const RunRow& run);
  Status initSchema(const LogOptions& options);
  Status prepare();
  Status forEachEvent(const std::string& runId, const std::function<Status(Event&)>& visit, std::int64_t fromSeq,
                      std::int64_t limit);
  Status step(sqlite3_stmt* st, const char* what);
  Error sqlError(const std::string& what) const;

  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  bool inTx_ = false;
  sqlite3_stmt* insertEvent_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* selectEvents_ = nullptr;
};

}  // namespace runrec::engine
