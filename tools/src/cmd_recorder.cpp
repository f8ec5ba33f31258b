// `runrec replay`, `runrec state`, `runrec audit`, `runrec export` and `runrec verify`:
// recorded runs after the fact (docs/recorder.md).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli_common.hpp"
#include "runrec/bus/channel.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/recorder/audit.hpp"
#include "runrec/recorder/export.hpp"
#include "runrec/recorder/fingerprint.hpp"
#include "runrec/recorder/replay.hpp"
#include "runrec/recorder/report.hpp"

namespace runrec::cli {

using nlohmann::json;

namespace {


// Opens the log and resolves RUN; on failure sets exitCode and returns nullopt.
struct Opened {
  std::unique_ptr<engine::EventLog> log;
  std::string runId;
};
std::optional<Opened> openRun(const std::string& db, const std::string& run, int& exitCode) {
  auto log = openForReading(db);
  if (!log) {
    exitCode = error(exitFor(log.error()), log.error().message);
    return std::nullopt;
  }
  auto id = (*log)->resolveRunId(run);
  if (!id) {
    exitCode = error(exitFor(id.error()), id.error().message);
    return std::nullopt;
  }
  return Opened{std::move(*log), *id};
}

// Writes to FILE, or stdout for "" / "-".
bool writeOutput(const std::string& file, const std::string& text, int& exitCode) {
  if (file.empty() || file == "-") {
    std::cout << text;
    return true;
  }
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) {
    exitCode = error(kSystemError, file + ": cannot write");
    return false;
  }
  return true;
}

engine::Result<std::unique_ptr<hardware::Robot>> makeRobot(const std::string& spec) {
  if (spec == "sim") return hardware::makeSimulatedSmoothieRobot();
  if (spec == "sim-basic") return std::unique_ptr<hardware::Robot>(std::make_unique<hardware::SimRobot>());
  if (spec.rfind("serial:", 0) == 0 && spec.size() > 7) {
    auto robot = hardware::makeSerialSmoothieRobot(spec.substr(7));
    if (!robot) return engine::fail(engine::ErrorCode::kInvalid, "--robot " + spec + ": " + robot.error().message);
    return std::move(*robot);
  }
  return engine::fail(engine::ErrorCode::kInvalid,
                      "--robot " + spec + ": expected \"sim\", \"sim-basic\" or \"serial:DEVICE\"");
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : j.is_null() ? "-" : j.dump(); }

void addReplay(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run;
    std::string robot = "sim";
    double rate = 0;
    bool maxSpeed = false;
    std::int64_t from = 0, to = 0;
    bool json = false;
    EventsFlags events;  // live events, as for `runrec run`
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("replay", "Re-run a recorded run's commands into a new run and compare the two");
  cmd->description(
      "Replay a recorded run: its protocol commands, with the params recorded, go through the\n"
      "bus to an engine on --robot, recorded as a new run in the same log. Then the new run is\n"
      "compared with the original event by event (ids and wall-clock times ignored) and the\n"
      "first divergence is reported. Exits 0 when they match, 1 when they diverge.");
  cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_option("--robot", o->robot, "Robot: sim, sim-basic or serial:DEVICE")->capture_default_str();
  auto* rate = cmd->add_option("--rate", o->rate, "Keep the recorded pacing between commands, R times as fast "
                                                  "(1: as recorded)")
                   ->check(CLI::PositiveNumber);
  cmd->add_flag("--max-speed", o->maxSpeed, "As fast as the robot allows (the default)")->excludes(rate);
  cmd->add_option("--from", o->from, "Replay from the command started at this seq (load commands before it are "
                                     "replayed too); no comparison")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--to", o->to, "Replay up to the command started at this seq; no comparison")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print {originalRunId, replayRunId, summary, comparison} as JSON");
  addEventsOptions(cmd, o->events);
  cmd->footer("Ctrl-C stops the replay after the command in progress; cleanup still drops any tip and homes.");
  cmd->callback([o, &g, &exitCode] {
    std::atomic<engine::Engine*> target{nullptr};
    std::atomic<bool> stopAsked{false};
    StopOnSignal stopper("replay", [&] {
      stopAsked.store(true);
      if (auto* e = target.load()) e->requestStop(whoAmI("Ctrl-C in runrec replay"));
    });
    auto opened = openRun(g.db, o->run, exitCode);
    if (!opened) return;
    auto plan = recorder::planReplay(*opened->log, opened->runId,
                                     o->from ? std::optional<std::int64_t>(o->from) : std::nullopt,
                                     o->to ? std::optional<std::int64_t>(o->to) : std::nullopt);
    if (!plan) {
      exitCode = error(exitFor(plan.error()), plan.error().message);
      return;
    }
    auto robot = makeRobot(o->robot);
    if (!robot) {
      exitCode = error(kBadInput, robot.error().message);
      return;
    }
    // The engine as the original had it (credit window, durability, after-run, pauses).
    bus::Context ctx;
    engine::EngineOptions eo;
    eo.dbPath = g.db;
    eo.sync = plan->engine["sync"] == "full" ? engine::Sync::kFull : engine::Sync::kNormal;
    // Runs recorded before the commit policy existed committed each command.
    eo.commit = plan->engine["commit"] == "group" ? engine::CommitPolicy::kGroup : engine::CommitPolicy::kEach;
    if (auto w = plan->engine.find("commitWindowMs"); w != plan->engine.end() && w->is_number() && *w >= 0)
      eo.commitWindow = std::chrono::microseconds(static_cast<long long>(w->get<double>() * 1000));
    eo.endpoint = "inproc://runrec-replay-" + std::to_string(::getpid());
    eo.channel.hwm = plan->engine.contains("hwm") && plan->engine["hwm"].is_number_integer() ? plan->engine["hwm"].get<int>() : bus::kDefaultHwm;
    eo.maxRuns = 1;
    eo.controlEndpoint = localControlEndpoint(g.db);
    eo.postRun = plan->engine["postRun"] == "stay" ? engine::EngineOptions::PostRun::kStay
                                                                               : engine::EngineOptions::PostRun::kHome;
    eo.autoResume = plan->engine["autoResume"] != false;
    if (int rc = configureEvents(o->events, g.db, ctx, eo); rc != kOk) {
      exitCode = rc;
      return;
    }
    auto created = engine::Engine::create(ctx, eo, std::move(*robot));
    if (!created) {
      exitCode = error(created.error().code == engine::ErrorCode::kCorrupt ? kBadInput : kSystemError,
                       created.error().message);
      return;
    }
    auto& eng = *created;
    eng->start();
    target.store(eng.get());
    auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
    if (!client) {
      eng->requestShutdown();
      eng->wait();
      exitCode = error(kSystemError, client.error().message);
      return;
    }
    recorder::ReplayOptions ro;
    ro.rate = o->maxSpeed ? 0 : o->rate;
    ro.stopRequested = [&] { return stopAsked.load(); };
    auto result = recorder::replay(**client, *plan, ro);
    client->reset();
    if (!result) eng->requestShutdown();
    auto st = eng->wait();
    target.store(nullptr);
    if (!st) {
      exitCode = error(kSystemError, "engine: " + st.error().message);
      return;
    }
    if (!result) {
      exitCode = error(kSystemError, result.error().message);
      return;
    }
    // The determinism check, on a fresh read of both runs.
    auto log = openForReading(g.db);
    if (!log) {
      exitCode = error(exitFor(log.error()), log.error().message);
      return;
    }
    json comparison;
    std::optional<recorder::Comparison> cmp;
    if (!plan->partial) {
      auto a = (*log)->events(opened->runId);
      auto b = (*log)->events(result->runId);
      if (!a || !b) {
        exitCode = error(kSystemError, (!a ? a.error() : b.error()).message);
        return;
      }
      cmp = recorder::compareRuns(*a, *b);
      comparison = {{"identical", cmp->identical()},
                    {"eventsCompared", cmp->compared},
                    {"divergence", cmp->divergence ? cmp->divergence->toJson() : json()}};
    } else {
      comparison = {{"identical", nullptr}, {"skipped", "partial replay (--from/--to): not compared"}};
    }
    if (o->json) {
      printJson({{"originalRunId", opened->runId},
                 {"replayRunId", result->runId},
                 {"commandsSent", result->sent},
                 {"wallSeconds", result->wallSeconds},
                 {"summary", result->summary},
                 {"comparison", comparison}});
    } else {
      std::cout << "Replayed   " << opened->runId << "\n"
                << "New run    " << result->runId << "  (" << str(result->summary["status"]) << ", " << result->sent
                << " commands sent, " << formatDuration(result->wallSeconds) << ")\n";
      if (!cmp)
        std::cout << "Compare    skipped: partial replay (--from/--to)\n";
      else if (cmp->identical())
        std::cout << "Compare    identical: " << cmp->compared << " events match (ids and times ignored)\n";
      else
        std::cout << "Compare    DIVERGED at " << cmp->divergence->message() << "\n";
    }
    if (cmp) exitCode = cmp->identical() ? kOk : kRunNotSucceeded;
    else exitCode = result->summary.value("status", std::string()) == "succeeded" ? kOk : kRunNotSucceeded;
  });
}

