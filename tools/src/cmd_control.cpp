// `runrec control`: pause, resume, stop or ask the status of a run in progress.
#include <unistd.h>

#include <iostream>

#include "cli_common.hpp"
#include "runrec/bus/channel.hpp"
#include "runrec/bus/control.hpp"

namespace runrec::cli {

using nlohmann::json;

void addControlCommand(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string action;
    std::string connect;
    bool json = false;
    double timeout = 5;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("control", "Pause, resume, stop or ask the status of the run in progress");
  cmd->footer(
      "Send a control request to a running engine:\n"
      "  pause   the command in progress finishes, no new one starts (the runner waits)\n"
      "  resume  (or play) continue after a pause or a protocol's waitForResume\n"
      "  stop    end the run after the command in progress; queued commands are discarded,\n"
      "          cleanup drops any tip in the trash and homes; the run ends `stopped`\n"
      "  status  the run in progress (summary, paused/stopping)\n"
      "Every action is recorded in the log with who asked. Without --connect, talks to the\n"
      "`runrec run` recording to --db.");
  cmd->add_option("action", o->action, "play, pause, resume, stop or status")
      ->required()
      ->check(CLI::IsMember({"play", "pause", "resume", "stop", "status"}));
  cmd->add_option("--connect", o->connect, "The engine's endpoint (as given to `runrec engine --listen`)");
  cmd->add_option("--db", g.db, "The log of the in-process `runrec run` to control")->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Seconds to wait for the engine")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the engine's answer as JSON");
  cmd->callback([o, &g, &exitCode] {
    std::string endpoint;
    if (o->connect.empty()) {
      endpoint = localControlEndpoint(g.db);
    } else {
      auto ep = bus::controlEndpoint(o->connect);
      if (!ep) {
        exitCode = error(kBadInput, ep.error().message);
        return;
      }
      endpoint = *ep;
    }
    json req = {{"action", o->action}, {"requestedBy", whoAmI("runrec control")}};
    bus::Context ctx;
    auto answer = bus::controlRequest(ctx, endpoint, req, std::chrono::milliseconds(static_cast<long>(o->timeout * 1000)));
    if (!answer) {
      exitCode = error(kSystemError, answer.error().message +
                                         (o->connect.empty() ? " (is a `runrec run` recording to " + g.db + " running?)" : ""));
      return;
    }
    const json& a = *answer;
    if (o->json) {
      printJson(a);
    } else if (!a.value("ok", false)) {
      std::cerr << "runrec: engine: " << a.value("error", std::string("request refused")) << "\n";
    } else if (o->action == "status") {
      if (a["run"].is_null()) {
        std::cout << "No run in progress.\n";
      } else {
        const json& r = a["run"];
        std::cout << "Run " << r.value("runId", "") << ": " << r.value("status", "")
                  << (r.value("stopping", false) ? " (stopping)" : "")
                  << ", " << r["counts"].value("succeeded", 0) << " commands succeeded\n";
      }
    } else {
      std::cout << "ok: " << o->action << (a.value("alreadyStopping", false) ? " (already stopping)" : "") << "\n";
    }
    exitCode = a.value("ok", false) ? kOk : kBadInput;
  });
}

}  // namespace runrec::cli
