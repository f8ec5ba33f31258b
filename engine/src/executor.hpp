// Executes one command against the robot, checked against the folded run state.
// Internal to the engine; used only by its writer thread.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "runrec/engine/state.hpp"
#include "runrec/hardware/labware.hpp"
#include "runrec/hardware/modules.hpp"
#include "runrec/hardware/robot.hpp"

namespace runrec::engine {

// A failed command's structured error (docs/event-log.md, "Errors").
struct CommandError {
  std::string errorType;  // InvalidParams | NotLoaded | InvalidAction | Hardware | Unsupported
  std::string message;
  nlohmann::json details = nlohmann::json::object();
  bool tipStateUnknown = false;
  nlohmann::json toJson() const;
};

struct CommandOutcome {
  bool ok = true;
  nlohmann::json result = nlohmann::json::object();
  CommandError error;
};

class Executor {
 public:
  // `modules` serves the modules a run loads (docs/modules.md); nullptr: the executor
  // keeps its own hub of in-process virtual modules.
  Executor(hardware::Robot& robot, const hardware::LabwareLibrary& library, hardware::ModuleHub* modules = nullptr);

  // `state` is the fold of everything committed so far (the command's own start
  // included); it is read, never written: the caller applies the outcome event.
  CommandOutcome execute(const RunState& state, const std::string& commandId,
                         const std::string& commandType, const nlohmann::json& params);

  // The fixed trash every OT-2 run starts with: {labwareId, slotName, definition, origin}.
  nlohmann::json fixedTrash() const;

 private:
  hardware::Robot& robot_;
  const hardware::LabwareLibrary& library_;
  std::unique_ptr<hardware::ModuleHub> ownModules_;
  hardware::ModuleHub* modules_;
};

// The commands cleanup sends to leave every loaded module inactive, as (commandType,
// params), in order: shakers stop and heaters go off before the gantry moves; magnets
// disengage; lids and latches stay where they are (docs/modules.md).
std::vector<std::pair<std::string, nlohmann::json>> moduleCleanupCommands(const RunState& state);

}  // namespace runrec::engine
