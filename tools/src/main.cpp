// runrec: record, run and inspect Opentrons OT-2 protocol runs.
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "cli_common.hpp"

int main(int argc, char** argv) {
  using namespace runrec::cli;
  CLI::App app{
      "runrec: an event-sourced run recorder for Opentrons OT-2 robots.\n"
      "Runs JSON protocols (schemas 6-8) and Python Protocol API v2 protocols on a simulated\n"
      "or real OT-2 and its modules, recording every event in an SQLite log (default\n"
      "./runrec.db), and shows, replays and audits what was recorded.",
      "runrec"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "runrec 0.1.0");
  Globals g;
  if (const char* env = std::getenv("RUNREC_DB")) g.db = env;
  app.add_option("--log-level", g.logLevel, "Diagnostics on stderr: trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  int exitCode = kOk;
  addRunCommand(app, g, exitCode);
  addEngineCommand(app, g, exitCode);
  addControlCommand(app, g, exitCode);
  addInspectCommands(app, g, exitCode);
  addSeedCommand(app, exitCode);
  addBenchCommand(app, g, exitCode);
  addSubscribeCommand(app, g, exitCode);
  addKeysCommand(app, exitCode);
  addBenchEventsCommand(app, g, exitCode);
  addHardwareCommands(app, g, exitCode);
  addRecorderCommands(app, g, exitCode);
  app.footer("Exit codes: 0 ok, 1 the run did not succeed, 2 bad input, 3 system error.\n"
             "The log file defaults to ./runrec.db (or $RUNREC_DB); see docs/ for formats.");
  auto stderrSink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("runrec", stderrSink));
  spdlog::set_pattern("runrec %l: %v");
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(g.logLevel)); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kBadInput;
  }
  return exitCode;
}
