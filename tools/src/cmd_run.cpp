// `runrec run`, `runrec engine` and `runrec seed`.
#include <spdlog/spdlog.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>
#include <thread>
#include <iostream>

#include "cli_common.hpp"
#include "cli_modules.hpp"
#include "runrec/bus/channel.hpp"
#include "runrec/bus/control.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/hardware/thread_priority.hpp"
#include "runrec/runner/protocol.hpp"
#include "runrec/runner/python.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"

namespace runrec::cli {

using nlohmann::json;

namespace {

struct RobotOptions {
  std::string robot = "sim";
};

engine::Result<std::unique_ptr<hardware::Robot>> makeRobot(const std::string& spec) {
  // sim: the Smoothie driver on the in-process virtual board (every move is G-code,
  // generated and parsed); sim-basic: the bookkeeping-only SimRobot.
  if (spec == "sim") return hardware::makeSimulatedSmoothieRobot();
  if (spec == "sim-basic") return std::unique_ptr<hardware::Robot>(std::make_unique<hardware::SimRobot>());
  if (spec.rfind("serial:", 0) == 0 && spec.size() > 7) {
    auto robot = hardware::makeSerialSmoothieRobot(spec.substr(7));
    if (!robot) return engine::fail(engine::ErrorCode::kInvalid, "--robot " + spec + ": " + robot.error().message);
    return std::move(*robot);
  }
  return engine::fail(engine::ErrorCode::kInvalid, "--robot " + spec + ": expected \"sim\", \"sim-basic\" or \"serial:DEVICE\"");
}

constexpr const char* kPriorityHelp =
    "Scheduling of the engine thread that feeds the robot: realtime (SCHED_FIFO 10 when permitted, else nice -10, "
    "else a warning), normal, or auto: realtime when the robot moves in real time (serial:), normal for the "
    "instant simulator (docs/hardware.md)";

// Starts the engine with its writer thread (the one that feeds the board) at `spec`'s
// priority: Engine::start() creates it, and it inherits the raise of this scope.
void startWithPriority(engine::Engine& eng, const std::string& spec, const std::string& robot) {
  auto priority = hardware::resolveFeedPriority(*hardware::parseFeedPriority(spec), hardware::robotMovesInRealTime(robot));
  hardware::ScopedThreadPriority raise(priority);
  if (!raise.outcome().warning.empty()) std::cerr << "runrec: warning: " << raise.outcome().warning << "\n";
  eng.start();
}

// Prints "command i of N" progress to stderr, at most 5 times a second.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  void update(const runner::Progress& p) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (p.completed != p.total && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    double rate = p.elapsedSeconds > 0 ? p.completed / p.elapsedSeconds : 0;
    double pct = p.total ? 100.0 * p.completed / p.total : 0;
    if (p.total == 0)  // a Python protocol: the count is not known in advance
      std::fprintf(stderr, "\r  command %llu, %s commands/s   ", (unsigned long long)p.completed, formatRate(rate).c_str());
    else
      std::fprintf(stderr, "\r  command %llu of %llu (%.1f%%), %s commands/s   ", (unsigned long long)p.completed,
                   (unsigned long long)p.total, pct, formatRate(rate).c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void done() {
    if (drawn_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

void printSummary(const json& s, const std::string& db) {
  const json& c = s["counts"];
  auto n = [](const json& v) { return v.is_number() ? std::to_string(v.get<long long>()) : std::string("?"); };
  std::cout << "Run        " << s.value("runId", "") << "\n";
  std::cout << "Status     " << s.value("status", "") << "\n";
  if (s.contains("reason") && s["reason"].is_string() && s["status"] != "succeeded")
    std::cout << "Reason     " << s["reason"].get<std::string>() << "\n";
  if (s.contains("error") && s["error"].is_object())
    std::cout << "Error      " << s["error"].value("errorType", "") << ": " << s["error"].value("message", "") << "\n";
  std::cout << "Protocol   " << s.value("protocolName", "") << "\n";
  std::cout << "Commands   " << n(c["succeeded"]) << " of " << n(c["protocolCommands"]) << " succeeded, "
            << n(c["failed"]) << " failed, " << n(c["discarded"]) << " discarded\n";
  std::cout << "Wall time  " << formatDuration(s["durationSeconds"]);
  if (s["commandsPerSecond"].is_number())
    std::cout << "  (" << formatRate(s["commandsPerSecond"].get<double>()) << " commands/s, "
              << n(s["events"]) << " events)";
  std::cout << "\n";
  std::cout << "Log        " << db << "  (runrec show " << s.value("runId", "").substr(0, 8) << ")\n";
}

std::atomic<engine::Engine*> gEngine{nullptr};

// The first 4 KiB of a file ("" if unreadable): enough to tell Python from JSON.
std::string readHead(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

// --commit and --commit-window (docs/event-log.md, "Commit policy").
struct CommitFlags {
  std::string policy = "group";
  double windowMs = 5;
};

void addCommitOptions(CLI::App* cmd, CommitFlags& f) {
  cmd->add_option("--commit", f.policy,
                  "When a command's start is committed: each (before the robot acts on every command) or group "
                  "(tip, pipette, labware, module and pause commands still commit first; motion and liquid "
                  "commands share a commit for up to --commit-window; a crash may lose those started within one window after the last commit)")
      ->check(CLI::IsMember({"each", "group"}))
      ->capture_default_str();
  cmd->add_option("--commit-window", f.windowMs,
                  "With --commit group: the longest time, in ms, executed commands may wait uncommitted")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
}

void applyCommit(const CommitFlags& f, engine::EngineOptions& eo) {
  eo.commit = *engine::parseCommitPolicy(f.policy);
  eo.commitWindow = std::chrono::microseconds(static_cast<long long>(f.windowMs * 1000));
}

}  // namespace

void addRunCommand(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string protocol;
    bool json = false;
    int hwm = bus::kDefaultHwm;
    std::string connect;
    std::string robot = "sim";
    std::string priority = "auto";
    std::string sync = "normal";
    CommitFlags commit;
    std::vector<std::string> labwareDirs;
    std::string progress = "auto";
    double timeout = 0;
    std::string postRun = "home";
    std::string onPause = "continue";
    ModuleFlags modules;  // docs/modules.md
    EventsFlags events;  // live events (docs/events-wire.md)
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("run", "Run a protocol and record it (simulated OT-2 by default)");
  cmd->description(
      "Run a protocol and record every event in the log.\n"
      "By default the engine runs inside this process on a simulated OT-2 and records to\n"
      "--db. With --connect, commands go to a separate `runrec engine` instead (which owns\n"
      "its own log and robot). Prints progress while running and a summary at the end;\n"
      "exits 1 if the run did not succeed.");
  cmd->add_option("protocol", o->protocol,
                  "Opentrons protocol: JSON (schema 6, 7 or 8) or Python (Protocol API v2, a .py file; "
                  "docs/python-protocols.md)")
      ->required();
  cmd->add_option("--db", g.db, "SQLite log file (created if missing)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the run summary as JSON (docs/cli-json.md)");
  cmd->add_option("--hwm", o->hwm,
                  "High-water mark N: at most N commands are sent but unfinished at any time")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--connect", o->connect, "Send commands to a running `runrec engine` at this endpoint "
                                           "(ipc://PATH or tcp://HOST:PORT)");
  cmd->add_option("--robot", o->robot, "Robot: sim (simulated OT-2) or serial:DEVICE")->capture_default_str();
  cmd->add_option("--priority", o->priority, kPriorityHelp)
      ->check(CLI::IsMember({"auto", "realtime", "normal"}))
      ->capture_default_str();
  cmd->add_option("--sync", o->sync, "Log durability: normal (survives a process crash) or full "
                                     "(fsync each commit, survives a power cut)")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  addCommitOptions(cmd, o->commit);
  cmd->add_option("--labware-dir", o->labwareDirs, "Folder of custom labware definitions (loadName/version.json)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--progress", o->progress, "Progress on stderr: auto (when stderr is a terminal), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Give up if the engine does not answer for this many seconds (0: wait)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--post-run", o->postRun, "After the run (and dropping any tip in the trash): home, or stay")
      ->check(CLI::IsMember({"home", "stay"}))
      ->capture_default_str();
  cmd->add_option("--on-pause", o->onPause,
                  "A protocol's waitForResume: continue (record the pause, resume at once) or wait for "
                  "`runrec control resume`")
      ->check(CLI::IsMember({"continue", "wait"}))
      ->capture_default_str();
  addEventsOptions(cmd, o->events);
  addModuleOptions(cmd, o->modules);
  cmd->footer("Ctrl-C stops the run after the command in progress; cleanup still drops any tip and homes.\n"
              "While it runs: `runrec control pause|resume|stop|status --db FILE` (or --connect ENDPOINT).");
  cmd->callback([o, &g, &exitCode] {
    // Signals are blocked before any thread exists (ZeroMQ's, the engine's), then taken by
    // the watcher thread: Ctrl-C asks for a stop instead of killing the process.
    struct StopTarget {
      std::atomic<engine::Engine*> engine{nullptr};
      std::string connect;
    };
    auto stopTarget = std::make_shared<StopTarget>();
    stopTarget->connect = o->connect;
    std::optional<StopOnSignal> stopper;
    stopper.emplace("run", [stopTarget] {
      std::string who = whoAmI("Ctrl-C in runrec run");
      if (auto* e = stopTarget->engine.load()) {
        e->requestStop(who);
        return;
      }
      if (stopTarget->connect.empty()) return;  // not started yet
      auto ep = bus::controlEndpoint(stopTarget->connect);
      if (!ep) return;
      bus::Context own;  // this thread's own sockets
      auto answer = bus::controlRequest(own, *ep, {{"action", "stop"}, {"requestedBy", who}});
      if (!answer) std::cerr << "runrec: could not ask the engine to stop: " << answer.error().message << "\n";
    });
    // A Python protocol (by extension or content) runs in the embedded interpreter.
    std::optional<runner::PythonProtocol> python;
    runner::Result<runner::Protocol> protocol = tl::unexpected(runner::Error{runner::ErrorCode::kIo, ""});
    if (runner::looksLikePython(o->protocol, readHead(o->protocol))) {
      auto p = runner::loadPythonProtocol(o->protocol);
      if (!p) {
        exitCode = error(kBadInput, p.error().message);
        return;
      }
      python = std::move(*p);
    } else {
      // In process the engine sees the runner's files: the protocol is streamed (never whole
      // in memory; docs/performance.md, "Scale"). An engine elsewhere gets the text.
      protocol = o->connect.empty() ? runner::openProtocol(o->protocol) : runner::loadProtocol(o->protocol);
      if (!protocol) {
        exitCode = error(kBadInput, protocol.error().message);
        return;
      }
    }
    bus::Context ctx;
    bus::ChannelOptions channel;
    channel.hwm = o->hwm;
    std::unique_ptr<engine::Engine> eng;
    std::string endpoint = o->connect;
    if (endpoint.empty()) {
      auto robot = makeRobot(o->robot);
      if (!robot) {
        exitCode = error(kBadInput, robot.error().message);
        return;
      }
      engine::EngineOptions eo;
      eo.dbPath = g.db;
      eo.sync = *engine::parseSync(o->sync);
      applyCommit(o->commit, eo);
      eo.endpoint = "inproc://runrec-engine-" + std::to_string(::getpid());
      eo.channel = channel;
      eo.maxRuns = 1;
      eo.controlEndpoint = localControlEndpoint(g.db);
      eo.postRun = o->postRun == "stay" ? engine::EngineOptions::PostRun::kStay : engine::EngineOptions::PostRun::kHome;
      eo.autoResume = o->onPause == "continue";
      if (int rc = configureEvents(o->events, g.db, ctx, eo); rc != kOk) {  // live events
        exitCode = rc;
        return;
      }
      if (int rc = configureModules(o->modules, eo); rc != kOk) {  // docs/modules.md
        exitCode = rc;
        return;
      }
      for (auto& d : o->labwareDirs) eo.labwareDirs.emplace_back(d);
      auto created = engine::Engine::create(ctx, eo, std::move(*robot));
      if (!created) {
        exitCode = error(created.error().code == engine::ErrorCode::kCorrupt ? kBadInput : kSystemError,
                         created.error().message);
        return;
      }
      eng = std::move(*created);
      for (auto& r : eng->recoveredRuns())
        std::cerr << "runrec: run " << r << " in " << g.db << " had no end (crash?); recorded it as interrupted\n";
      endpoint = eo.endpoint;
      startWithPriority(*eng, o->priority, o->robot);
    } else if (!o->events.events.empty() || !o->events.curveKeys.empty() || o->events.insecure) {
      exitCode = error(kBadInput, "--events, --curve-keys and --insecure belong to the engine; with --connect, pass "
                                  "them to `runrec engine`");
      return;
    } else if (o->modules.given()) {
      exitCode = error(kBadInput, "--modules, --module and --module-time-scale belong to the engine; with --connect, "
                                  "pass them to `runrec engine`");
      return;
    } else if (!o->labwareDirs.empty() || o->robot != "sim" || o->sync != "normal" || o->postRun != "home" ||
               o->onPause != "continue" || o->commit.policy != "group" || o->commit.windowMs != 5) {
      exitCode = error(kBadInput, "--robot, --sync, --commit, --commit-window, --labware-dir, --post-run and --on-pause "
                                  "belong to the engine; "
                                  "with --connect, pass them to `runrec engine`");
      return;
    }
    auto client = bus::CommandClient::connect(ctx, endpoint, channel);
    if (!client) {
      if (eng) eng->requestShutdown();
      exitCode = error(kBadInput, client.error().message);
      return;
    }
    bool show = o->progress == "always" || (o->progress == "auto" && ::isatty(STDERR_FILENO) && !o->json);
    ProgressLine line(show);
    runner::RunOptions ro;
    ro.onProgress = [&line](const runner::Progress& p) { line.update(p); };
    if (o->timeout > 0) ro.timeout = std::chrono::milliseconds(static_cast<long long>(o->timeout * 1000));
    stopTarget->engine.store(eng.get());
    runner::Result<runner::RunResult> result = tl::unexpected(runner::Error{runner::ErrorCode::kBus, ""});
    if (python) {
      runner::PythonRunOptions po;
      po.onProgress = ro.onProgress;
      po.timeout = ro.timeout;
      for (auto& d : o->labwareDirs) po.labwareDirs.emplace_back(d);
      // A protocol busy in its own Python code is interrupted when the engine says the run
      // was stopped (Ctrl-C here, or `runrec control stop`).
      std::string ep = o->connect.empty() ? localControlEndpoint(g.db) : bus::controlEndpoint(o->connect).value_or("");
      if (!ep.empty())
        po.stopRequested = [ep, answered = std::make_shared<bool>(false)](const std::string& runId) {
          bus::Context own;
          auto a = bus::controlRequest(own, ep, {{"action", "status"}, {"requestedBy", "runrec run (Python protocol)"}},
                                       std::chrono::seconds(2));
          // An engine that answered before and no longer does has ended the run and gone
          // (an in-process engine serves one run, then closes its control socket).
          if (!a || !a->is_object()) return *answered;
          *answered = true;
          const json& run = (*a)["run"];
          if (!run.is_object()) return true;  // no run open: ours has ended
          if (run.value("runId", runId) != runId) return true;
          return run.value("stopping", false);
        };
      result = runner::runPythonProtocol(**client, *python, po);
    } else {
      result = runner::runProtocol(**client, *protocol, ro);
    }
    line.done();
    client->reset();
    if (eng) {
      if (!result) eng->requestShutdown();
      auto st = eng->wait();
      stopTarget->engine.store(nullptr);
      if (!st) {
        exitCode = error(kSystemError, "engine: " + st.error().message);
        return;
      }
    }
    if (!result) {
      exitCode = error(kSystemError, result.error().message);
      return;
    }
    json summary = result->summary;
    summary["db"] = o->connect.empty() ? json(g.db) : json();
    summary["runner"] = {{"wallSeconds", result->wallSeconds},
                         {"sent", result->sent},
                         {"hwm", o->hwm},
                         {"maxInFlight", result->maxInFlight}};
    if (o->json)
      printJson(summary);
    else
      printSummary(summary, o->connect.empty() ? g.db : "(engine at " + o->connect + ")");
    exitCode = result->succeeded() ? kOk : kRunNotSucceeded;
  });
}

void addEngineCommand(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string listen;
    std::string robot = "sim";
    std::string priority = "auto";
    std::string sync = "normal";
    CommitFlags commit;
    int hwm = bus::kDefaultHwm;
    int runs = -1;
    std::vector<std::string> labwareDirs;
    std::string postRun = "home";
    std::string onPause = "wait";
    ModuleFlags modules;  // docs/modules.md
    EventsFlags events;  // live events (docs/events-wire.md)
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("engine", "Serve runs from other processes (`runrec run --connect`)");
  cmd->description(
      "Run the engine as its own process: it binds ENDPOINT, takes one run at a time from\n"
      "`runrec run --connect ENDPOINT`, records it in --db and drives --robot.\n"
      "Stops on Ctrl-C / SIGTERM (an open run ends as stopped) or after --runs runs.");
  cmd->add_option("--listen", o->listen, "Endpoint to bind: ipc://PATH or tcp://HOST:PORT (outcomes use "
                                         "PATH.out / PORT+1)")
      ->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_option("--robot", o->robot, "Robot: sim or serial:DEVICE")->capture_default_str();
  cmd->add_option("--priority", o->priority, kPriorityHelp)
      ->check(CLI::IsMember({"auto", "realtime", "normal"}))
      ->capture_default_str();
  cmd->add_option("--sync", o->sync, "Log durability: normal or full")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  addCommitOptions(cmd, o->commit);
  cmd->add_option("--hwm", o->hwm, "Receive high-water mark (the runner's --hwm sets its credit window)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--runs", o->runs, "Exit after serving this many runs (default: until stopped)");
  cmd->add_option("--post-run", o->postRun, "After each run (and dropping any tip in the trash): home, or stay")
      ->check(CLI::IsMember({"home", "stay"}))
      ->capture_default_str();
  addModuleOptions(cmd, o->modules);
  cmd->add_option("--on-pause", o->onPause, "A protocol's waitForResume: wait for `runrec control resume`, or continue")
      ->check(CLI::IsMember({"continue", "wait"}))
      ->capture_default_str();
  cmd->add_option("--labware-dir", o->labwareDirs, "Folder of custom labware definitions (loadName/version.json)")
      ->check(CLI::ExistingDirectory);
  addEventsOptions(cmd, o->events);
  cmd->callback([o, &g, &exitCode] {
    // Ctrl-C / SIGTERM: an open run ends `stopped` (after cleanup), then the engine exits.
    StopOnSignal stopper("engine", [] {
      if (auto* e = gEngine.load()) e->requestShutdown();
    });
    auto robot = makeRobot(o->robot);
    if (!robot) {
      exitCode = error(kBadInput, robot.error().message);
      return;
    }
    bus::Context ctx;
    engine::EngineOptions eo;
    eo.dbPath = g.db;
    eo.sync = *engine::parseSync(o->sync);
    applyCommit(o->commit, eo);
    eo.endpoint = o->listen;
    eo.channel.hwm = o->hwm;
    eo.maxRuns = o->runs;
    eo.postRun = o->postRun == "stay" ? engine::EngineOptions::PostRun::kStay : engine::EngineOptions::PostRun::kHome;
    eo.autoResume = o->onPause == "continue";
    if (int rc = configureEvents(o->events, g.db, ctx, eo); rc != kOk) {  // live events
      exitCode = rc;
      return;
    }
    if (int rc = configureModules(o->modules, eo); rc != kOk) {  // docs/modules.md
      exitCode = rc;
      return;
    }
    for (auto& d : o->labwareDirs) eo.labwareDirs.emplace_back(d);
    auto created = engine::Engine::create(ctx, eo, std::move(*robot));
    if (!created) {
      exitCode = error(created.error().code == engine::ErrorCode::kBus ? kBadInput : kSystemError,
                       created.error().message);
      return;
    }
    auto& eng = *created;
    for (auto& r : eng->recoveredRuns())
      std::cerr << "runrec: run " << r << " had no end (crash?); recorded it as interrupted\n";
    gEngine.store(eng.get());
    std::cerr << "runrec engine: listening on " << o->listen << " (control " << eng->controlEndpoint() << "), log "
              << g.db << ", robot " << o->robot << "\n";
    if (!eng->eventsEndpoint().empty())
      std::cerr << "runrec engine: events on " << eng->eventsEndpoint() << " (history " << eng->historyEndpoint()
                << ")\n";
    startWithPriority(*eng, o->priority, o->robot);
    auto st = eng->wait();
    gEngine.store(nullptr);
    if (!st) exitCode = error(kSystemError, st.error().message);
  });
}

void addSeedCommand(CLI::App& app, int& exitCode) {
  struct Opts {
    int touches = 10000;
    std::string output = "-";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("seed", "Write the touch-tip stress protocol (JSON schema 8)");
  cmd->description(
      "Write Opentrons PR #16098's stress test as a JSON protocol: p300_single_gen2 (right),\n"
      "a 300 µL tip rack in slot 1, a Bio-Rad PCR plate in slot 2; pick up the tip at A1,\n"
      "touch tip N times at H12, return the tip to A1. Labware definitions are runrec's own.");
  cmd->add_option("-n,--touches", o->touches, "Number of touchTip commands")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "Output file (- for stdout)")->capture_default_str();
  cmd->callback([o, &exitCode] {
    json p = runner::makeSeedProtocol(o->touches);
    if (p.is_null()) {
      exitCode = error(kSystemError, "the built-in labware library lacks the seed protocol's labware");
      return;
    }
    // One command per line keeps the file readable and diffable.
    json commands = std::move(p["commands"]);
    p.erase("commands");
    std::string text = p.dump(2);
    text.pop_back();  // the closing brace
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    text += ",\n  \"commands\": [\n";
    for (size_t i = 0; i < commands.size(); ++i)
      text += "    " + commands[i].dump() + (i + 1 < commands.size() ? ",\n" : "\n");
    text += "  ]\n}\n";
    if (o->output == "-") {
      std::cout << text;
    } else {
      std::ofstream out(o->output, std::ios::binary);
      out << text;
      if (!out) {
        exitCode = error(kSystemError, o->output + ": cannot write");
        return;
      }
    }
  });
}

}  // namespace runrec::cli
