// The fold: run state from events, one event at a time (docs/event-log.md, "Folding").
#include "runrec/engine/state.hpp"

#include <algorithm>
#include <cmath>

namespace runrec::engine {

using nlohmann::json;

const char* toString(RunStatus s) {
  switch (s) {
    case RunStatus::kCreated: return "created";
    case RunStatus::kRunning: return "running";
    case RunStatus::kPaused: return "paused";
    case RunStatus::kSucceeded: return "succeeded";
    case RunStatus::kFailed: return "failed";
    case RunStatus::kStopped: return "stopped";
    case RunStatus::kInterrupted: return "interrupted";
  }
  return "unknown";
}

bool isTerminal(RunStatus s) {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kStopped ||
         s == RunStatus::kInterrupted;
}

double total(const Contents& c) {
  double t = 0;
  for (auto& [_, v] : c) t += v;
  return t;
}

Contents takeFrom(Contents& source, double volume) {
  Contents taken;
  if (volume <= 0) return taken;
  double have = total(source);
  if (have <= 1e-9) {
    taken[""] = volume;  // liquid of unknown origin
    return taken;
  }
  double fromKnown = std::min(volume, have);
  double fraction = fromKnown / have;
  for (auto it = source.begin(); it != source.end();) {
    double v = it->second * fraction;
    taken[it->first] += v;
    it->second -= v;
    if (it->second <= 1e-9)
      it = source.erase(it);
    else
      ++it;
  }
  if (volume > fromKnown + 1e-9) taken[""] += volume - fromKnown;
  return taken;
}

void addTo(Contents& dest, const Contents& add) {
  for (auto& [k, v] : add)
    if (v > 0) dest[k] += v;
}

const PipetteState* RunState::pipette(const std::string& id) const {
  auto it = pipettes.find(id);
  return it == pipettes.end() ? nullptr : &it->second;
}

const LabwareState* RunState::findLabware(const std::string& id) const {
  auto it = labware.find(id);
  return it == labware.end() ? nullptr : &it->second;
}

const LabwareState* RunState::labwareInSlot(const std::string& slotName) const {
  for (auto& [_, lw] : labware)
    if (lw.moduleId.empty() && lw.slotName == slotName) return &lw;
  return nullptr;
}

double RunState::highestLabwareTop() const {
  double top = 0;
  for (auto& [_, lw] : labware)
    if (lw.placed.definition) top = std::max(top, hardware::labwareTop(lw.placed));
  return top;
}

namespace {

const json& emptyObject() {
  static const json empty = json::object();
  return empty;
}

// A member by reference (no copy), or an empty object.
const json& objectAt(const json& j, const char* key) {
  if (!j.is_object()) return emptyObject();
  auto it = j.find(key);
  return it != j.end() ? *it : emptyObject();
}

void issue(std::vector<FoldIssue>* issues, std::int64_t seq, std::string message) {
  if (issues) issues->push_back({seq, std::move(message)});
}

// The fold runs for every event the engine appends and again over the whole run at cleanup,
// so these read members in place: one map search each, no copies (docs/performance.md).
std::optional<hardware::Point> pointFrom(const json& j) {
  if (!j.is_object()) return std::nullopt;
  auto x = j.find("x"), y = j.find("y"), z = j.find("z");
  if (x == j.end() || y == j.end() || z == j.end()) return std::nullopt;
  if (!x->is_number() || !y->is_number() || !z->is_number()) return std::nullopt;
  return hardware::Point{x->get<double>(), y->get<double>(), z->get<double>()};
}

const std::string& emptyString() {
  static const std::string empty;
  return empty;
}

// A string member by reference, or "" (missing, not a string, or `j` not an object).
const std::string& str(const json& j, const char* key) {
  if (!j.is_object()) return emptyString();
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get_ref<const std::string&>() : emptyString();
}

double num(const json& j, const char* key, double dflt = 0) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : dflt;
}

// A member by reference, or null.
const json& memberAt(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it != j.end() ? *it : null;
}

// Command types the fold tells apart, decided once per outcome instead of a chain of string
// comparisons.
enum class Cmd {
  kOther, kLoadPipette, kLoadLabware, kLoadModule, kLoadLiquid, kPickUpTip, kDropTip, kAspirate, kDispense,
  kBlowout, kTouchTip, kMoveToWell, kMoveToCoordinates, kMoveRelative, kHome, kSavePosition, kModule
};

Cmd commandKind(const std::string& type) {
  static const std::map<std::string, Cmd, std::less<>> kinds = {
      {"loadPipette", Cmd::kLoadPipette},   {"loadLabware", Cmd::kLoadLabware},
      {"loadModule", Cmd::kLoadModule},     {"loadLiquid", Cmd::kLoadLiquid},
      {"pickUpTip", Cmd::kPickUpTip},       {"dropTip", Cmd::kDropTip},
      {"aspirate", Cmd::kAspirate},         {"dispense", Cmd::kDispense},
      {"blowout", Cmd::kBlowout},           {"touchTip", Cmd::kTouchTip},
      {"moveToWell", Cmd::kMoveToWell},     {"moveToCoordinates", Cmd::kMoveToCoordinates},
      {"moveRelative", Cmd::kMoveRelative}, {"home", Cmd::kHome},
      {"savePosition", Cmd::kSavePosition}};
  auto it = kinds.find(type);
  if (it != kinds.end()) return it->second;
  if (type.rfind("temperatureModule/", 0) == 0 || type.rfind("magneticModule/", 0) == 0 ||
      type.rfind("thermocycler/", 0) == 0 || type.rfind("heaterShaker/", 0) == 0)
    return Cmd::kModule;
  return Cmd::kOther;
}

enum class Ev {
  kUnknown, kRunCreated, kRunStarted, kCommandStarted, kCommandSucceeded, kCommandFailed, kRunPaused,
  kRunResumed, kRunStopRequested, kCleanupStarted, kBusMessageRejected, kCommandsDiscarded, kRunFinished
};

Ev eventKind(const std::string& type) {
  static const std::map<std::string, Ev, std::less<>> kinds = {
      {event::kRunCreated, Ev::kRunCreated},
      {event::kRunStarted, Ev::kRunStarted},
      {event::kCommandStarted, Ev::kCommandStarted},
      {event::kCommandSucceeded, Ev::kCommandSucceeded},
      {event::kCommandFailed, Ev::kCommandFailed},
      {event::kRunPaused, Ev::kRunPaused},
      {event::kRunResumed, Ev::kRunResumed},
      {event::kRunStopRequested, Ev::kRunStopRequested},
      {event::kCleanupStarted, Ev::kCleanupStarted},
      {event::kBusMessageRejected, Ev::kBusMessageRejected},
      {event::kCommandsDiscarded, Ev::kCommandsDiscarded},
      {event::kRunFinished, Ev::kRunFinished}};
  auto it = kinds.find(type);
  return it != kinds.end() ? it->second : Ev::kUnknown;
}

void placeLabware(RunState& s, const std::string& id, const json& params, const json& result, std::int64_t seq,
                  std::vector<FoldIssue>* issues, const std::string& displayName) {
  auto def = hardware::LabwareDefinition::fromJson(result.value("definition", json()), "definition");
  if (!def) {
    issue(issues, seq, "loadLabware " + id + ": recorded definition does not parse: " + def.error().message);
    return;
  }
  // A labware loaded into a slot replaces whatever the fold had there (the fixed trash in 12).
  LabwareState lw;
  lw.id = id;
  lw.uri = def->uri();
  lw.displayName = displayName.empty() ? def->displayName : displayName;
  const json& loc = params.value("location", json::object());
  lw.slotName = loc.is_object() ? str(loc, "slotName") : std::string();
  lw.moduleId = loc.is_object() ? str(loc, "moduleId") : std::string();
  if (!lw.moduleId.empty()) {
    auto m = s.modules.find(lw.moduleId);
    if (m != s.modules.end()) lw.slotName = m->second.slotName;
  }
  if (!lw.slotName.empty() && lw.moduleId.empty()) {
    for (auto it = s.labware.begin(); it != s.labware.end();) {
      if (it->first != id && it->second.moduleId.empty() && it->second.slotName == lw.slotName)
        it = s.labware.erase(it);
      else
        ++it;
    }
  }
  auto origin = pointFrom(result.value("origin", json()));
  if (!origin) issue(issues, seq, "loadLabware " + id + ": result has no origin");
  lw.placed.definition = std::make_shared<const hardware::LabwareDefinition>(std::move(*def));
  lw.placed.origin = origin.value_or(hardware::Point{});
  s.labware[id] = std::move(lw);
}

PipetteState* pipetteFor(RunState& s, const json& params) {
  auto it = s.pipettes.find(str(params, "pipetteId"));
  return it == s.pipettes.end() ? nullptr : &it->second;
}

LabwareState* labwareFor(RunState& s, const json& params) {
  auto it = s.labware.find(str(params, "labwareId"));
  return it == s.labware.end() ? nullptr : &it->second;
}

void applySucceeded(RunState& s, const json& started, const json& result, std::int64_t seq,
                    std::vector<FoldIssue>* issues) {
  const std::string& type = str(started, "commandType");
  const Cmd kind = commandKind(type);
  const json& p = objectAt(started, "params");
  PipetteState* pip = pipetteFor(s, p);
  LabwareState* lw = labwareFor(s, p);
  const std::string& well = str(p, "wellName");

  if (pip) {
    if (auto pos = pointFrom(memberAt(result, "position"))) pip->position = pos;
  }

  if (kind == Cmd::kLoadPipette) {
    PipetteState ps;
    ps.id = str(p, "pipetteId");
    ps.name = str(p, "pipetteName");
    ps.model = str(result, "model");
    ps.mount = hardware::parseMount(str(p, "mount")).value_or(hardware::Mount::kRight);
    auto spec = hardware::findPipette(ps.model.empty() ? ps.name : ps.model);
    if (spec)
      ps.spec = *spec;
    else
      issue(issues, seq, "loadPipette " + ps.id + ": unknown pipette " + ps.name);
    s.pipettes[ps.id] = std::move(ps);
  } else if (kind == Cmd::kLoadLabware) {
    placeLabware(s, str(p, "labwareId"), p, result, seq, issues, str(p, "displayName"));
  } else if (kind == Cmd::kLoadModule) {
    ModuleState m;
    m.id = str(p, "moduleId");
    m.model = str(p, "model");
    const json& loc = p.value("location", json::object());
    m.slotName = loc.is_object() ? str(loc, "slotName") : std::string();
    if (result.contains("slots") && result["slots"].is_array())
      for (auto& sl : result["slots"])
        if (sl.is_string()) m.slots.push_back(sl.get<std::string>());
    if (m.slots.empty() && !m.slotName.empty()) m.slots.push_back(m.slotName);
    if (result.contains("moduleStatus") && result["moduleStatus"].is_object()) m.status = result["moduleStatus"];
    s.modules[m.id] = std::move(m);
  } else if (kind == Cmd::kLoadLiquid) {
    if (!lw) {
      issue(issues, seq, "loadLiquid: unknown labware " + str(p, "labwareId"));
      return;
    }
    const std::string& liquid = str(p, "liquidId");
    if (p.contains("volumeByWell") && p["volumeByWell"].is_object())
      for (auto& [w, v] : p["volumeByWell"].items())
        if (v.is_number()) lw->wells[w][liquid] = v.get<double>();
  } else if (kind == Cmd::kPickUpTip) {
    if (!pip) return issue(issues, seq, "pickUpTip: unknown pipette");
    pip->tip = TipState{str(p, "labwareId"), well, num(result, "tipLength"), num(result, "tipVolume")};
    pip->tipUnknown = false;
    pip->contents.clear();
    pip->plungerReady = true;  // a pick-up leaves the plunger at the bottom, ready
    if (lw) lw->usedTips.insert(well);
  } else if (kind == Cmd::kDropTip) {
    if (!pip) return issue(issues, seq, "dropTip: unknown pipette");
    pip->tip.reset();
    pip->tipUnknown = false;
    pip->contents.clear();
    pip->plungerReady = false;
  } else if (kind == Cmd::kAspirate) {
    if (!pip) return issue(issues, seq, "aspirate: unknown pipette");
    double v = num(result, "volume", num(p, "volume"));
    Contents taken = lw ? takeFrom(lw->wells[well], v) : Contents{{"", v}};
    if (lw && lw->wells[well].empty()) lw->wells.erase(well);
    addTo(pip->contents, taken);
    pip->plungerReady = true;
  } else if (kind == Cmd::kDispense) {
    if (!pip) return issue(issues, seq, "dispense: unknown pipette");
    double v = num(result, "volume", num(p, "volume"));
    Contents given = takeFrom(pip->contents, std::min(v, total(pip->contents)));
    if (lw) addTo(lw->wells[well], given);
  } else if (kind == Cmd::kBlowout) {
    if (!pip) return issue(issues, seq, "blowout: unknown pipette");
    if (lw) addTo(lw->wells[well], pip->contents);
    pip->contents.clear();
    pip->plungerReady = false;
  } else if (kind == Cmd::kHome) {
    for (auto& [_, ps] : s.pipettes) {
      ps.position.reset();
      ps.lastLabwareId.clear();
      ps.lastWellName.clear();
      ps.plungerReady = false;
    }
  } else if (kind == Cmd::kSavePosition) {
    if (auto pos = pointFrom(memberAt(result, "position")))
      s.savedPositions[str(result, "positionId")] = *pos;
  } else if (kind == Cmd::kModule) {
    auto m = s.modules.find(str(p, "moduleId"));
    if (m == s.modules.end()) return issue(issues, seq, type + ": unknown module");
    if (result.contains("moduleStatus") && result["moduleStatus"].is_object())
      m->second.status.update(result["moduleStatus"]);
    m->second.fault = json();
  }

  // Where the pipette is now, for arc planning: over a labware/well, or not known.
  if (pip) {
    if (kind == Cmd::kMoveToWell || kind == Cmd::kAspirate || kind == Cmd::kDispense || kind == Cmd::kBlowout ||
        kind == Cmd::kTouchTip || kind == Cmd::kPickUpTip || kind == Cmd::kDropTip) {
      const std::string& labwareId = str(p, "labwareId");
      if (pip->lastLabwareId != labwareId) pip->lastLabwareId = labwareId;
      if (pip->lastWellName != well) pip->lastWellName = well;
    } else if (kind == Cmd::kMoveToCoordinates || kind == Cmd::kMoveRelative) {
      pip->lastLabwareId.clear();
      pip->lastWellName.clear();
    }
  }
}

}  // namespace

