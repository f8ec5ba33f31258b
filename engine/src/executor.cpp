// Command execution: parameter checks, invalid-action checks against the folded state,
// motion planning (arcs, touch-tip paths), and the robot calls. One function per command.
#include "executor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "runrec/hardware/geometry.hpp"

namespace runrec::engine {

using nlohmann::json;
using hardware::Mount;
using hardware::Point;

json CommandError::toJson() const {
  json j = {{"errorType", errorType}, {"message", message}, {"details", details}};
  if (tipStateUnknown) j["tipStateUnknown"] = true;
  return j;
}

namespace {

// Thrown inside the executor only; execute() turns it into a CommandOutcome.
struct Failure {
  CommandError error;
};

[[noreturn]] void failWith(const std::string& type, const std::string& message, json details = json::object()) {
  throw Failure{CommandError{type, message, std::move(details), false}};
}

void check(const hardware::Status& st, bool tipCommand = false) {
  if (st) return;
  CommandError e{"Hardware", st.error().message,
                 {{"code", hardware::toString(st.error().code)}, {"hardware", st.error().details}}, tipCommand};
  throw Failure{std::move(e)};
}

// Built member by member: an initializer list copies every element (this runs for every
// command's result).
json pointJson(const Point& p) {
  auto r = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  json o = json::object();
  o["x"] = r(p.x);
  o["y"] = r(p.y);
  o["z"] = r(p.z);
  return o;
}

// {"position": {x, y, z}}: the result of every motion command.
json positionResult(const Point& p) {
  json o = json::object();
  o["position"] = pointJson(p);
  return o;
}

const json& field(const json& params, const char* key) {
  static const json null;
  auto it = params.find(key);
  return it == params.end() ? null : *it;
}

std::string typeName(const json& j) {
  if (j.is_null()) return "null";
  if (j.is_string()) return "\"" + j.get<std::string>() + "\"";
  return j.dump();
}

std::string requireString(const json& params, const char* key) {
  const json& v = field(params, key);
  if (v.is_null()) failWith("InvalidParams", std::string("params.") + key + ": missing");
  if (!v.is_string()) failWith("InvalidParams", std::string("params.") + key + ": expected a string, got " + typeName(v));
  return v.get<std::string>();
}

double requireNumber(const json& params, const char* key) {
  const json& v = field(params, key);
  if (v.is_null()) failWith("InvalidParams", std::string("params.") + key + ": missing");
  if (!v.is_number()) failWith("InvalidParams", std::string("params.") + key + ": expected a number, got " + typeName(v));
  return v.get<double>();
}

std::optional<double> optionalNumber(const json& params, const char* key) {
  const json& v = field(params, key);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number()) failWith("InvalidParams", std::string("params.") + key + ": expected a number, got " + typeName(v));
  return v.get<double>();
}

const PipetteState& pipetteOf(const RunState& s, const json& params) {
  std::string id = requireString(params, "pipetteId");
  auto* p = s.pipette(id);
  if (!p) failWith("NotLoaded", "pipette \"" + id + "\" has not been loaded", {{"pipetteId", id}});
  if (!p->spec) failWith("NotLoaded", "pipette \"" + id + "\" has no known model", {{"pipetteId", id}});
  return *p;
}

const LabwareState& labwareOf(const RunState& s, const json& params) {
  std::string id = requireString(params, "labwareId");
  auto* lw = s.findLabware(id);
  if (!lw) failWith("NotLoaded", "labware \"" + id + "\" has not been loaded", {{"labwareId", id}});
  return *lw;
}

struct WellLoc {
  hardware::WellOrigin origin;
  Point offset;
};

WellLoc wellLocation(const json& params, hardware::WellOrigin dflt, Point dfltOffset = {}) {
  const json& wl = field(params, "wellLocation");
  WellLoc loc{dflt, dfltOffset};
  if (wl.is_null()) return loc;
  if (!wl.is_object()) failWith("InvalidParams", "params.wellLocation: expected an object");
  if (wl.contains("origin")) {
    if (!wl["origin"].is_string()) failWith("InvalidParams", "params.wellLocation.origin: expected a string");
    auto o = hardware::parseWellOrigin(wl["origin"].get<std::string>());
    if (!o) failWith("InvalidParams", "params.wellLocation.origin: expected \"top\", \"bottom\" or \"center\", got " + typeName(wl["origin"]));
    loc.origin = *o;
  }
  if (wl.contains("offset")) {
    const json& off = wl["offset"];
    if (!off.is_object()) failWith("InvalidParams", "params.wellLocation.offset: expected an object");
    loc.offset = {optionalNumber(off, "x").value_or(0), optionalNumber(off, "y").value_or(0),
                  optionalNumber(off, "z").value_or(0)};
  }
  return loc;
}

class Run {
 public:
  Run(const RunState& s, hardware::Robot& robot, const hardware::LabwareLibrary& lib, hardware::ModuleHub& modules,
      const std::string& commandId)
      : s_(s), robot_(robot), lib_(lib), modules_(modules), commandId_(commandId) {}

  json dispatch(const std::string& type, const json& p) {
    if (type == "loadPipette") return loadPipette(p);
    if (type == "loadLabware") return loadLabware(p);
    if (type == "loadModule") return loadModule(p);
    if (type == "loadLiquid") return loadLiquid(p);
    if (type == "home") return home(p);
    if (type == "pickUpTip") return pickUpTip(p);
    if (type == "dropTip") return dropTip(p);
    if (type == "aspirate") return aspirate(p);
    if (type == "dispense") return dispense(p);
    if (type == "blowout") return blowout(p);
    if (type == "touchTip") return touchTip(p);
    if (type == "moveToWell") return moveToWell(p);
    if (type == "moveToCoordinates") return moveToCoordinates(p);
    if (type == "moveRelative") return moveRelative(p);
    if (type == "savePosition") return savePosition(p);
    if (type == "waitForDuration") return waitForDuration(p);
    // The pause itself is the engine's business (runPaused after the outcome).
    if (type == "waitForResume" || type == "pause") return json::object();
    if (type == "comment") return json::object();
    if (type.rfind("temperatureModule/", 0) == 0 || type.rfind("magneticModule/", 0) == 0 ||
        type.rfind("thermocycler/", 0) == 0 || type.rfind("heaterShaker/", 0) == 0)
      return moduleCommand(type, p);
    failWith("Unsupported", "unsupported command type \"" + type + "\"");
  }

