// OT-2 modules: the temperature module (GEN1/GEN2), the magnetic module (GEN1/GEN2), the
// thermocycler (GEN1) and the heater-shaker (GEN1). Three layers, as for the Smoothie:
//
//  - geometry: each model's facts (labware offset per slot, slots it occupies, limits), in
//    runrec's own table (docs/modules.md says where the numbers come from);
//  - ModuleDriver: the G-code conversation with one module over its own SerialPort (one
//    command per line, acknowledgement, timeout, bounded retries, typed errors) and typed
//    calls per model (setTemperature, moveMagnet, openLid, setRpm, ...);
//  - ModuleHub: which device serves which loaded module (in-process virtual modules, or
//    serial ports bound per model/slot on the command line).
//
// Not thread-safe: the engine's writer thread owns the hub and every driver.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/hardware/error.hpp"
#include "runrec/hardware/geometry.hpp"
#include "runrec/hardware/serial_port.hpp"
#include "runrec/hardware/virtual_module.hpp"

namespace runrec::hardware {

// ---- geometry ----

struct ModuleModel {
  std::string model;        // "temperatureModuleV2"
  ModuleType type;
  std::string displayName;  // "Temperature Module GEN2"
  Point labwareOffset;      // from the slot origin to where labware on the module sits
  double minCelsius = 0, maxCelsius = 0;  // temperature range (block, for the thermocycler)
  double maxEngageHeight = 0;             // magnetic: in the model's hardware units
};

// The model's facts, or nullptr for an unknown model name.
const ModuleModel* findModuleModel(std::string_view model);
const std::vector<ModuleModel>& moduleModels();

// Where labware on a module of `model` in `slot` sits, relative to the slot's origin: the
// model's labwareOffset with its slot transform applied (slots 3, 6, 9 mirror x for the
// temperature GEN2, magnetic GEN2 and heater-shaker; the heater-shaker also mirrors y).
Result<Point> moduleLabwareOffset(const ModuleModel& model, std::string_view slot);

// The deck slots a module in `slot` occupies (the thermocycler: 7, 8, 10, 11; others: its
// slot). kInvalidArgument when the model cannot go there (thermocycler outside slot 7,
// any module in slot 12).
Result<std::vector<std::string>> moduleSlots(const ModuleModel& model, std::string_view slot);

// Deck neighbours on the OT-2 grid (1-3 front row, 10-12 back row): east/west in the same
// row, north/south in the same column. Empty strings where the deck ends.
struct SlotNeighbours {
  std::string east, west, north, south;
};
SlotNeighbours slotNeighbours(std::string_view slot);

// Magnetic module engage height: protocol height (mm above the labware bottom) to the
// hardware's units from home (GEN1 counts half-millimetres), as Opentrons converts it.
double magnetHardwareHeight(const ModuleModel& model, double heightAboveLabwareBottom);

// ---- driver ----

struct ModuleDriverOptions {
  std::chrono::milliseconds ackTimeout{0};  // 0: the dialect's default (docs/modules.md)
  int retries = -1;                         // re-sends after a timeout (-1: the dialect's, 3 or 4)
  std::chrono::milliseconds pollInterval{500};      // waitFor* reads
  std::chrono::milliseconds waitLimit{2 * 3600 * 1000};  // waitFor* give up (kTimeout)
};

// What a module reports; fields not applicable to its type stay empty.
struct ModuleReadings {
  std::optional<double> targetCelsius, currentCelsius;        // temperature, heater-shaker, thermocycler block
  std::optional<double> holdSecondsRemaining;                 // thermocycler block hold
  std::optional<double> lidTargetCelsius, lidCelsius;         // thermocycler lid heater
  std::string lid;                                            // thermocycler: open | closed | in_between
  std::optional<double> magnetPosition;                       // magnetic: hardware units from home
  std::optional<int> targetRpm, currentRpm;                   // heater-shaker
  std::string latch;                                          // heater-shaker: open | closed | opening | closing | unknown
};

class ModuleDriver {
 public:
  ModuleDriver(const ModuleModel& model, std::unique_ptr<SerialPort> port, ModuleDriverOptions options = {});

  const ModuleModel& model() const { return model_; }
  std::string describe() const { return port_->describe(); }
  long linesSent() const { return linesSent_; }

