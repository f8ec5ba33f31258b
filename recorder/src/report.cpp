// Run summaries and command tables from the log.
#include "runrec/recorder/report.hpp"

#include <cmath>
#include <ctime>

#include "runrec/engine/engine.hpp"
#include "runrec/engine/state.hpp"

namespace runrec::recorder {

using nlohmann::json;

namespace {

double epochSeconds(const std::string& t) {
  std::tm tm{};
  int us = 0;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &us) < 6)
    return NAN;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + us / 1e6;
}

std::int64_t count(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

}  // namespace

Result<json> runSummary(engine::EventLog& log, const std::string& runId) {
  auto row = log.run(runId);
  if (!row) return tl::unexpected(row.error());
  auto events = log.runLevelEvents(runId);
  if (!events) return tl::unexpected(events.error());
  engine::RunState state;
  std::vector<engine::FoldIssue> ignored;  // partial fold: command events are not read here
  for (auto& e : *events) {
    state.lastSeq = e.seq - 1;
    engine::apply(state, e, &ignored);
  }
  state.runId = runId;
  // Counts: from the terminal event when the run ended, else counted in the log.
  if (state.finish.contains("counts")) {
    const json& c = state.finish["counts"];
    state.commandsStarted = count(c, "started");
    state.commandsSucceeded = count(c, "succeeded");
    state.commandsFailed = count(c, "failed");
    state.commandsDiscarded = count(c, "discarded");
    state.cleanupCommands = count(c, "cleanup");
    state.cleanupFailed = count(c, "cleanupFailed");
    if (state.finish.contains("error")) state.lastError = state.finish["error"];
  } else {
    auto counts = log.countByType(runId);
    if (!counts) return tl::unexpected(counts.error());
    auto get = [&](const char* t) { auto it = counts->find(t); return it == counts->end() ? 0 : it->second; };
    state.commandsStarted = get(engine::event::kCommandStarted);
    state.commandsSucceeded = get(engine::event::kCommandSucceeded);
    state.commandsFailed = get(engine::event::kCommandFailed);
  }
  auto last = log.lastSeq(runId);
  if (!last) return tl::unexpected(last.error());
  state.lastSeq = *last;
  return engine::summaryJson(state, &*row);
}

Result<json> listRuns(engine::EventLog& log, int limit) {
  auto rows = log.runs();
  if (!rows) return tl::unexpected(rows.error());
  json out = json::array();
  for (auto& r : *rows) {
    if (limit >= 0 && static_cast<int>(out.size()) >= limit) break;
    auto s = runSummary(log, r.runId);
    if (!s) return tl::unexpected(s.error());
    out.push_back(std::move(*s));
  }
  return out;
}

Result<json> runDetail(engine::EventLog& log, const std::string& runId, bool withState) {
  auto row = log.run(runId);
  if (!row) return tl::unexpected(row.error());
  auto events = log.events(runId);
  if (!events) return tl::unexpected(events.error());
  std::vector<engine::FoldIssue> issues;
  engine::RunState state;
  json commands = json::array();
  std::map<std::string, size_t> byId;
  for (auto& e : *events) {
    engine::apply(state, e, &issues);
    if (e.type == engine::event::kCommandStarted) {
      byId[e.commandId] = commands.size();
      commands.push_back({{"id", e.commandId},
                          {"index", e.payload.value("index", json())},
                          {"key", e.payload.value("key", json())},
                          {"commandType", e.payload.value("commandType", json())},
                          {"intent", e.payload.value("intent", json())},
                          {"params", e.payload.value("params", json::object())},
                          {"status", "running"},
                          {"startedAt", e.ts},
                          {"completedAt", nullptr},
                          {"durationMs", nullptr},
                          {"result", nullptr},
                          {"error", nullptr}});
    } else if (e.type == engine::event::kCommandSucceeded || e.type == engine::event::kCommandFailed) {
      auto it = byId.find(e.commandId);
      if (it == byId.end()) continue;
      json& c = commands[it->second];
      bool ok = e.type == engine::event::kCommandSucceeded;
      c["status"] = ok ? "succeeded" : "failed";
      c["completedAt"] = e.ts;
      double d = (epochSeconds(e.ts) - epochSeconds(c["startedAt"].get<std::string>())) * 1000.0;
      c["durationMs"] = std::isnan(d) ? json() : json(std::round(d * 1000) / 1000);
      if (ok) c["result"] = e.payload.value("result", json::object());
      else c["error"] = e.payload.value("error", json::object());
    }
  }
  // A run without an end whose process is gone shows as running until an engine reopens
  // the log and closes it as interrupted.
  json out = engine::summaryJson(state, &*row);
  out["commands"] = std::move(commands);
  if (!issues.empty()) {
    json is = json::array();
    for (auto& i : issues) is.push_back({{"seq", i.seq}, {"message", i.message}});
    out["foldIssues"] = is;
  }
  if (withState) out["state"] = engine::toJson(state);
  return out;
}

Result<json> stateAt(engine::EventLog& log, const std::string& runId, std::int64_t seq) {
  auto last = log.lastSeq(runId);
  if (!last) return tl::unexpected(last.error());
  if (seq < 1 || seq > *last)
    return engine::fail(engine::ErrorCode::kInvalid, "--at " + std::to_string(seq) + ": run " + runId + " has events 1.." +
                                                         std::to_string(*last));
  auto events = log.events(runId, 1, seq);
  if (!events) return tl::unexpected(events.error());
  std::vector<engine::FoldIssue> issues;
  engine::RunState state = engine::fold(*events, &issues);
  const engine::Event& e = events->back();
  json is = json::array();
  for (auto& i : issues) is.push_back({{"seq", i.seq}, {"message", i.message}});
  return json{{"runId", runId},
              {"seq", seq},
              {"lastSeq", *last},
              {"event", {{"seq", e.seq}, {"type", e.type}, {"ts", e.ts},
                         {"commandId", e.commandId.empty() ? json() : json(e.commandId)}}},
              {"state", engine::toJson(state)},
              {"foldIssues", is}};
}

}  // namespace runrec::recorder