 private:
  // Where the mount really is: the robot knows best (a pick-up retracts, switching mounts
  // lifts the other one); the last recorded position is the fallback.
  Point currentPosition(const PipetteState& pip) {
    auto pos = robot_.positions();
    if (pos) return pip.mount == Mount::kLeft ? pos->left.point : pos->right.point;
    if (pip.position) return *pip.position;
    check(tl::unexpected(pos.error()));
    return {};
  }

  // Labware with the centerMultichannelOnWells quirk (reservoirs, the trash): a multi-channel
  // pipette is centred on the well, so its back nozzle (the reference) goes half the span
  // of its channels (9 mm apart) further back.
  Point centred(const PipetteState& pip, const LabwareState& lw, Point target) {
    if (pip.spec->channels > 1 && lw.placed.definition) {
      const auto& q = lw.placed.definition->quirks;
      if (std::find(q.begin(), q.end(), "centerMultichannelOnWells") != q.end())
        target.y += (pip.spec->channels - 1) * 9.0 / 2;
    }
    return target;
  }

  double tipLength(const PipetteState& pip) { return pip.tip ? pip.tip->length : 0.0; }

  // Moves the pipette's critical point to `target`, arcing as Opentrons does.
  Point moveAlongArc(const PipetteState& pip, const Point& target, const std::string& labwareId,
                     const std::string& wellName, std::optional<double> minimumZ = std::nullopt,
                     bool forceDirect = false, std::optional<double> speed = std::nullopt) {
    if (!labwareId.empty()) checkModuleRestrictions(pip, labwareId);
    Point from = currentPosition(pip);
    hardware::ArcRequest req;
    req.from = from;
    req.to = target;
    req.maxZ = hardware::maxCriticalPointZ(*pip.spec, tipLength(pip));
    req.minimumZHeight = minimumZ;
    req.forceDirect = forceDirect;
    bool sameWell = !labwareId.empty() && pip.lastLabwareId == labwareId && pip.lastWellName == wellName &&
                    pip.position.has_value();
    bool sameLabware = !labwareId.empty() && pip.lastLabwareId == labwareId && pip.position.has_value();
    if (sameWell) {
      req.forceDirect = true;
    } else if (sameLabware) {
      auto* lw = s_.findLabware(labwareId);
      req.safeZ = lw ? hardware::labwareTop(lw->placed) : s_.highestLabwareTop();
      req.margin = 5;
    } else {
      req.safeZ = s_.highestLabwareTop();
      req.margin = 10;
    }
    for (const Point& wp : hardware::planArc(req)) check(robot_.moveTo(pip.mount, wp, speed));
    return target;
  }

  Point wellTarget(const LabwareState& lw, const std::string& well, const WellLoc& loc) {
    auto pt = hardware::wellPosition(lw.placed, well, loc.origin, loc.offset);
    if (!pt)
      failWith("InvalidParams", "params.wellName: " + pt.error().message,
               {{"labwareId", lw.id}, {"wellName", well}});
    return *pt;
  }

  json loadPipette(const json& p) {
    std::string id = requireString(p, "pipetteId");
    std::string name = requireString(p, "pipetteName");
    std::string mountText = requireString(p, "mount");
    auto mount = hardware::parseMount(mountText);
    if (!mount) failWith("InvalidParams", "params.mount: expected \"left\" or \"right\", got \"" + mountText + "\"");
    auto spec = hardware::findPipette(name);
    if (!spec) failWith("InvalidParams", "params.pipetteName: " + spec.error().message);
    for (auto& [otherId, other] : s_.pipettes)
      if (other.mount == *mount && otherId != id)
        failWith("InvalidAction", "the " + mountText + " mount already holds pipette \"" + otherId + "\"",
                 {{"mount", mountText}});
    check(robot_.attachInstrument(*mount, *spec));
    return {{"pipetteId", id}, {"model", (*spec)->model}};
  }

