// Shared pieces of the runrec subcommands: options, exit codes, output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <signal.h>

#include "runrec/bus/channel.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/event_log.hpp"

namespace runrec::cli {

// Exit codes (docs/cli-json.md).
enum Exit : int {
  kOk = 0,
  kRunNotSucceeded = 1,  // the run ended failed, stopped or interrupted
  kBadInput = 2,         // bad arguments, invalid protocol file, unknown run id
  kSystemError = 3,      // log, bus or other system failure
};

struct Globals {
  std::string db = "runrec.db";
  std::string logLevel = "warn";
};

// Ctrl-C / SIGTERM while `what` (run, replay, engine) is going: the first calls `stop`
// (the command in progress finishes, cleanup drops any tip and homes), later ones say it
// is already stopping. Construct it before any thread exists: it blocks the signals in the
// calling thread (so threads created later inherit the mask) and takes them on its own.
class StopOnSignal {
 public:
  StopOnSignal(std::string what, std::function<void()> stop);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  std::string what_;
  std::function<void()> stop_;
  sigset_t set_{}, old_{};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// "what (user@host, pid N)": who asked, as recorded in the log.
std::string whoAmI(const std::string& what);

// Opens a log for reading; never creates one.
engine::Result<std::unique_ptr<engine::EventLog>> openForReading(const std::string& db);
// Exit code for a log error: bad input (unknown run, damaged file) or system error.
int exitFor(const engine::Error& e);

// Prints "runrec: <message>" to stderr and returns `code`.
int error(int code, const std::string& message);

void printJson(const nlohmann::json& j);

// "1.23 s", "450 ms", "—"
std::string formatDuration(const nlohmann::json& seconds);
std::string formatRate(double perSecond);

// The control endpoint of an in-process `runrec run` recording to `db`: an ipc socket in
// /tmp named after the log's absolute path, so `runrec control --db FILE` finds it.
std::string localControlEndpoint(const std::string& db);

// The default event endpoint of an engine recording to `db`: ipc:///tmp/runrec-<hash>.events
// (same hash as localControlEndpoint), so `runrec subscribe --db FILE` finds it.
std::string localEventsEndpoint(const std::string& db);
// An --events option: "" -> localEventsEndpoint(db), "none" -> "" (publish nothing), else
// as given.
std::string eventsEndpointFor(const std::string& option, const std::string& db);

// The engine's live-event flags: --events, --curve-keys DIR, --insecure.
struct EventsFlags {
  std::string events;
  std::string curveKeys;
  bool insecure = false;
};
void addEventsOptions(CLI::App* cmd, EventsFlags& flags);
// Sets eo.eventsEndpoint and, with --curve-keys, starts the CURVE server (ZAP handler) on
// `ctx` into eo.eventsCurve. A non-loopback endpoint needs --curve-keys or --insecure.
// Returns kOk, or prints the problem and returns the exit code.
int configureEvents(const EventsFlags& flags, const std::string& db, bus::Context& ctx, engine::EngineOptions& eo);

void addControlCommand(CLI::App& app, Globals& g, int& exitCode);
void addKeysCommand(CLI::App& app, int& exitCode);
void addRunCommand(CLI::App& app, Globals& g, int& exitCode);
void addEngineCommand(CLI::App& app, Globals& g, int& exitCode);
void addInspectCommands(CLI::App& app, Globals& g, int& exitCode);  // runs, show
void addSeedCommand(CLI::App& app, int& exitCode);
void addBenchCommand(CLI::App& app, Globals& g, int& exitCode);
void addSubscribeCommand(CLI::App& app, Globals& g, int& exitCode);
void addBenchEventsCommand(CLI::App& app, Globals& g, int& exitCode);
void addHardwareCommands(CLI::App& app, Globals& g, int& exitCode);  // smoothie, gcode
void addRecorderCommands(CLI::App& app, Globals& g, int& exitCode);  // replay, state, audit, export, verify

}  // namespace runrec::cli
