// `runrec runs` and `runrec show`: what the log holds.
#include <cstdio>
#include <iostream>

#include "cli_common.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/recorder/report.hpp"

namespace runrec::cli {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* key, const char* dflt = "-") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string shortTime(const std::string& iso) {
  // 2026-11-25T21:47:16.123456Z -> 2026-11-25 21:47:16
  if (iso.size() < 19) return iso;
  return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

std::string commandDetail(const json& c) {
  const json& p = c["params"];
  std::string d;
  auto add = [&](const std::string& s) { d += (d.empty() ? "" : " ") + s; };
  if (p.contains("labwareId") && p.contains("wellName"))
    add(str(p, "labwareId") + ":" + str(p, "wellName"));
  else if (p.contains("labwareId"))
    add(str(p, "labwareId"));
  if (p.contains("volume")) add(str(p, "volume") + " µL");
  if (p.contains("pipetteName")) add(str(p, "pipetteName"));
  if (p.contains("loadName")) add(str(p, "loadName"));
  if (p.contains("seconds")) add(str(p, "seconds") + " s");
  if (p.contains("moduleId")) add(str(p, "moduleId"));
  if (p.contains("celsius")) add(str(p, "celsius") + " °C");
  if (p.contains("rpm")) add(str(p, "rpm") + " rpm");
  if (p.contains("height")) add("height " + str(p, "height") + " mm");
  if (c["error"].is_object()) add("ERROR " + str(c["error"], "errorType") + ": " + str(c["error"], "message"));
  return d;
}

// One line per module of a folded state: what it was doing at the end (docs/modules.md).
void printModules(const json& state) {
  if (!state.is_object() || !state.contains("modules") || state["modules"].empty()) return;
  auto temp = [](const json& target, const json& current) {
    std::string t = target.is_number() ? "target " + target.dump() + " °C" : "off";
    return current.is_number() ? t + " (" + current.dump() + " °C)" : t;
  };
  std::cout << "\nModules\n";
  for (auto& [id, m] : state["modules"].items()) {
    const json& st = m.value("status", json::object());
    std::string model = m.value("model", ""), what;
    if (model.rfind("temperatureModule", 0) == 0) {
      what = temp(st.value("targetCelsius", json()), st.value("currentCelsius", json()));
    } else if (model.rfind("magneticModule", 0) == 0) {
      what = st.value("engaged", false) ? "engaged, height " + st.value("height", json()).dump() + " mm" : "disengaged";
    } else if (model.rfind("thermocycler", 0) == 0) {
      what = "block " + temp(st.value("targetBlockCelsius", json()), st.value("currentBlockCelsius", json())) +
             ", lid " + st.value("lid", std::string("?")) + ", lid heater " +
             temp(st.value("targetLidCelsius", json()), st.value("currentLidCelsius", json()));
    } else if (model.rfind("heaterShaker", 0) == 0) {
      what = temp(st.value("targetCelsius", json()), st.value("currentCelsius", json())) + ", " +
             st.value("currentRpm", json(0)).dump() + " rpm, latch " + st.value("latch", std::string("?"));
    }
    std::string slots;
    for (auto& sl : m.value("slots", json::array())) slots += (slots.empty() ? "" : ",") + sl.get<std::string>();
    std::printf("  %-22s  %-22s  slot %-10s  %s%s\n", id.c_str(), model.c_str(), slots.c_str(), what.c_str(),
                m.contains("fault") ? ("  FAULT: " + m["fault"].value("message", std::string())).c_str() : "");
  }
}

}  // namespace