  json loadLabware(const json& p) {
    std::string id = requireString(p, "labwareId");
    std::string loadName = requireString(p, "loadName");
    std::string ns = field(p, "namespace").is_string() ? p["namespace"].get<std::string>() : "opentrons";
    int version = field(p, "version").is_number_integer() ? p["version"].get<int>() : 1;
    auto def = lib_.find(ns, loadName, version);
    if (!def) failWith("InvalidParams", "params.loadName: " + def.error().message);
    const json& loc = field(p, "location");
    if (!loc.is_object()) failWith("InvalidParams", "params.location: expected an object");
    Point origin;
    if (loc.contains("slotName")) {
      if (!loc["slotName"].is_string()) failWith("InvalidParams", "params.location.slotName: expected a string");
      std::string slot = loc["slotName"].get<std::string>();
      auto o = hardware::slotOrigin(slot);
      if (!o) failWith("InvalidParams", "params.location.slotName: " + o.error().message);
      origin = *o;
      if (auto* occupant = s_.labwareInSlot(slot); occupant && occupant->id != id) {
        bool trash = occupant->placed.definition &&
                     std::find(occupant->placed.definition->quirks.begin(), occupant->placed.definition->quirks.end(),
                               "fixedTrash") != occupant->placed.definition->quirks.end();
        if (!trash)
          failWith("InvalidAction", "slot " + slot + " is occupied by labware \"" + occupant->id + "\"",
                   {{"slotName", slot}});
      }
      for (auto& [mid, m] : s_.modules)
        if (m.slotName == slot || std::find(m.slots.begin(), m.slots.end(), slot) != m.slots.end())
          failWith("InvalidAction", "slot " + slot + " is occupied by module \"" + mid + "\" (" + m.model + ")",
                   {{"slotName", slot}, {"moduleId", mid}});
    } else if (loc.contains("moduleId")) {
      if (!loc["moduleId"].is_string()) failWith("InvalidParams", "params.location.moduleId: expected a string");
      std::string mid = loc["moduleId"].get<std::string>();
      auto m = s_.modules.find(mid);
      if (m == s_.modules.end()) failWith("NotLoaded", "module \"" + mid + "\" has not been loaded", {{"moduleId", mid}});
      for (auto& [otherId, other] : s_.labware)
        if (other.moduleId == mid && otherId != id)
          failWith("InvalidAction", "module \"" + mid + "\" already holds labware \"" + otherId + "\"",
                   {{"moduleId", mid}, {"labwareId", otherId}});
      const auto* model = hardware::findModuleModel(m->second.model);
      if (!model) failWith("InvalidParams", "module \"" + mid + "\" has an unknown model \"" + m->second.model + "\"");
      auto o = hardware::slotOrigin(m->second.slotName);
      if (!o) failWith("InvalidParams", "module slot: " + o.error().message);
      auto off = hardware::moduleLabwareOffset(*model, m->second.slotName);
      if (!off) failWith("InvalidParams", "module slot: " + off.error().message);
      origin = {o->x + off->x, o->y + off->y, o->z + off->z};
    } else {
      failWith("InvalidParams", "params.location: expected {\"slotName\"} or {\"moduleId\"}");
    }
    return {{"labwareId", id}, {"definition", (*def)->raw}, {"origin", pointJson(origin)}};
  }

  json loadModule(const json& p) {
    std::string id = requireString(p, "moduleId");
    std::string modelName = requireString(p, "model");
    const auto* model = hardware::findModuleModel(modelName);
    if (!model) failWith("InvalidParams", "params.model: unknown OT-2 module model \"" + modelName + "\"");
    const json& loc = field(p, "location");
    if (!loc.is_object() || !loc.contains("slotName") || !loc["slotName"].is_string())
      failWith("InvalidParams", "params.location.slotName: missing");
    std::string slot = loc["slotName"].get<std::string>();
    if (auto o = hardware::slotOrigin(slot); !o) failWith("InvalidParams", "params.location.slotName: " + o.error().message);
    auto slots = hardware::moduleSlots(*model, slot);
    if (!slots) failWith("InvalidParams", "params.location.slotName: " + slots.error().message, {{"slotName", slot}});
    for (const auto& sl : *slots) {
      if (auto* occupant = s_.labwareInSlot(sl))
        failWith("InvalidAction", "slot " + sl + " is occupied by labware \"" + occupant->id + "\"", {{"slotName", sl}});
      for (auto& [mid, m] : s_.modules)
        if (mid != id && (m.slotName == sl || std::find(m.slots.begin(), m.slots.end(), sl) != m.slots.end()))
          failWith("InvalidAction", "slot " + sl + " is occupied by module \"" + mid + "\"", {{"slotName", sl}});
    }
    auto driver = modules_.attach(id, modelName, slot);
    if (!driver) check(tl::unexpected(driver.error()));
    json status = readStatus(**driver, id, json::object());
    bool simulated = modules_.virtualModule(id) != nullptr;
    auto off = hardware::moduleLabwareOffset(*model, slot);
    return {{"moduleId", id},
            {"model", modelName},
            {"slots", *slots},
            {"labwareOffset", pointJson(off.value_or(Point{}))},
            {"simulated", simulated},
            {"device", (*driver)->describe()},
            {"moduleStatus", status}};
  }

  json loadLiquid(const json& p) {
    requireString(p, "liquidId");
    const LabwareState& lw = labwareOf(s_, p);
    const json& v = field(p, "volumeByWell");
    if (!v.is_object()) failWith("InvalidParams", "params.volumeByWell: expected an object");
    for (auto& [w, vol] : v.items()) {
      if (!lw.placed.definition->well(w))
        failWith("InvalidParams", "params.volumeByWell." + w + ": no such well in " + lw.uri);
      if (!vol.is_number() || vol.get<double>() < 0)
        failWith("InvalidParams", "params.volumeByWell." + w + ": expected a volume >= 0, got " + typeName(vol));
    }
    return json::object();
  }

  // `afterRun` (cleanup's last step): stop the robot as Opentrons does at the end of a run
  // (on the Smoothie: halt, reset and re-configure the board), then home.
  json home(const json& p) {
    auto afterRun = p.find("afterRun");
    if (afterRun != p.end() && !afterRun->is_boolean()) failWith("InvalidParams", "params.afterRun: expected true or false");
    check(afterRun != p.end() && afterRun->get<bool>() ? robot_.stopAndHome() : robot_.home());
    return json::object();
  }

