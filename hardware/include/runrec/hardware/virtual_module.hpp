// VirtualModule: runrec's own emulation of an OT-2 module's firmware (temperature module,
// magnetic module, thermocycler, heater-shaker). It parses the G-code ModuleDriver sends,
// one line at a time, and answers in the module's dialect: `ok\r\nok\r\n` for the
// temperature/magnetic modules and the thermocycler, `<code> ... OK\n` for the
// heater-shaker. Temperatures ramp towards their target at a configurable rate, scaled by
// timeScale (1 real time, 0 instant); the lid, the latch, the magnet and the shaker keep
// their state. Fault injection: an error, a dropped reply, garbage or silence on the Nth
// command line.
//
// Connect it in-process (makeModuleLoopbackPort) or on a pseudo-terminal (PtyModule). Not
// thread-safe: one connection drives it.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/hardware/error.hpp"
#include "runrec/hardware/serial_port.hpp"

namespace runrec::hardware {

enum class ModuleType { kTemperature, kMagnetic, kThermocycler, kHeaterShaker };
const char* toString(ModuleType type);

// One fault on the Nth command line the module receives (counted from 1).
struct ModuleFault {
  enum class Kind {
    kError,    // answers an error (the command is not carried out)
    kDrop,     // carries it out, sends no reply (the driver's re-send recovers)
    kGarbage,  // carries it out, answers bytes that are not a reply
    kSilent,   // from that line on, never answers again
  };
  Kind kind = Kind::kError;
  long nthCommand = 1;
};
// "error@3", "drop@2", "garbage@4", "silent@5".
Result<ModuleFault> parseModuleFault(std::string_view text);

struct VirtualModuleOptions {
  double timeScale = 0;            // 1: ramps and holds take real time; 0: instant
  double degreesPerSecond = 2.0;   // heating/cooling rate of plates and blocks
  double lidDegreesPerSecond = 1.0;
  double rpmPerSecond = 500;       // heater-shaker spin-up
  double ambientCelsius = 23.0;
  std::vector<ModuleFault> faults;
};

class VirtualModule {
 public:
  VirtualModule(std::string model, ModuleType type, VirtualModuleOptions options = {});

  // Feeds bytes from the host; every complete line is executed and answered into `out`.
  void receive(std::string_view bytes, std::string& out);

  const std::string& model() const { return model_; }
  ModuleType type() const { return type_; }
  long commands() const { return commands_; }
  bool silent() const { return silent_; }
  // Current values (after ramping to now).
  double celsius();
  std::optional<double> targetCelsius() const { return target_; }
  double lidCelsius();
  std::optional<double> lidTargetCelsius() const { return lidTarget_; }
  std::string lid() const { return lid_; }
  std::string latch() const { return latch_; }
  double magnetPosition() const { return magnet_; }
  int rpm();
  int targetRpm() const { return targetRpm_; }
  std::vector<std::string> received() const { return received_; }

 private:
  void executeLine(std::string_view line, std::string& out);
  std::string execute(std::string_view code, std::string_view args, std::string& err);
  void advance();
  double elapsedSeconds();

  std::string model_;
  ModuleType type_;
  VirtualModuleOptions options_;
  std::string partial_;
  long commands_ = 0;
  bool silent_ = false;
  // State.
  double current_, lidCurrent_;
  std::optional<double> target_, lidTarget_;
  double holdSeconds_ = 0;    // thermocycler: hold remaining once at target
  bool holdSet_ = false;
  std::string lid_ = "open";  // thermocycler
  std::string latch_ = "closed";  // heater-shaker (idle closed at power-up, as the firmware)
  double magnet_ = 0;
  bool magnetHomed_ = false;
  double rpmCurrent_ = 0;
  int targetRpm_ = 0;
  std::chrono::steady_clock::time_point last_;
  std::vector<std::string> received_;
};

// A port whose other end is `module`, in this process. `module` must outlive the port.
std::unique_ptr<SerialPort> makeModuleLoopbackPort(VirtualModule& module);

// The module on a pseudo-terminal (raw, 115200 8N1); serve() answers until `stop` is set.
class PtyModule {
 public:
  static Result<std::unique_ptr<PtyModule>> open(VirtualModule& module);
  ~PtyModule();
  const std::string& path() const { return path_; }
  Status serve(const std::atomic<bool>& stop);

 private:
  PtyModule(VirtualModule& module, int master, int slave, std::string path)
      : module_(module), master_(master), slave_(slave), path_(std::move(path)) {}
  VirtualModule& module_;
  int master_ = -1, slave_ = -1;
  std::string path_;
};

}  // namespace runrec::hardware
