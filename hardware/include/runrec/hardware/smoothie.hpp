// The OT-2 Smoothieware driver and the Robot built on it.
//
// SmoothieDriver holds the G-code conversation as Opentrons' driver does: one command
// line at a time (several G-codes, then M400), each waiting for `ok\r\nok\r\n` with a
// timeout and bounded retries. `error` / `ALARM` replies become kBoardError / kAlarm on
// the command that caused them, after which the driver resets the board (M999) and homes
// the axis the alarm named; silence past the timeout is kTimeout, a vanished port or
// garbage in a reply kCommunication. It keeps the axis positions it commanded (3
// decimals, as sent) and the currents per axis.
//
// SmoothieRobot implements Robot over the driver with Opentrons' motion recipes (homing
// order, currents per axis and pipette, plunger backlash, tip pick-up press and retract,
// drop-tip eject and plunger re-home). Deck points map to axes as SimRobot's do.
// Neither class is thread-safe: the engine's writer thread owns the robot.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runrec/hardware/robot.hpp"
#include "runrec/hardware/serial_port.hpp"
#include "runrec/hardware/virtual_smoothie.hpp"

namespace runrec::hardware {

// Axis order A B C X Y Z: alphabetical, as the G-code lists them.
enum SmoothieAxis { kAxisA, kAxisB, kAxisC, kAxisX, kAxisY, kAxisZ, kSmoothieAxes };
using AxisArray = std::array<double, kSmoothieAxes>;
using AxisTargets = std::array<std::optional<double>, kSmoothieAxes>;
// Each axis's letter, and where it is when homed (at its switch), in that order.
inline constexpr char kSmoothieAxisNames[] = "ABCXYZ";
inline constexpr AxisArray kSmoothieHomed{218, 19, 19, 418, 353, 218};

struct SmoothieDriverOptions {
  std::chrono::milliseconds ackTimeout{5000};     // per attempt, plus the expected motion time
  std::chrono::milliseconds homeTimeout{120000};  // G28.2 is acknowledged when homing ends
  int retries = 3;                                // re-sends after a timeout
};

class SmoothieDriver {
 public:
  explicit SmoothieDriver(std::unique_ptr<SerialPort> port, SmoothieDriverOptions options = {});

  // Sends one command line (G-codes separated by spaces; " M400" is appended) and waits for
  // its acknowledgement. Returns the reply text before the final acknowledgement. Typed
  // errors as described above. `expectedSeconds` lengthens the timeout for long moves.
  Result<std::string> command(std::string_view codes, double expectedSeconds = 0);

  // G0 to the given targets (axes without a value, or already there, do not move). The
  // line carries the currents (M907 + G4 P0.005), an optional feed (mm/s, restored to the
  // default after), and the plunger backlash pre-move when a plunger moves up. Nothing is
  // sent when no axis moves.
  // Returns whether a line was sent.
  Result<bool> move(const AxisTargets& target, const AxisArray& currents, std::optional<double> speed = std::nullopt);
  // M907 for every axis + G4 P0.005.
  Status setCurrents(const AxisArray& currents);
  // G28.2 of `axes` (e.g. "AZ") with the given currents, then the homed positions.
  Status home(std::string_view axes, const AxisArray& currents);
  // M114.2: reads the board's positions into the cache and returns them.
  Result<AxisArray> updatePosition();
  // M371 / M369 for a mount: the model / id string (empty: no instrument).
  Result<std::string> readInstrument(Mount mount, bool model);
  // M999.
  Status reset();
  // A bare M400: waits until the board's queue is empty.
  Status waitForIdle();

  // Whether move() would move `axis` to `target` (it differs from the position at 3 decimals).
  bool wouldMove(int axis, double target) const;
  const AxisArray& position() const { return position_; }
  void setPosition(int axis, double value) { position_[axis] = value; }
  long linesSent() const { return linesSent_; }
  std::string describe() const { return port_->describe(); }

 private:
  // The reply before the acknowledgement: a view of reply_, valid until the next transact.
  Result<std::string_view> transact(std::string_view line, std::chrono::milliseconds timeout, bool homing);
  Status recoverFromError(std::string_view line, std::string_view reply);
  void appendCurrents(const AxisArray& currents);