  // One G-code (e.g. "M105"); returns the reply without its acknowledgement (and without
  // the heater-shaker's echo of the code). Typed errors: kBoardError (the module answered
  // an error), kTimeout (no acknowledgement after the retries), kCommunication (garbage,
  // port gone, unreadable reply).
  Result<std::string> command(std::string_view code);

  // Temperature module, heater-shaker, thermocycler block (holdSeconds/volume: thermocycler).
  Status setTemperature(double celsius, std::optional<double> holdSeconds = std::nullopt,
                        std::optional<double> volumeUl = std::nullopt);
  Result<ModuleReadings> readTemperature();
  // Polls until the current temperature is within tolerance of `celsius` (and, for the
  // thermocycler, the hold time has run out). Returns the last readings.
  Result<ModuleReadings> waitForTemperature(double celsius);
  // Temperature module: M18. Heater-shaker: M106 (heater). Thermocycler: M14 (block).
  Status deactivateHeater();

  // Thermocycler lid.
  Status setLidTemperature(double celsius);
  Result<ModuleReadings> readLidTemperature();
  Result<ModuleReadings> waitForLidTemperature(double celsius);
  Status deactivateLid();
  Status openLid();
  Status closeLid();
  Result<std::string> readLidStatus();
  Status deactivateAll();  // thermocycler M18

  // Magnetic module (hardware units from home).
  Status homeMagnet();
  Status moveMagnet(double position);
  Result<double> readMagnetPosition();

  // Heater-shaker.
  Status setRpm(int rpm);
  // Polls until the plate turns at `rpm` (within 1 %).
  Result<ModuleReadings> waitForRpm(int rpm);
  Result<ModuleReadings> readRpm();
  Status stopShaking();  // G28: home the plate, which stops the shaking
  Status openLatch();
  Status closeLatch();
  Result<std::string> readLatch();

  // Everything the module can report, one query per kind (for command results).
  Result<ModuleReadings> readAll();

 private:
  Status requireType(ModuleType type, const char* what) const;
  Result<std::string> transact(const std::string& line, std::string_view code);

  const ModuleModel& model_;
  std::unique_ptr<SerialPort> port_;
  ModuleDriverOptions options_;
  std::string terminator_, ack_;
  std::chrono::milliseconds timeout_;
  long linesSent_ = 0;
};

// Python's str(round(v, precision)), as Opentrons prints G-code numbers: "40.0", "12.5".
std::string formatModuleNumber(double v, int precision);

// Parses "T:37.0 C:25.3 H:none" style replies into key -> value.
std::map<std::string, std::string> parseKeyValues(std::string_view reply);

// ---- which device serves which module ----

// `--module MODEL[@SLOT]=sim[:FAULT...]` or `=serial:DEVICE`.
struct ModuleBinding {
  std::string model;
  std::string slot;    // empty: any slot
  std::string device;  // "sim" or "serial:/dev/..."
  std::vector<ModuleFault> faults;  // sim only
};
Result<ModuleBinding> parseModuleBinding(std::string_view text);

struct ModuleHubOptions {
  // Modules with no binding: true = a virtual module in this process; false = loadModule fails.
  bool simulateUnbound = true;
  std::vector<ModuleBinding> bindings;
  VirtualModuleOptions sim;  // time scale, ramp rates for in-process modules
  ModuleDriverOptions driver;
};

class ModuleHub {
 public:
  explicit ModuleHub(ModuleHubOptions options = {});
  ~ModuleHub();

  // The driver for a loaded module: an existing attachment, or the binding for its model
  // and slot (opened on first use and kept across runs). kNotFound when nothing serves it.
  Result<ModuleDriver*> attach(const std::string& moduleId, const std::string& model, const std::string& slot);
  ModuleDriver* find(const std::string& moduleId);
  // Forgets which module id maps to which device (a new run loads its modules again).
  void beginRun();
  // The in-process virtual module behind an attachment (nullptr for serial ones).
  VirtualModule* virtualModule(const std::string& moduleId);
  std::string describe() const;

 private:
  struct Device;
  ModuleHubOptions options_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::map<std::string, Device*> byModuleId_;
};

}  // namespace runrec::hardware
