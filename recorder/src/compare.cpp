// Event-by-event comparison of a run and its replay (the determinism check).
#include <set>

#include "runrec/recorder/replay.hpp"

namespace runrec::recorder {

using nlohmann::json;

namespace {

// Keys whose values are ids, people or wall-clock time: never compared, at any depth.
const std::set<std::string>& ignoredKeys() {
  static const std::set<std::string> keys = {"commandId",  "runId",      "requestedBy",     "replayOf",
                                             "ts",         "createdAt",  "startedAt",       "finishedAt",
                                             "completedAt", "durationSeconds", "durationMs", "wallSeconds",
                                             "commandsPerSecond"};
  return keys;
}

// Ignored at one place only: (event type, payload path).
bool ignoredAt(const std::string& type, const std::string& path) {
  return (type == engine::event::kRunFinished && path == "payload.counts.discarded") ||
         // Transaction boundaries depend on timing under --commit group; how the log was
         // committed is not what the run did (runs recorded before the policy lack both).
         (type == engine::event::kRunFinished && path == "payload.commits") ||
         (type == engine::event::kRunCreated &&
          (path == "payload.engine.commit" || path == "payload.engine.commitWindowMs")) ||
         (type == engine::event::kRunCreated && path == "payload.robot") ||
         // How a module was connected (virtual or a serial device), like runCreated.robot.
         (type == engine::event::kCommandSucceeded &&
          (path == "payload.result.device" || path == "payload.result.simulated"));
}

// First difference between a and b below `path`, or nullopt.
std::optional<std::pair<std::string, std::pair<json, json>>> diff(const std::string& type, const json& a, const json& b,
                                                                  const std::string& path) {
  if (ignoredAt(type, path)) return std::nullopt;
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto& [k, v] : a.items()) keys.insert(k);
    for (auto& [k, v] : b.items()) keys.insert(k);
    for (auto& k : keys) {
      if (ignoredKeys().count(k)) continue;
      auto ia = a.find(k), ib = b.find(k);
      json va = ia == a.end() ? json() : *ia, vb = ib == b.end() ? json() : *ib;
      if (ia == a.end() || ib == b.end()) {
        if (ignoredAt(type, path + "." + k)) continue;
        return std::make_pair(path + "." + k, std::make_pair(va, vb));
      }
      if (auto d = diff(type, va, vb, path + "." + k)) return d;
    }
    return std::nullopt;
  }
  if (a.is_array() && b.is_array()) {
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
      if (auto d = diff(type, a[i], b[i], path + "[" + std::to_string(i) + "]")) return d;
    if (a.size() != b.size())
      return std::make_pair(path + ".length", std::make_pair(json(a.size()), json(b.size())));
    return std::nullopt;
  }
  if (a == b) return std::nullopt;
  return std::make_pair(path, std::make_pair(a, b));
}

std::vector<const engine::Event*> comparable(const std::vector<engine::Event>& events) {
  std::vector<const engine::Event*> out;
  out.reserve(events.size());
  for (auto& e : events)
    if (e.type != engine::event::kCommandsDiscarded) out.push_back(&e);
  return out;
}

std::string show(const json& j) { return j.is_null() ? "(absent)" : j.dump(); }

}  // namespace

std::string Divergence::message() const {
  std::string where = recordedSeq ? "seq " + std::to_string(recordedSeq) : "replayed seq " + std::to_string(replayedSeq);
  if (recordedSeq && replayedSeq && replayedSeq != recordedSeq) where += " (replayed seq " + std::to_string(replayedSeq) + ")";
  return where + " " + type + ": " + path + ": recorded " + show(recorded) + ", replayed " + show(replayed);
}

json Divergence::toJson() const {
  return {{"seq", recordedSeq ? json(recordedSeq) : json()},
          {"replayedSeq", replayedSeq ? json(replayedSeq) : json()},
          {"type", type},
          {"path", path},
          {"recorded", recorded},
          {"replayed", replayed},
          {"message", message()}};
}

Comparison compareRuns(const std::vector<engine::Event>& recorded, const std::vector<engine::Event>& replayed) {
  auto a = comparable(recorded), b = comparable(replayed);
  Comparison c;
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i, ++c.compared) {
    const engine::Event& x = *a[i];
    const engine::Event& y = *b[i];
    if (x.type != y.type) {
      c.divergence = Divergence{x.seq, y.seq, x.type, "type", x.type, y.type};
      return c;
    }
    if (auto d = diff(x.type, x.payload, y.payload, "payload")) {
      c.divergence = Divergence{x.seq, y.seq, x.type, d->first, d->second.first, d->second.second};
      return c;
    }
  }
  if (a.size() > n)
    c.divergence = Divergence{a[n]->seq, 0, a[n]->type, "event", a[n]->type, json()};
  else if (b.size() > n)
    c.divergence = Divergence{0, b[n]->seq, b[n]->type, "event", json(), b[n]->type};
  return c;
}

}  // namespace runrec::recorder
