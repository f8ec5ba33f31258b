// The engine: takes commands from the bus, records every event in the log, drives the robot.
//
// Threading: Engine owns one writer thread, started by start(). That thread alone uses the
// log connection, the robot and the command server. Other threads may call
// requestShutdown(), hold()/release() and wait(); nothing else.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "runrec/bus/channel.hpp"
#include "runrec/bus/curve.hpp"
#include "runrec/engine/error.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/state.hpp"
#include "runrec/hardware/modules.hpp"
#include "runrec/hardware/robot.hpp"

namespace runrec::engine {

// When the engine commits a protocol command's `commandStarted` (docs/event-log.md,
// "Commit policy").
enum class CommitPolicy {
  // Before the robot acts on every command: a crash loses no executed command.
  kEach,
  // The default. Before the robot acts on any command that changes what cleanup or recovery needs (tips,
  // pipettes, labware, modules, pauses) and whenever the last commit is older than
  // `commitWindow`; otherwise motion and liquid commands share one commit. Also commits
  // before the engine waits for the bus, on a failure, pause or stop, and before cleanup.
  // A crash may lose the events of the motion/liquid commands started within one window
  // after the last commit (and the one in progress), never the start of a tip, pipette,
  // labware or module command;
  // never a tip, pipette, labware or module change; recovery is unaffected.
  kGroup,
};
std::optional<CommitPolicy> parseCommitPolicy(std::string_view text);
const char* toString(CommitPolicy policy);

struct EngineOptions {
  std::filesystem::path dbPath = "runrec.db";
  Sync sync = Sync::kNormal;
  CommitPolicy commit = CommitPolicy::kGroup;
  std::chrono::microseconds commitWindow{5000};
  // kGroup: commit at the latest after this many uncommitted events.
  int commitMaxEvents = 1024;
  std::string endpoint = "inproc://runrec-engine";
  bus::ChannelOptions channel;
  int maxRuns = -1;  // serve this many runs, then stop (-1: until shutdown)
  // After a command fails the engine waits this long for the runner's `end`.
  std::chrono::milliseconds endTimeout{10000};
  std::vector<std::filesystem::path> labwareDirs;
  // Run control (REQ/REP): "" binds bus::controlEndpoint(endpoint); "none" binds nothing.
  std::string controlEndpoint;
  // After a run (and its tip drop): home the robot, or leave it where it is.
  enum class PostRun { kHome, kStay } postRun = PostRun::kHome;
  // waitForResume in a protocol: true records a pause and resumes at once (simulation);
  // false waits for a `resume` on the control endpoint.
  bool autoResume = true;
  // Live events (docs/events-wire.md): publish every event after it is committed on a PUB
  // socket bound here ("" = publish nothing), and answer history requests on
  // historyEndpoint ("" = bus::historyEndpoint(eventsEndpoint)) from its own thread and its
  // own read-only connection to the log. eventsHwm: messages queued per subscriber; a
  // subscriber further behind misses live events and backfills them from history.
  std::string eventsEndpoint;
  std::string historyEndpoint;
  int eventsHwm = 10000;
  // Modules (docs/modules.md): which device serves each module a run loads. nullptr:
  // in-process virtual modules. Owned with the engine; used by its writer thread only.
  std::shared_ptr<hardware::ModuleHub> modules;
  // CURVE on both event endpoints (--curve-keys): only clients its ZAP handler admits can
  // subscribe or read history. nullptr = plain. Must be started on the engine's Context.
  std::shared_ptr<bus::CurveServer> eventsCurve;
};

// The run summary (docs/cli-json.md): what `runrec run --json` prints and the body of the
// bus `finished` message. `protocolCommands` is the protocol's command count when known.
nlohmann::json summaryJson(const RunState& state, const RunRow* row = nullptr);

// The live-event body of `event` (docs/events-wire.md) built around its payload already
// encoded as compact JSON: byte for byte bus::encodeEvent(toRunEvent(event)), without
// encoding the payload a second time.
std::string encodeLiveEvent(const Event& event, std::string_view payloadJson);

class Engine {
 public:
  // Opens the log (closing any unfinished run as `interrupted`) and binds the endpoint.
  static Result<std::unique_ptr<Engine>> create(bus::Context& ctx, EngineOptions options,
                                                std::unique_ptr<hardware::Robot> robot);
  ~Engine();

  // Starts the writer thread.
  void start();
  // Asks the writer thread to stop after the command in progress; an open run ends `stopped`.
  void requestShutdown();
  // Stops the open run after the command in progress (as a control `stop` does), recording
  // who asked; the engine keeps serving. Thread-safe; returns false if already stopping.
  bool requestStop(const std::string& requestedBy);
  // The control endpoint bound ("" when none).
  std::string controlEndpoint() const;
  // The event and history endpoints bound ("" when none).
  std::string eventsEndpoint() const;
  std::string historyEndpoint() const;
  // Waits for the writer thread to end; returns its final status.
  Status wait();

  // Test hook: while held, the engine does not take commands from the bus.
  void hold();
  void release();

  // The runs this engine closed as interrupted when it opened the log.
  const std::vector<std::string>& recoveredRuns() const { return recovered_; }

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::vector<std::string> recovered_;
};

}  // namespace runrec::engine
