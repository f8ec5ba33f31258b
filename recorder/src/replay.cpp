// Replay plans and the replay loop (bus client side).
#include "runrec/recorder/replay.hpp"

#include <thread>

#include "runrec/runner/protocol.hpp"
#include "timestamps.hpp"

namespace runrec::recorder {

using engine::ErrorCode;
using nlohmann::json;

namespace {

class SteadyClock final : public Clock {
 public:
  double now() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  void sleepFor(double seconds) override {
    if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
};

bool isLoad(const std::string& type) {
  return type == "loadPipette" || type == "loadLabware" || type == "loadModule" || type == "loadLiquid";
}

std::string uriOf(const json& def) {
  if (!def.contains("parameters") || !def["parameters"].is_object()) return "";
  return detail::text(def, "namespace") + "/" + detail::text(def["parameters"], "loadName") + "/" +
         std::to_string(static_cast<int>(detail::number(def, "version")));
}

}  // namespace

Clock& steadyClock() {
  static SteadyClock clock;
  return clock;
}

namespace {

engine::Result<ReplayPlan> planReplayImpl(engine::EventLog& log, const std::string& runId, std::optional<std::int64_t> from, std::optional<std::int64_t> to) {
  auto row = log.run(runId);
  if (!row) return tl::unexpected(row.error());
  auto events = log.events(runId);
  if (!events) return tl::unexpected(events.error());
  if (events->empty() || events->front().type != engine::event::kRunCreated)
    return engine::fail(ErrorCode::kInvalid, "run " + runId + " has no runCreated event: nothing to replay");
  auto last = events->back().seq;
  if (from && (*from < 1 || *from > last))
    return engine::fail(ErrorCode::kInvalid, "--from " + std::to_string(*from) + ": run " + runId + " has events 1.." +
                                                 std::to_string(last));
  if (to && (*to < 1 || *to > last))
    return engine::fail(ErrorCode::kInvalid, "--to " + std::to_string(*to) + ": run " + runId + " has events 1.." +
                                                 std::to_string(last));
  if (from && to && *from > *to)
    return engine::fail(ErrorCode::kInvalid, "--from " + std::to_string(*from) + " is after --to " + std::to_string(*to));

  const json& created = events->front().payload;
  json protocol = created.value("protocol", json::object());
  auto text = log.protocolText(row->protocolSha256);
  if (!text) return engine::fail(ErrorCode::kInvalid, "run " + runId + ": its protocol text is not in the log (" +
                                                          text.error().message + ")");
  protocol["text"] = *text;
  // Labware definitions: the protocol's own, then every definition the run loaded (custom
  // labware from --labware-dir included), exactly as recorded.
  json defs = json::object();
  const json& fileName = protocol.contains("fileName") ? protocol["fileName"] : json();
  if (auto parsed = runner::parseProtocol(*text, fileName.is_string() ? fileName.get<std::string>() : "protocol.json"))
    for (auto& [uri, def] : parsed->labwareDefinitions) defs[uri] = def;
  ReplayPlan plan;
  plan.originalRunId = runId;
  plan.engine = created.value("engine", json::object());
  if (!plan.engine.is_object()) plan.engine = json::object();
  plan.robot = row->robot;
  plan.partial = from.has_value() || to.has_value();
  double firstTs = NAN;
  for (auto& e : *events) {
    if (e.type != engine::event::kCommandStarted) {
      if (e.type == engine::event::kCommandSucceeded && e.payload.contains("result") &&
          e.payload["result"].contains("definition") && e.payload["result"]["definition"].is_object()) {
        const json& def = e.payload["result"]["definition"];
        auto uri = uriOf(def);
        if (!uri.empty() && !defs.contains(uri)) defs[uri] = def;
      }
      continue;
    }
    const json& p = e.payload;
    if (detail::text(p, "intent") != "protocol") continue;
    std::string type = detail::text(p, "commandType");
    bool inRange = (!from || e.seq >= *from) && (!to || e.seq <= *to);
    bool setup = from && e.seq < *from && isLoad(type);
    if (!inRange && !setup) continue;
    json cmd = {{"commandType", type}, {"params", p.value("params", json::object())}};
    if (p.contains("key") && p["key"].is_string()) cmd["key"] = p["key"];
    double t = detail::epochSeconds(e.ts);
    if (std::isnan(firstTs)) firstTs = t;
    plan.commands.push_back({e.seq, std::move(cmd), std::isnan(t) ? 0.0 : t - firstTs});
  }
  json body = {{"protocol", protocol}, {"labwareDefinitions", defs},
               {"liquids", created.value("liquids", json::object())}, {"replayOf", runId}};
  if (plan.partial) body["protocol"]["commandCount"] = plan.commands.size();
  plan.openBody = std::move(body);
  return plan;
}

}  // namespace

// Recorded JSON of an unexpected shape is reported, never thrown across the module boundary.
engine::Result<ReplayPlan> planReplay(engine::EventLog& log, const std::string& runId, std::optional<std::int64_t> from, std::optional<std::int64_t> to) {
  try {
    return planReplayImpl(log, runId, from, to);
  } catch (const nlohmann::json::exception& e) {
    return engine::fail(engine::ErrorCode::kCorrupt, "run " + runId + ": malformed recorded data: " + e.what());
  }
}


engine::Result<ReplayResult> replay(bus::CommandClient& client, const ReplayPlan& plan, const ReplayOptions& options) {
  Clock& clock = options.clock ? *options.clock : steadyClock();
  auto wall0 = std::chrono::steady_clock::now();
  ReplayResult result;
  auto opened = client.open(plan.openBody, options.timeout.value_or(std::chrono::hours(24 * 365)));
  if (!opened) return engine::fail(ErrorCode::kBus, "cannot open the replay run: " + opened.error().message);
  result.runId = *opened;
  bool failed = false;
  client.onOutcome([&](const bus::Message& m) {
    auto status = m.body.find("status");
    if (status == m.body.end() || *status != "succeeded") failed = true;
  });
  auto stopping = [&] { return options.stopRequested && options.stopRequested(); };
  json endBody = {{"commands", plan.commands.size()}, {"reason", "complete"}};
  double t0 = clock.now();
  for (auto& c : plan.commands) {
    if (failed) {
      endBody["reason"] = "commandFailed";
      break;
    }
    if (options.rate > 0) {
      // Keep the recorded gaps between command starts, scaled; wake often enough to stop.
      double due = t0 + c.offsetSeconds / options.rate;
      for (double wait = due - clock.now(); wait > 0 && !stopping(); wait = due - clock.now())
        clock.sleepFor(std::min(wait, 0.1));
    }
    auto st = client.send(c.command, options.timeout);
    if (!st) {
      if (st.error().code == bus::ErrorCode::kRejected) break;  // the engine ended the run (stop, failure)
      endBody["reason"] = "runnerFailed";
      endBody["error"] = {{"errorType", "Bus"}, {"message", st.error().message}};
      break;
    }
  }
  endBody["sent"] = client.sent();
  auto summary = client.finish(endBody, options.timeout);
  result.sent = client.sent();
  result.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (!summary) return engine::fail(ErrorCode::kBus, "replay run " + result.runId + ": " + summary.error().message);
  result.summary = std::move(*summary);
  return result;
}

}  // namespace runrec::recorder
