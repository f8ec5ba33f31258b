// Module models: runrec's own table of the facts it needs from Opentrons' module
// definitions (shared-data/module/definitions/3, schema 3): labware offsets, slot
// transforms, the slots a thermocycler covers, limits. docs/modules.md lists the sources.
#include <cmath>
#include <string>

#include "runrec/hardware/modules.hpp"

namespace runrec::hardware {

const char* toString(ModuleType type) {
  switch (type) {
    case ModuleType::kTemperature: return "temperatureModuleType";
    case ModuleType::kMagnetic: return "magneticModuleType";
    case ModuleType::kThermocycler: return "thermocyclerModuleType";
    case ModuleType::kHeaterShaker: return "heaterShakerModuleType";
  }
  return "unknown";
}

const std::vector<ModuleModel>& moduleModels() {
  // labwareOffset from each definition; temperature ranges as the Protocol API validates
  // them; maxEngageHeight from `config.maxEngageHeight` (GEN1 counts half-millimetres).
  static const std::vector<ModuleModel> models = {
      {"temperatureModuleV1", ModuleType::kTemperature, "Temperature Module GEN1", {-0.15, -0.15, 80.09}, 4, 95, 0},
      {"temperatureModuleV2", ModuleType::kTemperature, "Temperature Module GEN2", {-1.45, -0.15, 80.09}, 4, 95, 0},
      {"magneticModuleV1", ModuleType::kMagnetic, "Magnetic Module GEN1", {0.125, -0.125, 82.25}, 0, 0, 45},
      {"magneticModuleV2", ModuleType::kMagnetic, "Magnetic Module GEN2", {-1.175, -0.125, 82.25}, 0, 0, 25},
      {"thermocyclerModuleV1", ModuleType::kThermocycler, "Thermocycler Module GEN1", {0, 82.56, 97.8}, 0, 99, 0},
      {"heaterShakerModuleV1", ModuleType::kHeaterShaker, "Heater-Shaker Module GEN1", {-0.125, 1.125, 68.275}, 37, 95, 0},
  };
  return models;
}

const ModuleModel* findModuleModel(std::string_view model) {
  for (const auto& m : moduleModels())
    if (m.model == model) return &m;
  return nullptr;
}

namespace {
bool rightColumn(std::string_view slot) { return slot == "3" || slot == "6" || slot == "9"; }
}  // namespace

Result<Point> moduleLabwareOffset(const ModuleModel& m, std::string_view slot) {
  auto origin = slotOrigin(slot);
  if (!origin) return tl::unexpected(origin.error());
  Point off = m.labwareOffset;
  // Slot transforms (ot2_standard deck), applied as Opentrons does to (x, y, 1) (3x3) or
  // (x, y, z, 1) (4x4); z is never transformed.
  if (rightColumn(slot)) {
    if (m.model == "temperatureModuleV2") {
      off.x = -off.x - 0.3;  // [[-1, 0, -0.3], [0, 1, 0], [0, 0, 1]]
    } else if (m.model == "magneticModuleV2") {
      off.x = -off.x + 0.25;  // [[-1, 0, 0, 0.25], ...]
    } else if (m.model == "heaterShakerModuleV1") {
      off.x = -off.x;  // [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]
      off.y = -off.y;
    }
  }
  return off;
}

Result<std::vector<std::string>> moduleSlots(const ModuleModel& m, std::string_view slot) {
  if (auto o = slotOrigin(slot); !o) return tl::unexpected(o.error());
  if (slot == "12")
    return fail(ErrorCode::kInvalidArgument, "slot 12 holds the fixed trash; no module can go there",
                {{"slotName", "12"}, {"model", m.model}});
  if (m.type == ModuleType::kThermocycler) {
    if (slot != "7")
      return fail(ErrorCode::kInvalidArgument,
                  "the thermocycler spans slots 7, 8, 10 and 11 and loads in slot 7, not " + std::string(slot),
                  {{"slotName", std::string(slot)}, {"model", m.model}});
    return std::vector<std::string>{"7", "8", "10", "11"};
  }
  return std::vector<std::string>{std::string(slot)};
}

SlotNeighbours slotNeighbours(std::string_view slot) {
  int n = 0;
  for (char c : slot) {
    if (c < '0' || c > '9') return {};
    n = n * 10 + (c - '0');
  }
  if (n < 1 || n > 12) return {};
  int col = (n - 1) % 3;
  SlotNeighbours s;
  if (col < 2) s.east = std::to_string(n + 1);
  if (col > 0) s.west = std::to_string(n - 1);
  if (n + 3 <= 12) s.north = std::to_string(n + 3);
  if (n - 3 >= 1) s.south = std::to_string(n - 3);
  return s;
}

double magnetHardwareHeight(const ModuleModel& m, double height) {
  // Opentrons: home-to-labware-bottom offset 5 (GEN1, half-mm units) / 2.5 (GEN2, mm),
  // plus the height in the model's units.
  if (m.model == "magneticModuleV1") return 5.0 + height * 2.0;
  return 2.5 + height;
}

}  // namespace runrec::hardware