  json pickUpTip(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    const auto& def = *lw.placed.definition;
    if (!def.isTiprack) failWith("InvalidAction", "labware \"" + lw.id + "\" (" + lw.uri + ") is not a tip rack");
    if (pip.tip)
      failWith("InvalidAction", "pipette \"" + pip.id + "\" already has a tip attached (from " + pip.tip->labwareId + " " +
                                    pip.tip->wellName + "); drop it first",
               {{"pipetteId", pip.id}});
    const auto* w = def.well(well);
    if (!w) failWith("InvalidParams", "params.wellName: no well \"" + well + "\" in " + lw.uri);
    if (lw.usedTips.count(well))
      failWith("InvalidAction", "the tip at " + well + " of \"" + lw.id + "\" has already been used",
               {{"labwareId", lw.id}, {"wellName", well}});
    // The pipette's overlap for this rack, else the pipette's default, as Opentrons does at
    // every API level (legacy core and protocol engine alike): a rack's own
    // `parameters.tipOverlap` is never used (the basic_smoothie trace: a p20 with a 300 µL
    // tip is 59.3 - 8.25, not 59.3 - 7.47).
    double overlap = pip.spec->tipOverlapFor(def.uri());
    double length = def.tipLength - overlap;
    Point target = wellTarget(lw, well, wellLocation(p, hardware::WellOrigin::kTop));
    moveAlongArc(pip, target, lw.id, well);
    check(robot_.pickUpTip(pip.mount, length), true);
    double tipVolume = std::min(w->totalLiquidVolume, pip.spec->maxVolume);
    return {{"tipLength", std::round(length * 1000) / 1000}, {"tipVolume", tipVolume},
            {"tipDiameter", w->diameter}, {"position", pointJson(target)}};
  }

  json dropTip(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    if (!lw.placed.definition->well(well)) failWith("InvalidParams", "params.wellName: no well \"" + well + "\" in " + lw.uri);
    // Tip racks: back into the rack, half the tip's length down from the top (Opentrons'
    // return-tip height); elsewhere (the trash): at the top of the well.
    Point dflt{};
    if (lw.placed.definition->isTiprack && pip.tip) dflt.z = -pip.spec->returnTipHeight * pip.tip->length;
    WellLoc loc = wellLocation(p, hardware::WellOrigin::kTop, dflt);
    Point target = centred(pip, lw, wellTarget(lw, well, loc));
    moveAlongArc(pip, target, lw.id, well);
    check(robot_.dropTip(pip.mount), true);
    return positionResult(target);
  }

  const PipetteState& pipetteWithTip(const json& p, const char* action) {
    const PipetteState& pip = pipetteOf(s_, p);
    if (!pip.tip)
      failWith("InvalidAction", std::string("cannot ") + action + ": pipette \"" + pip.id + "\" has no tip attached",
               {{"pipetteId", pip.id}});
    return pip;
  }

  double flowRate(const json& p, double dflt) {
    auto fr = optionalNumber(p, "flowRate");
    if (fr && *fr <= 0) failWith("InvalidParams", "params.flowRate: expected a flow rate > 0, got " + std::to_string(*fr));
    return fr.value_or(dflt);
  }

  json aspirate(const json& p) {
    const PipetteState& pip = pipetteWithTip(p, "aspirate");
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    double volume = requireNumber(p, "volume");
    if (volume < 0) failWith("InvalidParams", "params.volume: expected a volume >= 0");
    double held = total(pip.contents);
    double capacity = std::min(pip.spec->maxVolume, pip.tip->maxVolume);
    if (held + volume > capacity + 1e-6)
      failWith("InvalidAction",
               "cannot aspirate " + fmt(volume) + " µL: pipette \"" + pip.id + "\" holds " + fmt(held) +
                   " µL and its tip takes at most " + fmt(capacity) + " µL",
               {{"volume", volume}, {"held", held}, {"capacity", capacity}});
    double rate = flowRate(p, pip.spec->defaultFlowRates().aspirate);
    WellLoc loc = wellLocation(p, hardware::WellOrigin::kBottom, {0, 0, 1.0});
    Point target = centred(pip, lw, wellTarget(lw, well, loc));
    if (!pip.plungerReady) {
      // Opentrons readies the plunger above the liquid: at the top of the well.
      Point top = centred(pip, lw, wellTarget(lw, well, {hardware::WellOrigin::kTop, {}}));
      moveAlongArc(pip, top, lw.id, well);
      check(robot_.preparePlunger(pip.mount));
      check(robot_.moveTo(pip.mount, target, std::nullopt));
    } else {
      moveAlongArc(pip, target, lw.id, well);
    }
    check(robot_.aspirate(pip.mount, volume, rate));
    return {{"volume", volume}, {"position", pointJson(target)}};
  }

  json dispense(const json& p) {
    const PipetteState& pip = pipetteWithTip(p, "dispense");
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    double volume = requireNumber(p, "volume");
    if (volume < 0) failWith("InvalidParams", "params.volume: expected a volume >= 0");
    double held = total(pip.contents);
    if (volume > held + 1e-6)
      failWith("InvalidAction", "cannot dispense " + fmt(volume) + " µL: pipette \"" + pip.id + "\" holds " + fmt(held) + " µL",
               {{"volume", volume}, {"held", held}});
    double rate = flowRate(p, pip.spec->defaultFlowRates().dispense);
    Point target = centred(pip, lw, wellTarget(lw, well, wellLocation(p, hardware::WellOrigin::kBottom, {0, 0, 1.0})));
    moveAlongArc(pip, target, lw.id, well);
    check(robot_.dispense(pip.mount, volume, rate));
    return {{"volume", volume}, {"position", pointJson(target)}};
  }

  json blowout(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    double rate = flowRate(p, pip.spec->defaultFlowRates().blowOut);
    Point target = centred(pip, lw, wellTarget(lw, well, wellLocation(p, hardware::WellOrigin::kTop)));
    moveAlongArc(pip, target, lw.id, well);
    check(robot_.blowOut(pip.mount, rate));
    return positionResult(target);
  }