void addState(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run;
    std::int64_t at = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("state", "The run state right after one event (time travel)");
  cmd->description("Fold the run's events 1..SEQ with the engine's fold and show the state: pipettes\n"
                   "(tip, contents, position), labware (used tips, liquid per well), modules.");
  cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
  cmd->add_option("--at", o->at, "The event (seq) after which to show the state")->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print {runId, seq, event, state, foldIssues} as JSON");
  cmd->callback([o, &g, &exitCode] {
    auto opened = openRun(g.db, o->run, exitCode);
    if (!opened) return;
    auto s = recorder::stateAt(*opened->log, opened->runId, o->at);
    if (!s) {
      exitCode = error(exitFor(s.error()), s.error().message);
      return;
    }
    if (o->json) {
      printJson(*s);
      return;
    }
    const json& st = (*s)["state"];
    const json& ev = (*s)["event"];
    std::cout << "Run        " << opened->runId << "\n"
              << "After      seq " << str(ev["seq"]) << " of " << str((*s)["lastSeq"]) << ": " << str(ev["type"])
              << (ev["commandId"].is_string() ? " " + str(ev["commandId"]) : "") << " at " << str(ev["ts"]) << "\n"
              << "Status     " << str(st["status"]) << (st["currentCommand"].is_string()
                                                             ? " (command " + str(st["currentCommand"]) + " in progress)"
                                                             : "")
              << "\n";
    for (auto& [id, p] : st["pipettes"].items()) {
      std::cout << "Pipette    " << id << " (" << str(p["name"]) << ", " << str(p["mount"]) << "): ";
      if (p["tip"].is_object())
        std::cout << "tip from " << str(p["tip"]["labwareId"]) << ":" << str(p["tip"]["wellName"]) << ", holds "
                  << str(p["volume"]) << " µL";
      else
        std::cout << (p["tipUnknown"].get<bool>() ? "tip unknown" : "no tip");
      if (p["position"].is_object())
        std::cout << ", at (" << str(p["position"]["x"]) << ", " << str(p["position"]["y"]) << ", "
                  << str(p["position"]["z"]) << ")";
      std::cout << "\n";
    }
    for (auto& [id, l] : st["labware"].items()) {
      std::cout << "Labware    " << id << " (" << str(l["displayName"]) << ", slot " << str(l["slotName"]) << ")";
      if (l.contains("usedTips")) std::cout << ": " << l["usedTips"].size() << " tips used";
      if (l.contains("wells")) std::cout << ": liquid in " << l["wells"].size() << " wells";
      std::cout << "\n";
    }
    for (auto& i : (*s)["foldIssues"]) std::cout << "Anomaly    event " << str(i["seq"]) << ": " << str(i["message"]) << "\n";
  });
}