// `movable`: the event's payload when the caller gives it up (apply(state, Event&&)): a
// commandStarted payload is then moved into the state instead of copied.
static void applyUnchecked(RunState& s, const Event& e, json* movable, std::vector<FoldIssue>* issues);

void apply(RunState& s, const Event& e, std::vector<FoldIssue>* issues) {
  try {
    applyUnchecked(s, e, nullptr, issues);
  } catch (const std::exception& ex) {
    // A payload with a wrong type (a damaged or hand-edited log): reported, not fatal.
    issue(issues, e.seq, "event " + e.type + " has a malformed payload: " + ex.what());
  }
}

void apply(RunState& s, Event&& e, std::vector<FoldIssue>* issues) {
  try {
    applyUnchecked(s, e, &e.payload, issues);
  } catch (const std::exception& ex) {
    issue(issues, e.seq, "event " + e.type + " has a malformed payload: " + ex.what());
  }
}

static void applyUnchecked(RunState& s, const Event& e, json* movable, std::vector<FoldIssue>* issues) {
  if (e.seq != s.lastSeq + 1)
    issue(issues, e.seq, "sequence gap: expected " + std::to_string(s.lastSeq + 1) + ", got " + std::to_string(e.seq));
  s.lastSeq = e.seq;
  const json& p = e.payload;

  const Ev kind = eventKind(e.type);
  switch (kind) {
    case Ev::kRunCreated: {
      s.runId = e.runId;
      s.createdAt = e.ts;
      s.protocol = p.value("protocol", json::object());
      if (p.contains("liquids") && p["liquids"].is_object())
        for (auto& [k, v] : p["liquids"].items()) s.liquids[k] = v;
      if (p.contains("fixedTrash") && p["fixedTrash"].is_object()) {
        const json& ft = p["fixedTrash"];
        json params = {{"labwareId", str(ft, "labwareId")}, {"location", {{"slotName", str(ft, "slotName")}}}};
        placeLabware(s, str(ft, "labwareId"), params, ft, e.seq, issues, "");
      }
      break;
    }
    case Ev::kRunStarted:
      s.status = RunStatus::kRunning;
      s.startedAt = e.ts;
      break;
    case Ev::kCommandStarted:
      if (s.currentCommandId)
        issue(issues, e.seq, "command " + e.commandId + " started while " + *s.currentCommandId + " had no outcome");
      s.currentCommandId = e.commandId;
      if (str(p, "intent") == "cleanup")
        s.cleanupCommands++;
      else
        s.commandsStarted++;
      if (movable)
        s.currentCommand = std::move(*movable);  // `p` is not used after this
      else
        s.currentCommand = p;
      break;
    case Ev::kCommandSucceeded:
    case Ev::kCommandFailed: {
      if (!s.currentCommandId || *s.currentCommandId != e.commandId) {
        issue(issues, e.seq, "outcome for command " + e.commandId + " which is not the command in progress");
        return;
      }
      bool cleanup = str(s.currentCommand, "intent") == "cleanup";
      if (kind == Ev::kCommandSucceeded) {
        if (!cleanup) s.commandsSucceeded++;
        applySucceeded(s, s.currentCommand, objectAt(p, "result"), e.seq, issues);
      } else {
        if (cleanup)
          s.cleanupFailed++;
        else
          s.commandsFailed++;
        s.lastError = p.value("error", json::object());
        // A hardware failure part-way through a tip command leaves the tip state unknown.
        const std::string& type = str(s.currentCommand, "commandType");
        const json& params = objectAt(s.currentCommand, "params");
        if (type.find('/') != std::string::npos) {
          auto m = s.modules.find(str(params, "moduleId"));
          if (m != s.modules.end()) m->second.fault = p.value("error", json::object());
        }
        if ((type == "pickUpTip" || type == "dropTip") &&
            p.value("error", json::object()).value("tipStateUnknown", false)) {
          auto it = s.pipettes.find(str(params, "pipetteId"));
          if (it != s.pipettes.end()) it->second.tipUnknown = true;
        }
      }
      s.currentCommandId.reset();
      s.currentCommand = json();
      break;
    }
    case Ev::kRunPaused:
      s.status = RunStatus::kPaused;
      s.pausedBy = p;
      break;
    case Ev::kRunResumed:
      s.status = RunStatus::kRunning;
      s.pausedBy = json();
      break;
    case Ev::kRunStopRequested:
      s.stopRequestedBy = str(p, "requestedBy");
      break;
    case Ev::kCleanupStarted:
      s.inCleanup = true;
      if (s.status == RunStatus::kPaused) s.status = RunStatus::kRunning;
      break;
    case Ev::kCommandsDiscarded:
      s.commandsDiscarded += p.value("count", 0);
      break;
    case Ev::kRunFinished: {
      const std::string& st = str(p, "status");
      if (st == "succeeded") s.status = RunStatus::kSucceeded;
      else if (st == "failed") s.status = RunStatus::kFailed;
      else if (st == "stopped") s.status = RunStatus::kStopped;
      else if (st == "interrupted") s.status = RunStatus::kInterrupted;
      else issue(issues, e.seq, "runFinished with unknown status \"" + st + "\"");
      s.finishedAt = e.ts;
      s.finish = p;
      break;
    }
    case Ev::kBusMessageRejected:
      break;  // recorded for the audit; no state change
    case Ev::kUnknown:
      issue(issues, e.seq, "unknown event type \"" + e.type + "\"");
      break;
  }
}