  // `apiLevel` (optional, "2.N"): the Python Protocol API level whose path to follow. Below
  // 2.14 that is Opentrons' legacy path (docs/event-log.md, "touchTip paths"); absent, or
  // 2.14 and later, the protocol engine's.
  json touchTip(const json& p) {
    const PipetteState& pip = pipetteWithTip(p, "touch tip");
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    double radius = optionalNumber(p, "radius").value_or(1.0);
    if (radius <= 0 || radius > 1) failWith("InvalidParams", "params.radius: expected 0 < radius <= 1, got " + fmt(radius));
    double speed = std::clamp(optionalNumber(p, "speed").value_or(60.0), 1.0, 80.0);
    int level = apiMinorOf(p);
    Point center = wellTarget(lw, well, wellLocation(p, hardware::WellOrigin::kTop));
    auto points = hardware::touchTipPoints(lw.placed, well, radius, center.z);
    if (!points) failWith("InvalidAction", "cannot touch tip: " + points.error().message, {{"labwareId", lw.id}});
    Point approach = center;
    if (level < 14) {
      // Opentrons' legacy build_edges: right, left, centre, back, front and no return to the
      // centre; before 2.4 no centre either, and the approach is the well's top itself.
      points->pop_back();
      if (level < 4) {
        points->erase(points->begin() + 2);
        approach = wellTarget(lw, well, {hardware::WellOrigin::kTop, {}});
      } else {
        legacyEdgePath(pip, lw, well, *points);
      }
    }
    moveAlongArc(pip, approach, lw.id, well);
    for (const Point& pt : *points) check(robot_.moveTo(pip.mount, pt, speed));
    return positionResult(points->empty() ? approach : points->back());
  }

  // params.apiLevel's minor version for touchTip (major must be 2); 14 when absent.
  static int apiMinorOf(const json& p) {
    const json& v = field(p, "apiLevel");
    if (v.is_null()) return 14;
    int major = 0, minor = 0;
    char tail = 0;
    if (!v.is_string() || std::sscanf(v.get<std::string>().c_str(), "%d.%d%c", &major, &minor, &tail) != 2 ||
        major != 2 || minor < 0)
      failWith("InvalidParams", "params.apiLevel: expected a Protocol API level \"2.N\", got " + typeName(v));
    return minor;
  }

  // Opentrons' legacy determine_edge_path (API 2.4-2.13): a left pipette in the labware's
  // last column leaves out the right edge when the labware is in slot 3, 6 or 9 or a module
  // sits right of it; a right pipette in the first column leaves out the left edge when a
  // module sits left of it. `points` is right, left, centre, back, front.
  void legacyEdgePath(const PipetteState& pip, const LabwareState& lw, const std::string& well,
                      std::vector<Point>& points) const {
    const auto& ordering = lw.placed.definition->ordering;
    if (ordering.empty()) return;
    auto inColumn = [&](const std::vector<std::string>& col) { return std::find(col.begin(), col.end(), well) != col.end(); };
    bool leftMount = pip.mount == hardware::Mount::kLeft;
    bool leftCriteria = leftMount && inColumn(ordering.back());
    bool rightCriteria = !leftMount && inColumn(ordering.front());
    int slot = std::atoi(lw.slotName.c_str());
    auto moduleIn = [&](int other) {
      for (const auto& [id, m] : s_.modules)
        if (std::atoi(m.slotName.c_str()) == other) return true;
      return false;
    };
    // The neighbour on the side the mount's other body is: right of the labware for the left
    // mount, left of it for the right mount (none past the deck's edge).
    bool nextToModule = slot >= 1 && slot <= 12 &&
                        (leftMount ? slot % 3 != 0 && moduleIn(slot + 1) : slot % 3 != 1 && moduleIn(slot - 1));
    if (leftCriteria && (slot == 3 || slot == 6 || slot == 9 || nextToModule))
      points.erase(points.begin());  // no right edge
    else if (rightCriteria && nextToModule)
      points.erase(points.begin() + 1);  // no left edge
  }

  json moveToWell(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    const LabwareState& lw = labwareOf(s_, p);
    std::string well = requireString(p, "wellName");
    Point target = centred(pip, lw, wellTarget(lw, well, wellLocation(p, hardware::WellOrigin::kTop)));
    bool direct = field(p, "forceDirect").is_boolean() && p["forceDirect"].get<bool>();
    moveAlongArc(pip, target, lw.id, well, optionalNumber(p, "minimumZHeight"), direct, optionalNumber(p, "speed"));
    return positionResult(target);
  }

  json moveToCoordinates(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    const json& c = field(p, "coordinates");
    if (!c.is_object()) failWith("InvalidParams", "params.coordinates: expected an object {x, y, z}");
    Point target{requireNumber(c, "x"), requireNumber(c, "y"), requireNumber(c, "z")};
    bool direct = field(p, "forceDirect").is_boolean() && p["forceDirect"].get<bool>();
    moveAlongArc(pip, target, "", "", optionalNumber(p, "minimumZHeight"), direct, optionalNumber(p, "speed"));
    return positionResult(target);
  }

  json moveRelative(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    std::string axis = requireString(p, "axis");
    double distance = requireNumber(p, "distance");
    Point target = currentPosition(pip);
    if (axis == "x") target.x += distance;
    else if (axis == "y") target.y += distance;
    else if (axis == "z") target.z += distance;
    else failWith("InvalidParams", "params.axis: expected \"x\", \"y\" or \"z\", got \"" + axis + "\"");
    check(robot_.moveTo(pip.mount, target, std::nullopt));
    return positionResult(target);
  }

  json savePosition(const json& p) {
    const PipetteState& pip = pipetteOf(s_, p);
    std::string positionId = field(p, "positionId").is_string() ? p["positionId"].get<std::string>() : "pos-" + commandId_;
    return {{"positionId", positionId}, {"position", pointJson(currentPosition(pip))}};
  }

