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
  if (option.rfind("tcp://", 0) == 0) {
    std::string host = option.substr(6, option.rfind(':') - 6);
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]")
      std::cerr << "runrec: warning: --events " << option << " is not a loopback address: anyone who can reach it "
                << "can read every event and the whole history of " << db << " (docs/events-wire.md, Security)\n";
  }
  return option;
}

void addSubscribeCommand(CLI::App& app, Globals& g, int& exitCode) {
  struct Opts {
    std::string run;
    bool all = false;
    long long fromSeq = 1;
    bool follow = false;
    std::string connect;
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
        return error(kSystemError, e.message + " (is an engine running with --events " + endpoint + "?)");
      return error(e.code == bus::ErrorCode::kRejected ? kBadInput : kSystemError, e.message);
    };
    bus::SubscribeOptions so;
    so.fromSeq = o->fromSeq;
    so.follow = o->follow;
    if (!o->all) {
      auto history = bus::HistoryClient::connect(ctx, *hist);
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
