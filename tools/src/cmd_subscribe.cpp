// `runrec subscribe`: follow run events as JSON Lines, gap-free (docs/events-wire.md).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli_common.hpp"
#include "runrec/bus/events.hpp"

namespace runrec::cli {

using nlohmann::json;

namespace {

std::atomic<bus::EventSubscriber*> gSubscriber{nullptr};

extern "C" void stopSubscriber(int) {
  if (auto* s = gSubscriber.load()) s->stop();  // an atomic store
}

// A full run id, a unique prefix of one, or "last" (the newest run), resolved via history.
bus::Result<std::string> resolveRun(bus::HistoryClient& history, const std::string& id) {
  auto runs = history.runs(bus::kMaxHistoryLimit);
  if (!runs) return tl::unexpected(runs.error());
  const json& list = (*runs)["runs"];
  if (id == "last") {
    if (list.empty()) return tl::unexpected(bus::Error{bus::ErrorCode::kRejected, "no runs in the engine's log yet"});
    return list.front().value("runId", "");
  }
  std::vector<std::string> hits;
  for (const json& r : list) {
    std::string rid = r.value("runId", "");
    if (rid == id) return rid;
    if (rid.rfind(id, 0) == 0) hits.push_back(rid);
  }
  if (hits.size() == 1) return hits.front();
  if (hits.empty()) return tl::unexpected(bus::Error{bus::ErrorCode::kRejected, "unknown run \"" + id + "\""});
  return tl::unexpected(
      bus::Error{bus::ErrorCode::kRejected, "run id prefix \"" + id + "\" matches " + std::to_string(hits.size()) + " runs"});
}

}  // namespace

std::string localEventsEndpoint(const std::string& db) {
  std::string control = localControlEndpoint(db);  // ipc:///tmp/runrec-<hash>.control
  return control.substr(0, control.size() - std::string(".control").size()) + ".events";
}

std::string eventsEndpointFor(const std::string& option, const std::string& db) {
  if (option == "none") return "";
  if (option.empty()) return localEventsEndpoint(db);
  return option;
}

void addEventsOptions(CLI::App* cmd, EventsFlags& f) {
  cmd->add_option("--events", f.events,
                  "Publish live events here (history on ENDPOINT.history / port+1); default "
                  "ipc:///tmp/runrec-<hash of --db>.events, \"none\" for none (docs/events-wire.md)");
  cmd->add_option("--curve-keys", f.curveKeys,
                  "CURVE-encrypt the event endpoints with DIR/server.key; only clients whose keys are in "
                  "DIR/authorized/*.pub may subscribe (`runrec keys`)")
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--insecure", f.insecure,
                "Allow a non-loopback --events endpoint without --curve-keys (anyone who can reach it reads "
                "every run)");
}

int configureEvents(const EventsFlags& f, const std::string& db, bus::Context& ctx, engine::EngineOptions& eo) {
  eo.eventsEndpoint = eventsEndpointFor(f.events, db);
  if (eo.eventsEndpoint.empty()) {
    if (!f.curveKeys.empty()) return error(kBadInput, "--curve-keys with --events none: nothing to secure");
    return kOk;
  }
  if (!f.curveKeys.empty()) {
    auto server = bus::CurveServer::start(ctx, f.curveKeys);
    if (!server)
      return error(server.error().code == bus::ErrorCode::kRejected ? kBadInput : kSystemError,
                   "--curve-keys: " + server.error().message);
    eo.eventsCurve = std::move(*server);
    return kOk;
  }
  if (!bus::isLoopbackEndpoint(eo.eventsEndpoint)) {
    if (!f.insecure)
      return error(kBadInput, "--events " + eo.eventsEndpoint +
                                  " is reachable from the network: give --curve-keys DIR (only authorised clients, "
                                  "encrypted; `runrec keys generate DIR`) or --insecure to publish every event and "
                                  "the whole history of " + db + " to anyone who can reach it (docs/events-wire.md, "
                                  "Security)");
    std::cerr << "runrec: warning: --events " << eo.eventsEndpoint << " --insecure: anyone who can reach it can read "
              << "every event and the whole history of " << db << "\n";
  }
  return kOk;
}

