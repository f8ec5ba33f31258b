// The audit of a run: one pass over its events with the engine's fold.
#include "runrec/recorder/audit.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "runrec/engine/state.hpp"
#include "runrec/recorder/fingerprint.hpp"
#include "runrec/recorder/report.hpp"
#include "timestamps.hpp"

namespace runrec::recorder {

using nlohmann::json;

namespace {

double round6(double v) { return std::round(v * 1e6) / 1e6; }
double round3(double v) { return std::round(v * 1e3) / 1e3; }

std::string liquidName(const std::string& id) { return id.empty() ? "unknown" : id; }

json contentsJson(const engine::Contents& c) {
  json j = json::object();
  for (auto& [k, v] : c)
    if (std::abs(v) > 1e-9) j[liquidName(k)] = round6(v);
  return j;
}

// Per well: what was loaded, what went in and what came out, by liquid.
struct WellFlow {
  engine::Contents loaded, in, out;
};

const engine::Contents* wellContents(const engine::RunState& s, const std::string& lw, const std::string& well) {
  auto* l = s.findLabware(lw);
  if (!l) return nullptr;
  auto it = l->wells.find(well);
  return it == l->wells.end() ? nullptr : &it->second;
}

const std::vector<std::string> kSlots = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"};

}  // namespace

namespace {

engine::Result<json> auditRunImpl(engine::EventLog& log, const std::string& runId) {
  auto summary = runSummary(log, runId);
  if (!summary) return tl::unexpected(summary.error());
  auto events = log.events(runId);
  if (!events) return tl::unexpected(events.error());
  auto fp = fingerprint(log, runId);
  if (!fp) return tl::unexpected(fp.error());

  engine::RunState s;
  std::vector<engine::FoldIssue> issues;
  json timeline = json::array();
  std::map<std::string, size_t> byId;
  struct TypeStat {
    std::int64_t count = 0;
    double totalMs = 0, maxMs = 0;
  };
  std::map<std::string, TypeStat> types;
  double t0 = NAN;
  json tipUses = json::array();
  std::map<std::string, size_t> openTip;  // pipette -> its tip use
  std::map<std::pair<std::string, std::string>, WellFlow> flows;
  json control = json::array(), errors = json::array(), cleanup = json();
  std::string prevCommand;

  for (const engine::Event& e : *events) {
    double t = detail::epochSeconds(e.ts);
    if (std::isnan(t0) && (e.type == engine::event::kRunStarted || e.type == engine::event::kCommandStarted)) t0 = t;
    double offset = std::isnan(t0) ? 0.0 : round6(t - t0);
    // What an outcome changes in wells: read before and after applying it.
    std::vector<std::pair<std::string, std::string>> touched;
    engine::Contents before;
    std::string cmdType;
    json params = json::object();
    bool outcome = e.type == engine::event::kCommandSucceeded || e.type == engine::event::kCommandFailed;
    if (outcome && s.currentCommandId == e.commandId) {
      cmdType = detail::text(s.currentCommand, "commandType");
      params = s.currentCommand.value("params", json::object());
    }
    bool ok = e.type == engine::event::kCommandSucceeded;
    std::vector<engine::Contents> beforeEach;
    if (ok && (cmdType == "aspirate" || cmdType == "dispense" || cmdType == "blowout") && params.contains("labwareId"))
      touched.emplace_back(detail::text(params, "labwareId"), detail::text(params, "wellName"));
    if (ok && cmdType == "loadLiquid" && params.contains("volumeByWell") && params["volumeByWell"].is_object())
      for (auto& [w, v] : params["volumeByWell"].items()) touched.emplace_back(detail::text(params, "labwareId"), w);
    for (auto& [lw, w] : touched) {
      auto* c = wellContents(s, lw, w);
      beforeEach.push_back(c ? *c : engine::Contents{});
    }
    std::string pipId = detail::text(params, "pipetteId");

    engine::apply(s, e, &issues);

    for (size_t i = 0; i < touched.size(); ++i) {
      auto* c = wellContents(s, touched[i].first, touched[i].second);
      engine::Contents after = c ? *c : engine::Contents{};
      WellFlow& f = flows[touched[i]];
      if (cmdType == "loadLiquid") {
        for (auto& [liq, v] : after) f.loaded[liq] += v - (beforeEach[i].count(liq) ? beforeEach[i].at(liq) : 0.0);
        continue;
      }
      std::set<std::string> liquids;
      for (auto& [liq, v] : after) liquids.insert(liq);
      for (auto& [liq, v] : beforeEach[i]) liquids.insert(liq);
      for (auto& liq : liquids) {
        double d = (after.count(liq) ? after.at(liq) : 0.0) - (beforeEach[i].count(liq) ? beforeEach[i].at(liq) : 0.0);
        if (d > 1e-9) f.in[liq] += d;
        if (d < -1e-9) f.out[liq] -= d;
      }
    }

    if (e.type == engine::event::kCommandStarted) {
      const json& p = e.payload;
      byId[e.commandId] = timeline.size();
      timeline.push_back({{"seq", e.seq},
                          {"id", e.commandId},
                          {"index", p.value("index", json())},
                          {"commandType", p.value("commandType", json())},
                          {"intent", p.value("intent", json())},
                          {"status", "running"},
                          {"startedAt", e.ts},
                          {"offsetSeconds", offset},
                          {"durationMs", nullptr},
                          {"error", nullptr}});
    } else if (outcome) {
      auto it = byId.find(e.commandId);
      if (it == byId.end()) continue;
      json& c = timeline[it->second];
      c["status"] = ok ? "succeeded" : "failed";
      c["completedAt"] = e.ts;
      double d = round3((t - detail::epochSeconds(c["startedAt"].get<std::string>())) * 1000.0);
      if (!std::isnan(d)) {
        c["durationMs"] = d;
        auto& st = types[detail::text(c, "commandType")];
        st.count++;
        st.totalMs += d;
        st.maxMs = std::max(st.maxMs, d);
      }
      if (!ok) {
        c["error"] = e.payload.value("error", json::object());
        const json& err = c["error"];
        errors.push_back({{"seq", e.seq},
                          {"ts", e.ts},
                          {"kind", "commandFailed"},
                          {"commandId", e.commandId},
                          {"commandType", c["commandType"]},
                          {"intent", c["intent"]},
                          {"params", params},
                          {"errorType", err.value("errorType", json())},
                          {"message", err.value("message", json())},
                          {"details", err.value("details", json())},
                          {"previousCommand", prevCommand.empty() ? json() : json(prevCommand)}});
      }
      prevCommand = e.commandId;
      // Tips: where each came from and where it went.
      if (ok && cmdType == "pickUpTip") {
        auto* lw = s.findLabware(detail::text(params, "labwareId"));
        openTip[pipId] = tipUses.size();
        tipUses.push_back({{"pipetteId", pipId},
                           {"labwareId", params.value("labwareId", json())},
                           {"rackSlot", lw ? json(lw->slotName) : json()},
                           {"wellName", params.value("wellName", json())},
                           {"pickUpSeq", e.seq - 1},
                           {"pickedUpAt", c["startedAt"]},
                           {"pickUpCommandId", e.commandId},
                           {"volumeAspirated", 0.0},
                           {"status", "attached"},
                           {"dropSeq", nullptr},
                           {"droppedAt", nullptr},
                           {"droppedTo", nullptr}});
      } else if (ok && cmdType == "aspirate" && openTip.count(pipId)) {
        json& u = tipUses[openTip[pipId]];
        u["volumeAspirated"] = round6(u["volumeAspirated"].get<double>() +
                                      detail::number(e.payload["result"], "volume", detail::number(params, "volume")));
      } else if (ok && cmdType == "dropTip" && openTip.count(pipId)) {
        json& u = tipUses[openTip[pipId]];
        u["status"] = "dropped";
        u["dropSeq"] = e.seq - 1;
        u["droppedAt"] = c["startedAt"];
        u["dropCommandId"] = e.commandId;
        u["dropIntent"] = c["intent"];
        u["droppedTo"] = {{"labwareId", params.value("labwareId", json())}, {"wellName", params.value("wellName", json())}};
        openTip.erase(pipId);
      }
    } else if (e.type == engine::event::kRunPaused || e.type == engine::event::kRunResumed ||
               e.type == engine::event::kRunStopRequested) {
      json c = {{"seq", e.seq}, {"type", e.type}, {"ts", e.ts}, {"offsetSeconds", offset}};
      for (auto* k : {"requestedBy", "source", "message"})
        if (e.payload.contains(k)) c[k] = e.payload[k];
      c["afterCommand"] = prevCommand.empty() ? json() : json(prevCommand);
      control.push_back(std::move(c));
    } else if (e.type == engine::event::kBusMessageRejected || e.type == engine::event::kCommandsDiscarded) {
      json c = {{"seq", e.seq}, {"ts", e.ts}, {"kind", e.type}};
      for (auto& [k, v] : e.payload.items()) c[k] = v;
      errors.push_back(std::move(c));
    } else if (e.type == engine::event::kCleanupStarted) {
      cleanup = e.payload;
      cleanup["seq"] = e.seq;
      cleanup["ts"] = e.ts;
      cleanup["commands"] = json::array();
    }
  }
  for (auto& [pip, idx] : openTip) {
    auto* p = s.pipette(pip);
    if (p && p->tipUnknown) tipUses[idx]["status"] = "unknown";
  }
  if (cleanup.is_object())
    for (auto& c : timeline)
      if (c["intent"] == "cleanup")
        cleanup["commands"].push_back({{"id", c["id"]}, {"commandType", c["commandType"]}, {"status", c["status"]}});

  // Time per command type, most first.
  double commandMs = 0;
  json byType = json::array();
  {
    std::vector<std::pair<std::string, TypeStat>> v(types.begin(), types.end());
    for (auto& [k, st] : v) commandMs += st.totalMs;
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.totalMs > b.second.totalMs; });
    for (auto& [k, st] : v)
      byType.push_back({{"commandType", k},
                        {"count", st.count},
                        {"totalMs", round3(st.totalMs)},
                        {"meanMs", round3(st.totalMs / static_cast<double>(st.count))},
                        {"maxMs", round3(st.maxMs)},
                        {"sharePercent", commandMs > 0 ? round3(100.0 * st.totalMs / commandMs) : 0.0}});
  }