void addAudit(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run, format = "text", output;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("audit", "What a run did: timeline, tips, liquids, errors, control, fingerprint");
  cmd->description("Audit a recorded run: every command with start, duration and outcome and the time per\n"
                   "command type; which tips were used and where each went; liquid in and out of every\n"
                   "well; errors, pauses and stops with who asked; cleanup; and the run's fingerprint.\n"
                   "--format html writes one self-contained page (timeline chart, deck map).");
  cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_option("--format", o->format, "text, json or html")
      ->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "Write to this file instead of stdout");
  cmd->callback([o, &g, &exitCode] {
    auto opened = openRun(g.db, o->run, exitCode);
    if (!opened) return;
    auto a = recorder::auditRun(*opened->log, opened->runId);
    if (!a) {
      exitCode = error(exitFor(a.error()), a.error().message);
      return;
    }
    std::string text = o->format == "json" ? a->dump(2) + "\n" : o->format == "html" ? recorder::auditHtml(*a)
                                                                                      : recorder::auditText(*a);
    writeOutput(o->output, text, exitCode);
  });
}

void addExport(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run, format, output;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("export", "A run's commands or events as robot-server JSON, CSV or NDJSON");
  cmd->description("commands-json: the commands in the shape Opentrons' robot-server returns for a run\n"
                   "({data: [{id, key, commandType, createdAt, startedAt, completedAt, status, params,\n"
                   "result, error, intent, notes}], meta, links}); csv: one row per command (RFC 4180);\n"
                   "ndjson: the raw event stream, one event per line, with its fingerprint chain hash\n"
                   "(keep it: `runrec verify RUN --against FILE` names the first event changed since).");
  cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_option("--format", o->format, "commands-json, csv or ndjson")
      ->check(CLI::IsMember({"commands-json", "csv", "ndjson"}))
      ->required();
  cmd->add_option("-o,--output", o->output, "Write to this file instead of stdout");
  cmd->callback([o, &g, &exitCode] {
    auto opened = openRun(g.db, o->run, exitCode);
    if (!opened) return;
    std::ostringstream out;
    auto st = recorder::exportRun(*opened->log, opened->runId, *recorder::parseExportFormat(o->format), out);
    if (!st) {
      exitCode = error(exitFor(st.error()), st.error().message);
      return;
    }
    writeOutput(o->output, out.str(), exitCode);
  });
}