  json waitForDuration(const json& p) {
    double seconds = requireNumber(p, "seconds");
    if (seconds < 0) failWith("InvalidParams", "params.seconds: expected >= 0");
    check(robot_.delay(seconds));
    return json::object();
  }

  // ---- modules ----

  // The module's state as its driver reads it back (docs/event-log.md, module results).
  json readStatus(hardware::ModuleDriver& d, const std::string& moduleId, const json& previous) {
    auto r = d.readAll();
    if (!r) check(tl::unexpected(r.error()));
    auto opt = [](const std::optional<double>& v) { return v ? json(std::round(*v * 100) / 100) : json(); };
    json st = json::object();
    switch (d.model().type) {
      case hardware::ModuleType::kTemperature:
        st = {{"targetCelsius", opt(r->targetCelsius)}, {"currentCelsius", opt(r->currentCelsius)}};
        break;
      case hardware::ModuleType::kMagnetic: {
        double pos = r->magnetPosition.value_or(0);
        bool engaged = pos > 1e-6;
        st = {{"engaged", engaged},
              {"hardwareHeight", std::round(pos * 1000) / 1000},
              {"height", engaged ? previous.value("height", json()) : json()}};
        break;
      }
      case hardware::ModuleType::kThermocycler:
        st = {{"targetBlockCelsius", opt(r->targetCelsius)},
              {"currentBlockCelsius", opt(r->currentCelsius)},
              {"holdSecondsRemaining", opt(r->holdSecondsRemaining)},
              {"targetLidCelsius", opt(r->lidTargetCelsius)},
              {"currentLidCelsius", opt(r->lidCelsius)},
              {"lid", r->lid}};
        break;
      case hardware::ModuleType::kHeaterShaker:
        st = {{"targetCelsius", opt(r->targetCelsius)},
              {"currentCelsius", opt(r->currentCelsius)},
              {"targetRpm", r->targetRpm && *r->targetRpm > 0 ? json(*r->targetRpm) : json()},
              {"currentRpm", r->currentRpm.value_or(0)},
              {"latch", r->latch}};
        break;
    }
    (void)moduleId;
    return st;
  }

  // The driver for a loaded module; after a crash (recovery cleanup) the module is attached
  // again from what the log says was loaded.
  hardware::ModuleDriver& driverFor(const ModuleState& m) {
    if (auto* d = modules_.find(m.id)) return *d;
    auto d = modules_.attach(m.id, m.model, m.slotName);
    if (!d) check(tl::unexpected(d.error()));
    return **d;
  }

  double celsiusIn(const json& p, const char* key, const hardware::ModuleModel& model, double lo, double hi) {
    double c = requireNumber(p, key);
    if (c < lo || c > hi)
      failWith("InvalidParams",
               std::string("params.") + key + ": the " + model.displayName + " takes " + fmt(lo) + "–" + fmt(hi) +
                   " °C, got " + fmt(c),
               {{key, c}, {"min", lo}, {"max", hi}});
    return c;
  }

  // What to wait for: the command's celsius, else the target the log says is set.
  double waitTarget(const json& p, const json& status, const char* statusKey, const std::string& type) {
    if (auto c = optionalNumber(p, "celsius")) return *c;
    const json& t = status.contains(statusKey) ? status[statusKey] : json();
    if (!t.is_number()) failWith("InvalidAction", type + ": no target temperature is set", {{"moduleId", requireString(p, "moduleId")}});
    return t.get<double>();
  }