void addInspectCommands(CLI::App& app, Globals& g, int& exitCode) {
  {
    struct Opts {
      bool json = false;
      int limit = -1;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("runs", "List the runs in the log, newest first");
    cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print a JSON array of run summaries (docs/cli-json.md)");
    cmd->add_option("-n,--limit", o->limit, "Show at most this many runs");
    cmd->callback([o, &g, &exitCode] {
      auto log = openForReading(g.db);
      if (!log) {
        exitCode = error(exitFor(log.error()), log.error().message);
        return;
      }
      auto runs = recorder::listRuns(**log, o->limit);
      if (!runs) {
        exitCode = error(exitFor(runs.error()), runs.error().message);
        return;
      }
      if (o->json) {
        printJson(*runs);
        return;
      }
      if (runs->empty()) {
        std::cout << "No runs in " << g.db << " yet. Start one with `runrec run PROTOCOL`.\n";
        return;
      }
      std::printf("%-36s  %-19s  %-11s  %9s  %10s  %s\n", "RUN", "CREATED (UTC)", "STATUS", "COMMANDS", "DURATION",
                  "PROTOCOL");
      for (auto& r : *runs) {
        std::printf("%-36s  %-19s  %-11s  %9s  %10s  %s\n", str(r, "runId").c_str(),
                    shortTime(str(r, "createdAt")).c_str(), str(r, "status").c_str(),
                    str(r["counts"], "succeeded").c_str(), formatDuration(r["durationSeconds"]).c_str(),
                    str(r, "protocolName").c_str());
      }
    });
  }
  {
    struct Opts {
      std::string run;
      bool json = false;
      bool state = false;
      long limit = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("show", "Show one run: status, timing and its commands");
    cmd->footer(
        "Show one run: status, timing, and each command with its status and duration.\n"
        "RUN is a run id, a unique prefix of one, or `last`.");
    cmd->add_option("run", o->run, "Run id, unique prefix, or `last`")->required();
    cmd->add_option("--db", g.db, "SQLite log file")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print the summary plus `commands` as JSON (docs/cli-json.md)");
    cmd->add_flag("--state", o->state, "Also show the run state folded from the log (pipettes, tips, liquids)");
    cmd->add_option("-n,--limit", o->limit, "Show only the first N commands in text output (0: all)");
    cmd->callback([o, &g, &exitCode] {
      auto log = openForReading(g.db);
      if (!log) {
        exitCode = error(exitFor(log.error()), log.error().message);
        return;
      }
      auto id = (*log)->resolveRunId(o->run);
      if (!id) {
        exitCode = error(exitFor(id.error()), id.error().message);
        return;
      }
      auto detail = recorder::runDetail(**log, *id, o->state);
      if (!detail) {
        exitCode = error(exitFor(detail.error()), detail.error().message);
        return;
      }
      const json& d = *detail;
      if (o->json) {
        printJson(d);
        return;
      }
      const json& c = d["counts"];
      std::cout << "Run        " << str(d, "runId") << "\n"
                << "Status     " << str(d, "status") << (d["reason"].is_string() ? " (" + str(d, "reason") + ")" : "")
                << "\n"
                << "Protocol   " << str(d, "protocolName") << "\n"
                << "Robot      " << str(d, "robot") << "\n"
                << "Created    " << str(d, "createdAt") << "\n"
                << "Finished   " << str(d, "finishedAt") << "\n"
                << "Duration   " << formatDuration(d["durationSeconds"]) << "\n"
                << "Commands   " << str(c, "succeeded") << " succeeded, " << str(c, "failed") << " failed, "
                << str(c, "discarded") << " discarded (protocol has " << str(c, "protocolCommands") << ")\n";
      if (d["error"].is_object())
        std::cout << "Error      " << str(d["error"], "errorType") << ": " << str(d["error"], "message") << "\n";
      if (d.contains("foldIssues"))
        for (auto& i : d["foldIssues"]) std::cout << "Anomaly    event " << str(i, "seq") << ": " << str(i, "message") << "\n";
      std::cout << "\n";
      std::printf("%6s  %-8s  %-18s  %-10s  %10s  %s\n", "#", "ID", "COMMAND", "STATUS", "DURATION", "DETAIL");
      long shown = 0;
      for (auto& cmd : d["commands"]) {
        if (o->limit > 0 && shown >= o->limit) {
          std::cout << "  ... " << (d["commands"].size() - shown) << " more (use --limit 0 or --json)\n";
          break;
        }
        std::string dur = cmd["durationMs"].is_number() ? formatDuration(cmd["durationMs"].get<double>() / 1000) : "-";
        std::printf("%6s  %-8s  %-18s  %-10s  %10s  %s\n", str(cmd, "index").c_str(), str(cmd, "id").c_str(),
                    str(cmd, "commandType").c_str(), str(cmd, "status").c_str(), dur.c_str(),
                    commandDetail(cmd).c_str());
        shown++;
      }
      if (o->state) printModules(d["state"]);
      if (o->state) std::cout << "\nState\n" << d["state"].dump(2) << "\n";
    });
  }
}

}  // namespace runrec::cli