  // Tip racks and the deck.
  json racks = json::array();
  json deck = json::object();
  for (auto& slot : kSlots) deck[slot] = json::array();
  for (auto& [id, lw] : s.labware) {
    auto def = lw.placed.definition;
    bool tipRack = def && def->isTiprack;
    json item = {{"kind", "labware"}, {"labwareId", id}, {"displayName", lw.displayName}, {"uri", lw.uri},
                 {"isTipRack", tipRack}};
    if (!lw.moduleId.empty()) item["moduleId"] = lw.moduleId;
    if (tipRack) {
      json used = json::array();
      for (auto& w : lw.usedTips) used.push_back(w);
      json columns = def->ordering;
      item["columns"] = columns;
      item["usedTips"] = used;
      racks.push_back({{"labwareId", id},
                       {"displayName", lw.displayName},
                       {"slotName", lw.slotName},
                       {"tips", def->wells.size()},
                       {"used", lw.usedTips.size()},
                       {"usedTips", used}});
    }
    if (deck.contains(lw.slotName)) deck[lw.slotName].push_back(std::move(item));
  }
  for (auto& [id, m] : s.modules)
    if (deck.contains(m.slotName))
      deck[m.slotName].push_back({{"kind", "module"}, {"moduleId", id}, {"model", m.model}});