  json moduleCommand(const std::string& type, const json& p) {
    std::string mid = requireString(p, "moduleId");
    auto it = s_.modules.find(mid);
    if (it == s_.modules.end()) failWith("NotLoaded", "module \"" + mid + "\" has not been loaded", {{"moduleId", mid}});
    const ModuleState& m = it->second;
    std::string family = type.substr(0, type.find('/'));
    std::string model = m.model;
    bool matches = (family == "temperatureModule" && model.rfind("temperatureModule", 0) == 0) ||
                   (family == "magneticModule" && model.rfind("magneticModule", 0) == 0) ||
                   (family == "thermocycler" && model.rfind("thermocyclerModule", 0) == 0) ||
                   (family == "heaterShaker" && model.rfind("heaterShakerModule", 0) == 0);
    if (!matches) failWith("InvalidAction", type + " sent to module \"" + mid + "\" which is a " + model);
    const auto* mm = hardware::findModuleModel(model);
    if (!mm) failWith("InvalidParams", "module \"" + mid + "\" has an unknown model \"" + model + "\"");
    std::string cmd = type.substr(type.find('/') + 1);
    const json& status = m.status;
    json extra = json::object();

    // Checks before anything reaches the module.
    auto unsupported = [&] { failWith("Unsupported", "unsupported module command \"" + type + "\""); };
    double celsius = 0, height = 0, hw = 0;
    int rpm = 0;
    std::vector<std::pair<double, double>> profile;  // (celsius, holdSeconds)
    std::optional<double> volume, hold;
    if (family == "temperatureModule") {
      if (cmd == "setTargetTemperature") celsius = celsiusIn(p, "celsius", *mm, mm->minCelsius, mm->maxCelsius);
      else if (cmd == "waitForTemperature") celsius = waitTarget(p, status, "targetCelsius", type);
      else if (cmd != "deactivate") unsupported();
    } else if (family == "magneticModule") {
      if (cmd == "engage") {
        height = requireNumber(p, "height");
        hw = hardware::magnetHardwareHeight(*mm, height);
        if (hw < 0 || hw > mm->maxEngageHeight)
          failWith("InvalidParams",
                   "params.height: " + fmt(height) + " mm above the labware bottom is outside the " + mm->displayName +
                       "'s range",
                   {{"height", height}, {"hardwareHeight", hw}, {"maxEngageHeight", mm->maxEngageHeight}});
      } else if (cmd != "disengage") {
        unsupported();
      }
    } else if (family == "thermocycler") {
      volume = optionalNumber(p, "blockMaxVolumeUl");
      if (volume && (*volume < 0 || *volume > 100))
        failWith("InvalidParams", "params.blockMaxVolumeUl: expected 0–100 µL, got " + fmt(*volume));
      if (cmd == "setTargetBlockTemperature") {
        celsius = celsiusIn(p, "celsius", *mm, mm->minCelsius, mm->maxCelsius);
        hold = optionalNumber(p, "holdTimeSeconds");
      } else if (cmd == "waitForBlockTemperature") {
        celsius = waitTarget(p, status, "targetBlockCelsius", type);
      } else if (cmd == "setTargetLidTemperature") {
        celsius = celsiusIn(p, "celsius", *mm, 37, 110);
      } else if (cmd == "waitForLidTemperature") {
        celsius = waitTarget(p, status, "targetLidCelsius", type);
      } else if (cmd == "runProfile") {
        const json& prof = field(p, "profile");
        if (!prof.is_array() || prof.empty()) failWith("InvalidParams", "params.profile: expected a non-empty array of steps");
        for (std::size_t i = 0; i < prof.size(); ++i) {
          if (!prof[i].is_object()) failWith("InvalidParams", "params.profile[" + std::to_string(i) + "]: expected an object");
          double c = requireNumber(prof[i], "celsius");
          double h = requireNumber(prof[i], "holdSeconds");
          if (c < mm->minCelsius || c > mm->maxCelsius || h < 0)
            failWith("InvalidParams", "params.profile[" + std::to_string(i) + "]: " + fmt(c) + " °C for " + fmt(h) +
                                          " s is outside the thermocycler's range");
          profile.emplace_back(c, h);
        }
      } else if (cmd != "openLid" && cmd != "closeLid" && cmd != "deactivateBlock" && cmd != "deactivateLid") {
        unsupported();
      }
    } else if (family == "heaterShaker") {
      bool shaking = status.value("targetRpm", json()).is_number() && status["targetRpm"].get<int>() > 0;
      if (cmd == "setTargetTemperature") {
        celsius = celsiusIn(p, "celsius", *mm, mm->minCelsius, mm->maxCelsius);
      } else if (cmd == "waitForTemperature") {
        celsius = waitTarget(p, status, "targetCelsius", type);
      } else if (cmd == "setAndWaitForShakeSpeed") {
        double r = requireNumber(p, "rpm");
        if (r < 200 || r > 3000) failWith("InvalidParams", "params.rpm: the heater-shaker shakes at 200–3000 rpm, got " + fmt(r));
        if (status.value("latch", std::string()) != "closed")
          failWith("InvalidAction", "cannot shake: the heater-shaker's labware latch is not closed", {{"moduleId", mid}});
        rpm = static_cast<int>(std::lround(r));
      } else if (cmd == "openLabwareLatch") {
        if (shaking) failWith("InvalidAction", "cannot open the labware latch while the heater-shaker is shaking", {{"moduleId", mid}});
      } else if (cmd != "closeLabwareLatch" && cmd != "deactivateHeater" && cmd != "deactivateShaker") {
        unsupported();
      }
    }

    hardware::ModuleDriver& d = driverFor(m);
    if (family == "temperatureModule") {
      if (cmd == "setTargetTemperature") check(d.setTemperature(celsius));
      else if (cmd == "waitForTemperature") check(d.waitForTemperature(celsius).map([](auto&&) {}));
      else check(d.deactivateHeater());
    } else if (family == "magneticModule") {
      if (cmd == "engage") check(d.moveMagnet(hw));
      else check(d.homeMagnet());
    } else if (family == "thermocycler") {
      if (cmd == "setTargetBlockTemperature") check(d.setTemperature(celsius, hold, volume));
      else if (cmd == "waitForBlockTemperature") check(d.waitForTemperature(celsius).map([](auto&&) {}));
      else if (cmd == "setTargetLidTemperature") check(d.setLidTemperature(celsius));
      else if (cmd == "waitForLidTemperature") check(d.waitForLidTemperature(celsius).map([](auto&&) {}));
      else if (cmd == "openLid") check(d.openLid());
      else if (cmd == "closeLid") check(d.closeLid());
      else if (cmd == "deactivateBlock") check(d.deactivateHeater());
      else if (cmd == "deactivateLid") check(d.deactivateLid());
      else if (cmd == "runProfile") {
        for (auto& [c, h] : profile) {
          check(d.setTemperature(c, h, volume));
          check(d.waitForTemperature(c).map([](auto&&) {}));
        }
        extra["stepsCompleted"] = profile.size();
      }
    } else if (family == "heaterShaker") {
      if (cmd == "setTargetTemperature") check(d.setTemperature(celsius));
      else if (cmd == "waitForTemperature") check(d.waitForTemperature(celsius).map([](auto&&) {}));
      else if (cmd == "deactivateHeater") check(d.deactivateHeater());
      else if (cmd == "setAndWaitForShakeSpeed") {
        check(d.setRpm(rpm));
        check(d.waitForRpm(rpm).map([](auto&&) {}));
      } else if (cmd == "deactivateShaker") check(d.stopShaking());
      else if (cmd == "openLabwareLatch") check(d.openLatch());
      else if (cmd == "closeLabwareLatch") check(d.closeLatch());
    }
    json previous = status;
    if (family == "magneticModule" && cmd == "engage") previous["height"] = height;
    if (family == "thermocycler" && volume) extra["blockMaxVolumeUl"] = *volume;
    json st = readStatus(d, mid, previous);
    if (family == "thermocycler" && (cmd == "setTargetBlockTemperature" || cmd == "runProfile"))
      st["blockMaxVolumeUl"] = volume ? json(*volume) : json();
    json result = {{"simulated", modules_.virtualModule(mid) != nullptr}, {"moduleStatus", st}};
    for (auto& [k, v] : extra.items())
      if (k != "blockMaxVolumeUl") result[k] = v;
    return result;
  }

