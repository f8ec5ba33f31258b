// Run state as a pure fold over the event log. The one place state is derived: the
// engine (validation, cleanup), `runrec show`, replay and audit all use apply()/fold().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runrec/engine/event_log.hpp"
#include "runrec/hardware/geometry.hpp"
#include "runrec/hardware/labware.hpp"
#include "runrec/hardware/pipettes.hpp"

namespace runrec::engine {

// Volumes by liquid id ("" = liquid of unknown origin), µL.
using Contents = std::map<std::string, double>;
double total(const Contents& c);

struct TipState {
  std::string labwareId, wellName;  // where it was picked up
  double length = 0;                // effective length (tip length - overlap), mm
  double maxVolume = 0;             // µL the tip holds
};

struct PipetteState {
  std::string id, name, model;
  hardware::Mount mount = hardware::Mount::kRight;
  const hardware::PipetteSpec* spec = nullptr;  // static facts, looked up by model
  std::optional<TipState> tip;
  // True when the tip state is not known (a command that handles tips started but has no
  // outcome, e.g. after a crash): cleanup must assume a tip may be attached.
  bool tipUnknown = false;
  Contents contents;                            // what the tip holds
  bool plungerReady = false;                    // at the bottom, ready to aspirate
  // Where the critical point is: the last position a motion command reported, and the
  // labware/well it is over (empty when unknown or not over labware).
  std::optional<hardware::Point> position;
  std::string lastLabwareId, lastWellName;
};

struct LabwareState {
  std::string id, uri, displayName;
  std::string slotName;   // deck slot, or the module's slot
  std::string moduleId;   // when on a module
  hardware::PlacedLabware placed;
  std::set<std::string> usedTips;  // tip racks: wells whose tip has been picked up
  std::map<std::string, Contents> wells;  // liquid per well
};

// A loaded module (docs/modules.md). `status` is what the module reported after its last
// successful command, merged key by key: targetCelsius/currentCelsius (temperature module,
// heater-shaker), engaged/height/hardwareHeight (magnetic), targetBlockCelsius,
// currentBlockCelsius, holdSecondsRemaining, targetLidCelsius, currentLidCelsius, lid
// (thermocycler), targetRpm/currentRpm/latch (heater-shaker). `fault` holds the error of a
// module command that failed since (cleared by the next success).
struct ModuleState {
  std::string id, model, slotName;
  std::vector<std::string> slots;  // the deck slots it covers (the thermocycler: 7, 8, 10, 11)
  nlohmann::json status = nlohmann::json::object();
  nlohmann::json fault;            // null, or the last failed module command's error
};

enum class RunStatus { kCreated, kRunning, kPaused, kSucceeded, kFailed, kStopped, kInterrupted };
const char* toString(RunStatus status);
bool isTerminal(RunStatus status);

struct RunState {
  std::string runId;
  RunStatus status = RunStatus::kCreated;
  std::int64_t lastSeq = 0;
  std::string createdAt, startedAt, finishedAt;
  nlohmann::json protocol = nlohmann::json::object();  // from runCreated
  nlohmann::json finish = nlohmann::json::object();    // runFinished payload

  std::map<std::string, PipetteState> pipettes;
  std::map<std::string, LabwareState> labware;
  std::map<std::string, ModuleState> modules;
  std::map<std::string, nlohmann::json> liquids;       // liquid definitions
  std::map<std::string, hardware::Point> savedPositions;

  // The command in progress (started, no outcome yet).
  std::optional<std::string> currentCommandId;
  nlohmann::json currentCommand;  // its commandStarted payload

  // Protocol commands (intent "protocol"); cleanup commands are counted apart.
  std::int64_t commandsStarted = 0, commandsSucceeded = 0, commandsFailed = 0;
  std::int64_t cleanupCommands = 0, cleanupFailed = 0;
  bool inCleanup = false;                  // after cleanupStarted
  std::string stopRequestedBy;             // after runStopRequested
  nlohmann::json pausedBy;                 // the runPaused payload while paused
  std::int64_t commandsDiscarded = 0;
  std::optional<nlohmann::json> lastError;

  const PipetteState* pipette(const std::string& id) const;
  const LabwareState* findLabware(const std::string& id) const;
  // The labware in a slot (directly, not on a module), if any.
  const LabwareState* labwareInSlot(const std::string& slotName) const;
  // Highest point of any labware on the deck (for arcs between labware).
  double highestLabwareTop() const;
};

// Anomalies found while folding (an event that does not fit): reported, never skipped
// silently. The fold still applies what it can.
struct FoldIssue {
  std::int64_t seq;
  std::string message;
};

// Applies one event. Pure: the result depends only on `state` and `event`.
void apply(RunState& state, const Event& event, std::vector<FoldIssue>* issues = nullptr);
// The same, taking the event's payload instead of copying it (the engine's hot path, and
// folds that read events only to apply them). The result is identical.
void apply(RunState& state, Event&& event, std::vector<FoldIssue>* issues = nullptr);

// Folds a run's events from scratch.
RunState fold(const std::vector<Event>& events, std::vector<FoldIssue>* issues = nullptr);

// Contents taken from a well's contents when `volume` is drawn (proportional mix).
Contents takeFrom(Contents& source, double volume);
void addTo(Contents& dest, const Contents& add);

// JSON snapshot of a state (for `runrec show --state` and later `runrec state`).
nlohmann::json toJson(const RunState& state);

}  // namespace runrec::engine
