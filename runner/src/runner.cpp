// Publishes a protocol's commands on the bus and collects the outcome.
#include "runrec/runner/runner.hpp"

#include <spdlog/spdlog.h>

namespace runrec::runner {

using nlohmann::json;

nlohmann::json runDescription(const Protocol& protocol) {
  json defs = json::object();
  for (auto& [uri, def] : protocol.labwareDefinitions) defs[uri] = def;
  return {{"protocol",
           {{"name", protocol.name()},
            {"fileName", protocol.path.empty() ? json() : json(protocol.path.filename().string())},
            {"sha256", protocol.sha256},
            {"schemaVersion", protocol.schemaVersion},
            {"commandCount", protocol.commands.size()},
            {"metadata", protocol.metadata},
            {"text", protocol.text}}},
          {"labwareDefinitions", defs},
          {"liquids", protocol.liquids}};
}

Result<RunResult> runProtocol(bus::CommandClient& client, const Protocol& protocol, const RunOptions& options) {
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  RunResult result;
  auto opened = client.open(runDescription(protocol), options.timeout.value_or(std::chrono::hours(24 * 365)));
  if (!opened) return tl::unexpected(Error{ErrorCode::kBus, "cannot open a run: " + opened.error().message});
  result.runId = *opened;

  bool failed = false;
  Progress progress;
  progress.total = protocol.commands.size();
  client.onOutcome([&](const bus::Message& m) {
    auto status = m.body.find("status");
    if (status == m.body.end() || *status != "succeeded") failed = true;
    if (options.onProgress) {
      progress.completed = client.completed();
      progress.inFlight = client.inFlight();
      progress.elapsedSeconds = elapsed();
      options.onProgress(progress);
    }
  });

  json endBody = {{"commands", protocol.commands.size()}, {"reason", "complete"}};
  for (const json& command : protocol.commands) {
    if (failed) {
      endBody["reason"] = "commandFailed";
      break;
    }
    auto st = client.send(command, options.timeout);
    if (!st) {
      if (st.error().code == bus::ErrorCode::kRejected) break;  // the engine already ended the run
      endBody["reason"] = "runnerFailed";
      endBody["error"] = {{"errorType", "Bus"}, {"message", st.error().message}};
      break;
    }
  }
  endBody["sent"] = client.sent();
  auto summary = client.finish(endBody, options.timeout);
  result.sent = client.sent();
  result.maxInFlight = client.maxInFlight();
  result.wallSeconds = elapsed();
  if (!summary) return tl::unexpected(Error{ErrorCode::kBus, "run " + result.runId + ": " + summary.error().message});
  result.summary = std::move(*summary);
  return result;
}

}  // namespace runrec::runner
