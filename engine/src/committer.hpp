// The engine's log thread. Under `--commit group` the writer thread hands each group of
// motion and liquid events to it; it appends and commits them on the engine's connection
// while the writer thread drives the next commands, then runs the engine's after-commit step
// (publishing the group's live events). One group is in flight at a time, and the writer
// takes the connection (and the event socket) back with take() before it uses them itself.
// What may run ahead of the log is unchanged (docs/event-log.md, "Durability"): the
// writer never acts on a command whose start is uncommitted unless it is a motion or liquid
// command started within the window of the last completed commit.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runrec/engine/error.hpp"
#include "runrec/engine/event_log.hpp"

namespace runrec::engine {

// An event appended to the log but not yet committed. `payload` is its JSON text as appended
// (the event's own payload has been moved into the run state).
struct PendingEvent {
  Event event;
  std::string payload;
};

// Appends `events` in one transaction (joining one already open) and commits it. On failure
// the transaction is left as SQLite left it; the caller rolls back.
Status appendAndCommit(EventLog& log, const std::vector<PendingEvent>& events);

class Committer {
 public:
  using Clock = std::chrono::steady_clock;

  // `afterCommit` runs on the thread after each group it commits, when submit() asked
  // for it (the engine publishes the group's live events there).
  using AfterCommit = std::function<void(const std::vector<PendingEvent>&)>;
  explicit Committer(EventLog& log, AfterCommit afterCommit = {});
  ~Committer();  // waits for the group in flight, then stops the thread
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Hands a group to the thread. Only when nothing is in flight (inFlight() is false).
  // `afterCommit`: run the AfterCommit once the group is committed.
  void submit(std::vector<PendingEvent> events, bool afterCommit = false);
  bool inFlight() const { return inFlight_; }
  // Readable once the group in flight is done (an eventfd; take() reads it): for a poll
  // that waits for the bus and for the commit at once.
  int wakeFd() const { return wakeFd_; }
  // Events in the group in flight.
  std::size_t inFlightEvents() const { return inFlightEvents_; }

  struct Done {
    std::vector<PendingEvent> events;  // the group, returned (for its capacity, or to retry)
    Status status;
    Clock::time_point committedAt;
  };
  // The group in flight once it is done: at once if it is (or `wait`), else nullopt. After
  // it returns a Done, the connection is the caller's until the next submit.
  std::optional<Done> take(bool wait);

 private:
  void loop();

  EventLog& log_;
  AfterCommit afterCommit_;
  int wakeFd_ = -1;
  bool inFlight_ = false;  // the writer's view: submitted and not yet taken
  std::size_t inFlightEvents_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool submitted_ = false;       // a group waits for the thread
  bool runAfterCommit_ = false;
  std::atomic<bool> done_{false};  // the thread finished the group (read without the lock)
  bool writerWaits_ = false;
  Done work_;
  std::thread thread_;
};

}  // namespace runrec::engine
