// The log follower: folds a run's committed events from the log, on its own thread and its
// own read-only SQLite connection, while the run goes on. Cleanup reads the fold of the
// committed log (docs/state-machine.md); the follower has already folded all but the last
// few milliseconds of it, so the writer thread (which feeds the robot) neither re-reads the
// whole run nor leaves the board idle while it does.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runrec/engine/error.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/state.hpp"

namespace runrec::engine {

struct FollowedFold {
  RunState state;
  std::vector<FoldIssue> issues;
};

class LogFollower {
 public:
  // Opens `db` read-only and starts following `runId`, reading what has been committed every
  // `period` (the follower never waits on the writer, and the writer never waits on it).
  static Result<std::unique_ptr<LogFollower>> start(const std::filesystem::path& db, std::string runId,
                                                    std::chrono::milliseconds period);
  ~LogFollower();
  LogFollower(const LogFollower&) = delete;
  LogFollower& operator=(const LogFollower&) = delete;

  // Stops the thread, folds whatever was committed since its last read (on the caller's
  // thread), and hands over the fold: every committed event of the run, in order. The log
  // must hold everything the caller wrote (commit first). An error means the log could not
  // be read or an event is damaged; the caller should fold from scratch to report it.
  Result<FollowedFold> finish();

  // Events folded so far (for tests and diagnostics).
  std::int64_t foldedSeq() const;

 private:
  LogFollower(std::unique_ptr<EventLog> log, std::string runId, std::chrono::milliseconds period);
  void loop();
  Status catchUp();  // reads and folds the events after fold_.state.lastSeq

  std::unique_ptr<EventLog> log_;
  std::string runId_;
  std::chrono::milliseconds period_;

  // Touched only by the thread until finish() has joined it.
  FollowedFold fold_;
  std::optional<Error> error_;
  std::atomic<std::int64_t> foldedSeq_{0};

  std::mutex stopMutex_;
  std::condition_variable stopCv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace runrec::engine