  // Liquids: per well, and per liquid overall.
  json wells = json::array();
  std::map<std::string, std::map<std::string, double>> totals;  // liquid -> field -> µL
  std::set<std::pair<std::string, std::string>> keys;
  for (auto& [k, f] : flows) keys.insert(k);
  for (auto& [id, lw] : s.labware)
    for (auto& [w, c] : lw.wells)
      if (!c.empty()) keys.insert({id, w});
  for (auto& k : keys) {
    WellFlow f = flows.count(k) ? flows[k] : WellFlow{};
    auto* fin = wellContents(s, k.first, k.second);
    engine::Contents final = fin ? *fin : engine::Contents{};
    auto* lw = s.findLabware(k.first);
    wells.push_back({{"labwareId", k.first},
                     {"displayName", lw ? json(lw->displayName) : json()},
                     {"slotName", lw ? json(lw->slotName) : json()},
                     {"wellName", k.second},
                     {"loaded", contentsJson(f.loaded)},
                     {"in", contentsJson(f.in)},
                     {"out", contentsJson(f.out)},
                     {"final", contentsJson(final)}});
    for (auto& [l, v] : f.loaded) totals[liquidName(l)]["loaded"] += v;
    for (auto& [l, v] : f.in) totals[liquidName(l)]["in"] += v;
    for (auto& [l, v] : f.out) totals[liquidName(l)]["out"] += v;
    for (auto& [l, v] : final) totals[liquidName(l)]["finalInWells"] += v;
  }
  for (auto& [id, p] : s.pipettes)
    for (auto& [l, v] : p.contents) totals[liquidName(l)]["inPipettes"] += v;
  json liquidTotals = json::object();
  for (auto& [l, m] : totals) {
    json t = {{"loaded", 0.0}, {"in", 0.0}, {"out", 0.0}, {"finalInWells", 0.0}, {"inPipettes", 0.0}};
    for (auto& [k, v] : m) t[k] = round6(v);
    liquidTotals[l] = t;
  }
  json definitions = json::object();
  for (auto& [id, d] : s.liquids) definitions[id] = d;