  // Pipette moves near modules (docs/modules.md): the thermocycler's labware only with the
  // lid open; the heater-shaker's rules as the OT-2 applies them.
  void checkModuleRestrictions(const PipetteState& pip, const std::string& labwareId) {
    auto* lw = s_.findLabware(labwareId);
    if (!lw || lw->slotName.empty()) return;
    const std::string& dest = lw->slotName;
    bool tiprack = lw->placed.definition && lw->placed.definition->isTiprack;
    bool multi = pip.spec && pip.spec->channels > 1;
    for (auto& [mid, m] : s_.modules) {
      const auto* mm = hardware::findModuleModel(m.model);
      if (!mm) continue;
      if (mm->type == hardware::ModuleType::kThermocycler && lw->moduleId == mid) {
        std::string lid = m.status.value("lid", std::string());
        if (lid != "open")
          failWith("InvalidAction", "cannot move to labware \"" + labwareId + "\" in the thermocycler: the lid is " +
                                        (lid.empty() ? std::string("not known to be open") : lid),
                   {{"moduleId", mid}, {"labwareId", labwareId}, {"lid", lid}});
      }
      if (mm->type != hardware::ModuleType::kHeaterShaker) continue;
      auto n = hardware::slotNeighbours(m.slotName);
      bool eastWest = dest == n.east || dest == n.west;
      bool northSouth = dest == n.north || dest == n.south;
      bool shaking = (m.status.value("targetRpm", json()).is_number() && m.status["targetRpm"].get<int>() > 0) ||
                     m.status.value("currentRpm", 0) > 0;
      std::string latch = m.status.value("latch", std::string());
      json details = {{"moduleId", mid}, {"heaterShakerSlot", m.slotName}, {"destinationSlot", dest}};
      if (shaking && (dest == m.slotName || eastWest || northSouth))
        failWith("InvalidAction", "cannot move to slot " + dest + ": the heater-shaker in slot " + m.slotName +
                                      " is shaking (its slot and the slots beside, in front and behind are off limits)",
                 details);
      if (eastWest && latch != "closed")
        failWith("InvalidAction", "cannot move to slot " + dest + ", left or right of the heater-shaker in slot " +
                                      m.slotName + ", while its labware latch is open",
                 details);
      if (multi && eastWest)
        failWith("InvalidAction", "a multi-channel pipette cannot go to slot " + dest +
                                      ", left or right of the heater-shaker in slot " + m.slotName,
                 details);
      if (multi && northSouth && !tiprack)
        failWith("InvalidAction", "a multi-channel pipette can go to slot " + dest + ", in front of or behind the heater-shaker in slot " +
                                      m.slotName + ", only for a tip rack",
                 details);
    }
  }

  static std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }

  const RunState& s_;
  hardware::Robot& robot_;
  const hardware::LabwareLibrary& lib_;
  hardware::ModuleHub& modules_;
  const std::string& commandId_;
};

}  // namespace

CommandOutcome Executor::execute(const RunState& state, const std::string& commandId, const std::string& commandType,
                                 const json& params) {
  CommandOutcome out;
  try {
    if (!params.is_object()) failWith("InvalidParams", "params: expected an object");
    Run run(state, robot_, library_, *modules_, commandId);
    out.result = run.dispatch(commandType, params);
  } catch (Failure& f) {
    out.ok = false;
    out.error = std::move(f.error);
  } catch (const std::exception& e) {
    out.ok = false;
    out.error = CommandError{"InvalidParams", std::string("bad parameters: ") + e.what(), json::object(), false};
  }
  return out;
}

Executor::Executor(hardware::Robot& robot, const hardware::LabwareLibrary& library, hardware::ModuleHub* modules)
    : robot_(robot), library_(library) {
  if (!modules) {
    ownModules_ = std::make_unique<hardware::ModuleHub>();
    modules = ownModules_.get();
  }
  modules_ = modules;
}

std::vector<std::pair<std::string, json>> moduleCleanupCommands(const RunState& state) {
  std::vector<std::pair<std::string, json>> out;
  for (auto& [id, m] : state.modules) {
    const auto* model = hardware::findModuleModel(m.model);
    if (!model) continue;
    json p = {{"moduleId", id}};
    switch (model->type) {
      case hardware::ModuleType::kHeaterShaker:
        out.emplace_back("heaterShaker/deactivateShaker", p);
        out.emplace_back("heaterShaker/deactivateHeater", p);
        break;
      case hardware::ModuleType::kThermocycler:
        out.emplace_back("thermocycler/deactivateBlock", p);
        out.emplace_back("thermocycler/deactivateLid", p);
        break;
      case hardware::ModuleType::kTemperature: out.emplace_back("temperatureModule/deactivate", p); break;
      case hardware::ModuleType::kMagnetic: out.emplace_back("magneticModule/disengage", p); break;
    }
  }
  // Shakers first (every module's list is short; stable order within a module).
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return (a.first == "heaterShaker/deactivateShaker") > (b.first == "heaterShaker/deactivateShaker");
  });
  return out;
}

json Executor::fixedTrash() const {
  auto def = library_.find("opentrons", "opentrons_1_trash_1100ml_fixed", 1);
  auto origin = hardware::slotOrigin("12");
  if (!def || !origin) return json();
  return {{"labwareId", "fixedTrash"}, {"slotName", "12"}, {"definition", (*def)->raw}, {"origin", pointJson(*origin)}};
}

}  // namespace runrec::engine