RunState fold(const std::vector<Event>& events, std::vector<FoldIssue>* issues) {
  RunState s;
  for (auto& e : events) apply(s, e, issues);
  return s;
}

namespace {
json pointJson(const hardware::Point& p) { return {{"x", p.x}, {"y", p.y}, {"z", p.z}}; }
json contentsJson(const Contents& c) {
  json j = json::object();
  for (auto& [k, v] : c) j[k.empty() ? "unknown" : k] = std::round(v * 1e6) / 1e6;
  return j;
}
}  // namespace

json toJson(const RunState& s) {
  json j;
  j["runId"] = s.runId;
  j["status"] = toString(s.status);
  j["lastSeq"] = s.lastSeq;
  j["counts"] = {{"started", s.commandsStarted},
                 {"succeeded", s.commandsSucceeded},
                 {"failed", s.commandsFailed},
                 {"discarded", s.commandsDiscarded},
                 {"cleanup", s.cleanupCommands},
                 {"cleanupFailed", s.cleanupFailed}};
  j["inCleanup"] = s.inCleanup;
  j["currentCommand"] = s.currentCommandId ? json(*s.currentCommandId) : json();
  json pips = json::object();
  for (auto& [id, p] : s.pipettes) {
    json pj = {{"name", p.name}, {"model", p.model}, {"mount", hardware::toString(p.mount)},
               {"volume", std::round(total(p.contents) * 1e6) / 1e6}, {"contents", contentsJson(p.contents)},
               {"tipUnknown", p.tipUnknown}};
    pj["tip"] = p.tip ? json{{"labwareId", p.tip->labwareId}, {"wellName", p.tip->wellName},
                             {"length", p.tip->length}, {"maxVolume", p.tip->maxVolume}}
                      : json();
    pj["position"] = p.position ? pointJson(*p.position) : json();
    pips[id] = pj;
  }
  j["pipettes"] = pips;
  json lws = json::object();
  for (auto& [id, lw] : s.labware) {
    json lj = {{"uri", lw.uri}, {"displayName", lw.displayName}, {"slotName", lw.slotName}};
    if (!lw.moduleId.empty()) lj["moduleId"] = lw.moduleId;
    if (lw.placed.definition && lw.placed.definition->isTiprack) lj["usedTips"] = lw.usedTips;
    json wells = json::object();
    for (auto& [w, c] : lw.wells)
      if (!c.empty()) wells[w] = contentsJson(c);
    if (!wells.empty()) lj["wells"] = wells;
    lws[id] = lj;
  }
  j["labware"] = lws;
  json mods = json::object();
  for (auto& [id, m] : s.modules) {
    mods[id] = {{"model", m.model}, {"slotName", m.slotName}, {"slots", m.slots}, {"status", m.status}};
    if (!m.fault.is_null()) mods[id]["fault"] = m.fault;
  }
  j["modules"] = mods;
  return j;
}

}  // namespace runrec::engine
