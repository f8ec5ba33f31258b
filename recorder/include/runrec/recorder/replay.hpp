// Replaying a recorded run: its protocol commands, as recorded, sent again through the bus
// to an engine, into a new run; and the event-by-event comparison of two runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runrec/bus/channel.hpp"
#include "runrec/engine/event_log.hpp"

namespace runrec::recorder {

// Time for paced replay: real time in production, a fake in tests.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double now() = 0;                  // seconds, monotonic
  virtual void sleepFor(double seconds) = 0;
};
Clock& steadyClock();

struct ReplayCommand {
  std::int64_t seq = 0;        // its commandStarted in the recorded run
  nlohmann::json command;      // {commandType, params, key?} as the runner sends it
  double offsetSeconds = 0;    // recorded start, relative to the first replayed command
};

struct ReplayPlan {
  std::string originalRunId;
  nlohmann::json openBody;     // the bus `open` body: the recorded protocol description
  nlohmann::json engine;       // runCreated.engine of the original (hwm, sync, postRun, autoResume)
  std::string robot;           // the original's robot
  std::vector<ReplayCommand> commands;
  bool partial = false;        // --from/--to cut the run: not comparable event by event
};

// Builds the plan from the log: protocol commands (intent "protocol") in order with their
// recorded params; with from/to, the commands whose commandStarted seq is in [from, to],
// plus every load command (loadPipette, loadLabware, loadModule, loadLiquid) before `from`.
engine::Result<ReplayPlan> planReplay(engine::EventLog& log, const std::string& runId,
                                      std::optional<std::int64_t> from = {}, std::optional<std::int64_t> to = {});

struct ReplayOptions {
  double rate = 0;  // 0: as fast as possible; R > 0: the recorded gaps between starts / R
  Clock* clock = nullptr;  // nullptr: steadyClock()
  std::function<bool()> stopRequested;  // checked while waiting to pace
  std::optional<std::chrono::milliseconds> timeout;
};

struct ReplayResult {
  std::string runId;
  nlohmann::json summary;  // the engine's run summary
  std::uint64_t sent = 0;
  double wallSeconds = 0;
};

// Opens a run with the plan's description and sends its commands (stops after a failed
// outcome, as the runner does), then ends it and waits for the engine's summary.
engine::Result<ReplayResult> replay(bus::CommandClient& client, const ReplayPlan& plan, const ReplayOptions& options = {});

struct Divergence {
  std::int64_t recordedSeq = 0, replayedSeq = 0;  // 0: no such event in that run
  std::string type;       // the recorded event's type (or the replayed one's if none)
  std::string path;       // field path, e.g. "payload.result.position.x", or "type"/"event"
  nlohmann::json recorded, replayed;  // values at `path` (null when absent)
  std::string message() const;
  nlohmann::json toJson() const;
};

struct Comparison {
  std::int64_t compared = 0;  // event pairs compared
  std::optional<Divergence> divergence;
  bool identical() const { return !divergence; }
};

// Compares two runs event by event, ignoring ids and wall-clock values (the list is in
// docs/recorder.md): top-level ts, runId, commandId; anywhere in a payload the keys
// commandId, runId, requestedBy, replayOf, ts and *At / duration fields; commandsDiscarded
// events and runFinished.counts.discarded (how many commands were in flight is timing).
Comparison compareRuns(const std::vector<engine::Event>& recorded, const std::vector<engine::Event>& replayed);

}  // namespace runrec::recorder
