// Publishes a protocol's commands on the bus and collects the outcome.
#include "runrec/runner/runner.hpp"

#include <spdlog/spdlog.h>

namespace runrec::runner {

using nlohmann::json;

namespace {
std::size_t commandCount(const Protocol& protocol) {
  return protocol.streamed ? protocol.commandCount : protocol.commands.size();
}
}  // namespace

nlohmann::json runDescription(const Protocol& protocol) {
  json defs = json::object();
  for (auto& [uri, def] : protocol.labwareDefinitions) defs[uri] = def;
  json description = {{"protocol",
                       {{"name", protocol.name()},
                        {"fileName", protocol.path.empty() ? json() : json(protocol.path.filename().string())},
                        {"sha256", protocol.sha256},
                        {"schemaVersion", protocol.schemaVersion},
                        {"commandCount", commandCount(protocol)},
                        {"metadata", protocol.metadata}}},
                      {"labwareDefinitions", defs},
                      {"liquids", protocol.liquids}};
  // A streamed protocol's text is not in memory: the engine reads the file itself (it must
  // see the same file system) and checks its digest (docs/wire-protocol.md).
  if (protocol.streamed) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(protocol.path, ec);
    description["protocol"]["textFile"] = (ec ? protocol.path : absolute).string();
  } else {
    description["protocol"]["text"] = protocol.text;
  }
  return description;
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
  progress.total = commandCount(protocol);
  client.onOutcome([&](const bus::Message& m) {
    auto status = m.body.find("status");
    if (status == m.body.end() || !status->is_string() || status->get_ref<const std::string&>() != "succeeded")
      failed = true;
    if (options.onProgress) {
      progress.completed = client.completed();
      progress.inFlight = client.inFlight();
      progress.elapsedSeconds = elapsed();
      options.onProgress(progress);
    }
  });

  json endBody = {{"commands", commandCount(protocol)}, {"reason", "complete"}};
  // Commands are sent as they are read: a streamed protocol is never in memory whole. A
  // streamed protocol's commands come as the text its validation wrote (nothing is parsed
  // again); its file was checked by the engine at open (`textFile`: refused unless its
  // SHA-256 is the validated one), so it is not hashed again here.
  auto read = forEachCommandText(protocol, [&](std::string_view command) {
    if (failed) {
      endBody["reason"] = "commandFailed";
      return false;
    }
    auto st = client.sendJson(command, options.timeout);
    if (!st) {
      if (st.error().code == bus::ErrorCode::kRejected) return false;  // the engine already ended the run
      endBody["reason"] = "runnerFailed";
      endBody["error"] = {{"errorType", "Bus"}, {"message", st.error().message}};
      return false;
    }
    return true;
  }, FileCheck::kCheckedByEngine);
  if (!read && endBody["reason"] == "complete") {
    endBody["reason"] = "protocolError";  // a streamed file changed after it was validated
    endBody["error"] = {{"errorType", "InvalidProtocol"}, {"message", read.error().message}, {"details", json::object()}};
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