void addVerify(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run, fingerprint, against;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("verify", "Check a run's integrity: hash chain, sequence, schema, fold");
  cmd->description("Recompute the run's fingerprint (a SHA-256 chain over its stored events and protocol\n"
                   "text, docs/recorder.md) and check the sequence rules, the schema and the fold.\n"
                   "--fingerprint HEX compares with a fingerprint kept earlier (from audit/export);\n"
                   "--against FILE with an NDJSON export, naming the first event that changed.\n"
                   "Exits 0 when every check passes, 1 otherwise.");
  cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
  cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
  cmd->add_option("--fingerprint", o->fingerprint, "The fingerprint (64 hex digits) to compare with");
  cmd->add_option("--against", o->against, "An earlier `runrec export --format ndjson` of this run")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", o->json, "Print {runId, ok, fingerprint, checks, firstBad} as JSON");
  cmd->callback([o, &g, &exitCode] {
    recorder::VerifyOptions vo;
    if (!o->fingerprint.empty()) {
      bool hex = o->fingerprint.size() == 64 &&
                 o->fingerprint.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
      if (!hex) {
        exitCode = error(kBadInput, "--fingerprint: expected 64 hex digits, got \"" + o->fingerprint + "\"");
        return;
      }
      vo.expected = o->fingerprint;
    }
    if (!o->against.empty()) {
      std::ifstream in(o->against, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      auto chain = recorder::parseExportedChain(ss.str());
      if (!chain) {
        exitCode = error(kBadInput, o->against + ": " + chain.error().message);
        return;
      }
      vo.exportedChain = std::move(*chain);
    }
    auto opened = openRun(g.db, o->run, exitCode);
    if (!opened) return;
    auto v = recorder::verifyRun(*opened->log, opened->runId, vo);
    if (!v) {
      exitCode = error(exitFor(v.error()), v.error().message);
      return;
    }
    if (o->json) {
      printJson(*v);
    } else {
      std::cout << "Run          " << opened->runId << "\n"
                << "Fingerprint  " << str((*v)["fingerprint"]["sha256"]) << " (" << str((*v)["fingerprint"]["events"])
                << " events)\n";
      for (auto& c : (*v)["checks"])
        std::cout << (c["ok"].get<bool>() ? "ok    " : "FAIL  ") << str(c["name"]) << ": " << str(c["message"]) << "\n";
      std::cout << ((*v)["ok"].get<bool>() ? "verified\n"
                                           : "NOT verified; first bad event: " + str((*v)["firstBad"]) + "\n");
    }
    exitCode = (*v)["ok"].get<bool>() ? kOk : kRunNotSucceeded;
  });
}

}  // namespace

void addRecorderCommands(CLI::App& app, Globals& g, int& exitCode) {
  addReplay(app, g, exitCode);
  addState(app, g, exitCode);
  addAudit(app, g, exitCode);
  addExport(app, g, exitCode);
  addVerify(app, g, exitCode);
}

}  // namespace runrec::cli