  json foldIssues = json::array();
  for (auto& i : issues) foldIssues.push_back({{"seq", i.seq}, {"message", i.message}});

  std::int64_t protocolCommands = 0, cleanupCommands = 0;
  for (auto& c : timeline) (c["intent"] == "cleanup" ? cleanupCommands : protocolCommands)++;
  std::int64_t tipsUsed = static_cast<std::int64_t>(tipUses.size());
  return json{{"runId", runId},
              {"summary", *summary},
              {"fingerprint", fingerprintJson(*fp)},
              {"totals",
               {{"events", static_cast<std::int64_t>(events->size())},
                {"commands", static_cast<std::int64_t>(timeline.size())},
                {"protocolCommands", protocolCommands},
                {"cleanupCommands", cleanupCommands},
                {"failedCommands", std::count_if(timeline.begin(), timeline.end(),
                                                 [](const json& c) { return c["status"] == "failed"; })},
                {"commandMs", round3(commandMs)},
                {"tipsUsed", tipsUsed},
                {"controlActions", control.size()},
                {"errors", errors.size()}}},
              {"timeline", timeline},
              {"timeByType", byType},
              {"tips", {{"racks", racks}, {"uses", tipUses}}},
              {"liquids", {{"definitions", definitions}, {"totals", liquidTotals}, {"wells", wells}}},
              {"control", control},
              {"errors", errors},
              {"cleanup", cleanup},
              {"deck", deck},
              {"foldIssues", foldIssues}};
}

}  // namespace

// Recorded JSON of an unexpected shape is reported, never thrown across the module boundary.
engine::Result<json> auditRun(engine::EventLog& log, const std::string& runId) {
  try {
    return auditRunImpl(log, runId);
  } catch (const nlohmann::json::exception& e) {
    return engine::fail(engine::ErrorCode::kCorrupt, "run " + runId + ": malformed recorded data: " + e.what());
  }
}

}  // namespace runrec::recorder