  std::unique_ptr<SerialPort> port_;
  SmoothieDriverOptions options_;
  AxisArray position_{};
  std::string line_, reply_;  // reused buffers
  std::string currentsText_;  // "M907 ... G4 P0.005" for lastCurrents_
  AxisArray lastCurrents_{};
  long linesSent_ = 0;
  bool recovering_ = false;
};

// Decodes the hex ASCII of an M369/M371 answer ("L:7032305f..." -> "p20_...").
std::string decodeInstrumentHex(std::string_view hex);
std::string encodeInstrumentHex(std::string_view text);

struct SmoothieRobotOptions {
  // Check at the first motion that the board reports, on each mount with a pipette, a
  // model of the same pipette name (off for the in-process simulation).
  bool verifyInstruments = true;
  std::string name = "smoothie";
  // The in-process board, kept alive with the robot (makeSimulatedSmoothieRobot).
  std::shared_ptr<VirtualSmoothie> board;
};

class SmoothieRobot final : public Robot {
 public:
  SmoothieRobot(std::unique_ptr<SmoothieDriver> driver, SmoothieRobotOptions options = {});

  std::string describe() const override { return options_.name; }
  Status attachInstrument(Mount mount, const PipetteSpec* spec) override;
  Status home() override;
  // Opentrons' stop(home_after=True): halt and reset the board and re-run the connection
  // setup, twice (as its driver does), re-read and re-configure the mounts, then home.
  Status stopAndHome() override;
  Status moveTo(Mount mount, const Point& target, std::optional<double> speed) override;
  Status preparePlunger(Mount mount) override;
  Status aspirate(Mount mount, double volume, double flowRate) override;
  Status dispense(Mount mount, double volume, double flowRate) override;
  Status blowOut(Mount mount, double flowRate) override;
  Status pickUpTip(Mount mount, double tipLength) override;
  Status dropTip(Mount mount) override;
  Status assumeTip(Mount mount, double tipLength) override;
  Status delay(double seconds) override;
  Result<Positions> positions() override;

  // Opens the board as Opentrons' driver does when it connects, before any run: reset from
  // error (M999, G28.6), steps/mm, absolute mode, position, default max speeds, feed and
  // accelerations; then reads both mounts' instruments (M371/M369) and configures the
  // mounts that hold one (plunger steps/mm, mount home position, plunger travel: the
  // pipette's smoothieConfigs). The models read here govern currents from the first home
  // on. The factories below call it; a robot built directly starts unconnected.
  Status connect();

  SmoothieDriver& driver() { return *driver_; }
  VirtualSmoothie* board() { return options_.board.get(); }

 private:
  Status setUpBoard();
  Status configureMounts();
  struct MountState {
    const PipetteSpec* spec = nullptr;
    double tipLength = 0;
    double volume = 0;
    bool plungerReady = false;
    bool checked = false;  // instrument read from the board since attach
  };
  MountState& state(Mount m) { return m == Mount::kLeft ? left_ : right_; }
  const MountState& state(Mount m) const { return m == Mount::kLeft ? left_ : right_; }

  Status ensureReady();
  Status scanInstruments();
  Status requireInstrument(Mount mount) const;
  AxisArray idleCurrents() const;
  double plungerIdleCurrent(Mount mount) const;  // of the attached spec, remembered per mount
  AxisArray with(int axis, double current) const;
  Status axisMove(int axis, double target, double current, std::optional<double> speed);
  Status plungerMove(Mount mount, double target, double current, std::optional<double> speed);
  Status homeAxis(int axis, double current);
  Status fastHome(int axis, double margin, double current);
  Status homePlunger(Mount mount, const PipetteSpec* spec);
  // The pipette on a mount: the loaded one, else the one the board reported at connect().
  const PipetteSpec* attachedSpec(Mount mount) const;
  Status retract(Mount mount, double margin);
  ::runrec::hardware::MountState stateOf(Mount mount) const;

  std::unique_ptr<SmoothieDriver> driver_;
  SmoothieRobotOptions options_;
  MountState left_, right_;
  bool homed_ = false;
  int pendingScans_ = 0;
  std::optional<Mount> lastMoved_;
  std::string boardModel_[2];  // [left, right] as read by connect(); "" = none or unknown
  const PipetteSpec* boardSpec_[2] = {nullptr, nullptr};  // boardModel_'s specs, if known
  // plungerIdleCurrent()'s memo: the spec each mount's value is for (-1: none yet). Every
  // move asks for the idle currents; the model lookup behind them need not run each time.
  mutable const PipetteSpec* idleSpec_[2] = {nullptr, nullptr};
  mutable double idleCurrent_[2] = {-1, -1};
};

// `--robot sim`: a SmoothieRobot on an in-process VirtualSmoothie (instant motion, no
// instrument check). `onLine`, if set, sees every line the driver sends.
std::unique_ptr<Robot> makeSimulatedSmoothieRobot(VirtualSmoothieOptions board = {},
                                                  std::function<void(std::string_view)> onLine = {},
                                                  bool verifyInstruments = false);

// `--robot serial:DEVICE`: opens the device with libserialport.
Result<std::unique_ptr<Robot>> makeSerialSmoothieRobot(const std::string& device);

}  // namespace runrec::hardware