void addSubscribeCommand(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run;
    bool all = false;
    long long fromSeq = 1;
    bool follow = false;
    std::string connect;
    std::string curveKeys;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("subscribe", "Print run events as JSON Lines, live with --follow");
  cmd->footer(
      "Print the events of a run (or of every run) as JSON Lines, one event per line as the\n"
      "engine publishes it (runId, seq, type, ts, commandId, payload). History first, then,\n"
      "with --follow, live events: each event exactly once and in order, even when this\n"
      "process joins late or falls behind. Needs a running engine (`runrec engine`, or\n"
      "`runrec run` while it runs); --connect takes its event endpoint (default: the one\n"
      "derived from --db). Format: docs/events-wire.md.");
  auto* runOpt = cmd->add_option("--run", o->run, "Run id, a unique prefix of one, or \"last\"");
  auto* allOpt = cmd->add_flag("--all", o->all, "Every run (oldest first; with --follow, new runs too, until Ctrl-C)");
  runOpt->excludes(allOpt);
  cmd->add_option("--from-seq", o->fromSeq, "First seq to print (per run)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_flag("--follow", o->follow, "Keep printing live events (one run: until it finishes)");
  cmd->add_option("--connect", o->connect, "The engine's event endpoint (default: " + std::string("ipc:///tmp/runrec-<hash of --db>.events)"));
  cmd->add_option("--db", g.db, "The log whose local engine to reach when --connect is not given")->capture_default_str();
  cmd->add_option("--curve-keys", o->curveKeys,
                  "For an engine started with --curve-keys: DIR/client.key, client.pub and the engine's "
                  "server.pub (`runrec keys client`)")
      ->check(CLI::ExistingDirectory);
  cmd->callback([o, &g, &exitCode] {
    if (o->run.empty() && !o->all) {
      exitCode = error(kBadInput, "subscribe: give --run ID (or \"last\") or --all");
      return;
    }
    std::string endpoint = o->connect.empty() ? localEventsEndpoint(g.db) : o->connect;
    auto hist = bus::historyEndpoint(endpoint);
    if (!hist) {
      exitCode = error(kBadInput, hist.error().message);
      return;
    }
    bus::Context ctx;
    auto failed = [&](const bus::Error& e) {
      if (e.code == bus::ErrorCode::kTimeout)
        return error(kSystemError, e.message + " (is an engine running with --events " + endpoint +
                                       (!o->curveKeys.empty() ? "? does it admit this client's key (DIR/authorized/*.pub)?)"
                                                 : "? if it uses --curve-keys, so must subscribe)"));
      return error(e.code == bus::ErrorCode::kRejected ? kBadInput : kSystemError, e.message);
    };
    bus::SubscribeOptions so;
    if (!o->curveKeys.empty()) {
      auto keys = bus::loadClientKeys(o->curveKeys);
      if (!keys) {
        exitCode = error(keys.error().code == bus::ErrorCode::kRejected ? kBadInput : kSystemError,
                         "--curve-keys: " + keys.error().message);
        return;
      }
      so.curve = std::move(*keys);
    }
    so.fromSeq = o->fromSeq;
    so.follow = o->follow;
    if (!o->all) {
      auto history = bus::HistoryClient::connect(ctx, *hist, so.requestTimeout, so.curve);
      if (!history) {
        exitCode = failed(history.error());
        return;
      }
      auto id = resolveRun(**history, o->run);
      if (!id) {
        exitCode = failed(id.error());
        return;
      }
      so.runId = *id;
    }
    auto sub = bus::EventSubscriber::connect(ctx, endpoint, so);
    if (!sub) {
      exitCode = failed(sub.error());
      return;
    }
    gSubscriber.store(sub->get());
    auto oldInt = std::signal(SIGINT, stopSubscriber);
    auto oldTerm = std::signal(SIGTERM, stopSubscriber);
    bool follow = o->follow;
    auto st = (*sub)->run([follow](const bus::RunEvent&, const json& body) {
      std::string line = body.dump(-1, ' ', false, json::error_handler_t::replace);
      line += '\n';
      if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) return false;  // stdout closed
      if (follow) std::fflush(stdout);
      return true;
    });
    std::fflush(stdout);
    std::signal(SIGINT, oldInt);
    std::signal(SIGTERM, oldTerm);
    gSubscriber.store(nullptr);
    if (!st) exitCode = failed(st.error());
  });
}

}  // namespace runrec::cli
