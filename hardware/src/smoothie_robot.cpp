// SmoothieRobot: the Robot interface as Opentrons drives an OT-2's Smoothie: homing order,
// currents per axis and pipette, plunger moves with backlash, tip pick-up (press, return,
// retract, re-home the mount), drop-tip (eject, re-home the plunger, back to the bottom),
// and the instrument check (M371/M369) for each loaded pipette.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "runrec/hardware/mount_axes.hpp"
#include "runrec/hardware/smoothie.hpp"

namespace runrec::hardware {
namespace {

constexpr double kGantryActive = 1.25, kGantryIdle = 0.3, kMountActive = 0.8, kMountIdle = 0.1;
constexpr double kPlungerIdleDefault = 0.05;
constexpr double kRetractMargin = 10;  // mm below the switch when a mount is retracted

int mountAxis(Mount m) { return m == Mount::kLeft ? kAxisZ : kAxisA; }
int plungerAxis(Mount m) { return m == Mount::kLeft ? kAxisB : kAxisC; }
char axisLetter(int axis) { return kSmoothieAxisNames[axis]; }

// Plunger idle (dwell) current by model (Opentrons' pipette model specs, idleCurrent);
// the rest use the board's 0.05 A.
double plungerIdle(const PipetteSpec* spec) {
  static const std::set<std::string, std::less<>> k03 = {
      "p1000_single_v2.1", "p1000_single_v2.2", "p20_multi_v2.0",  "p20_multi_v2.1", "p20_single_v2.1",
      "p20_single_v2.2",   "p300_multi_v2.0",   "p300_multi_v2.1", "p300_single_v2.1"};
  return spec && k03.count(spec->model) ? 0.3 : kPlungerIdleDefault;
}

bool hasQuirk(const PipetteSpec& spec, std::string_view quirk) {
  return std::find(spec.quirks.begin(), spec.quirks.end(), quirk) != spec.quirks.end();
}

}  // namespace

SmoothieRobot::SmoothieRobot(std::unique_ptr<SmoothieDriver> driver, SmoothieRobotOptions options)
    : driver_(std::move(driver)), options_(std::move(options)) {}

Status SmoothieRobot::requireInstrument(Mount mount) const {
  if (!state(mount).spec) {
    return fail(ErrorCode::kInvalidArgument, std::string("no pipette attached to the ") + toString(mount) + " mount",
                {{"mount", toString(mount)}});
  }
  return {};
}

AxisArray SmoothieRobot::idleCurrents() const {
  AxisArray c{};
  c[kAxisA] = c[kAxisZ] = kMountIdle;
  c[kAxisX] = c[kAxisY] = kGantryIdle;
  c[kAxisB] = plungerIdleCurrent(Mount::kLeft);
  c[kAxisC] = plungerIdleCurrent(Mount::kRight);
  return c;
}

double SmoothieRobot::plungerIdleCurrent(Mount mount) const {
  int i = mount == Mount::kLeft ? 0 : 1;
  const PipetteSpec* spec = attachedSpec(mount);
  if (idleCurrent_[i] < 0 || idleSpec_[i] != spec) {
    idleSpec_[i] = spec;
    idleCurrent_[i] = plungerIdle(spec);
  }
  return idleCurrent_[i];
}

const PipetteSpec* SmoothieRobot::attachedSpec(Mount mount) const {
  if (const PipetteSpec* loaded = state(mount).spec) return loaded;
  return boardSpec_[mount == Mount::kLeft ? 0 : 1];
}

AxisArray SmoothieRobot::with(int axis, double current) const {
  AxisArray c = idleCurrents();
  c[axis] = current;
  return c;
}

Status SmoothieRobot::attachInstrument(Mount mount, const PipetteSpec* spec) {
  MountState& m = state(mount);
  m = MountState{};
  m.spec = spec;
  // The model the board reported when connected governs currents and plunger positions
  // from the first home on, if it is the pipette the protocol names.
  if (spec)
    if (auto onBoard = findPipette(boardModel_[mount == Mount::kLeft ? 0 : 1]); onBoard && (*onBoard)->name == spec->name)
      m.spec = *onBoard;
  // Read back from the board before the first motion (after homing, as Opentrons does).
  if (spec) ++pendingScans_;
  return {};
}

Status SmoothieRobot::scanInstruments() {
  for (Mount mount : {Mount::kLeft, Mount::kRight}) {
    std::string found[2];
    for (int model = 1; model >= 0; --model) {
      if (auto r = driver_->command("M18 Z A B C"); !r) return tl::unexpected(r.error());
      if (auto r = driver_->command("G4 P0.1", 0.1); !r) return tl::unexpected(r.error());
      auto text = driver_->readInstrument(mount, model == 1);
      if (!text) return tl::unexpected(text.error());
      found[model] = *text;
    }
    MountState& m = state(mount);
    if (!m.spec) continue;
    const std::string& model = found[1];
    // The attached model governs currents, plunger positions and µL/mm when it is the
    // pipette the protocol names (e.g. the board's p20_single_v2.0 for p20_single_gen2).
    if (auto onBoard = findPipette(model); onBoard && (*onBoard)->name == m.spec->name) {
      m.spec = *onBoard;
      continue;
    }
    if (!options_.verifyInstruments) continue;
    if (model.empty())
      return fail(ErrorCode::kInvalidArgument,
                  std::string("the board reports no pipette on the ") + toString(mount) + " mount; the protocol loads " +
                      m.spec->name,
                  {{"mount", toString(mount)}, {"expected", m.spec->name}});
    auto onBoard = findPipette(model);
    if (!onBoard || (*onBoard)->name != m.spec->name)
      return fail(ErrorCode::kInvalidArgument,
                  std::string("the ") + toString(mount) + " mount holds a " + model + " but the protocol loads " +
                      m.spec->name,
                  {{"mount", toString(mount)}, {"found", model}, {"foundId", found[0]}, {"expected", m.spec->name}});
  }
  return {};
}

namespace {

// Opentrons' pipette name specs, smoothieConfigs: plunger steps/mm, the mount's home
// position (M365.0) and the plunger's travel (M365.1). GEN2 singles and multis differ in
// home position; every GEN1 pipette has the same.
struct SmoothieConfig {
  double stepsPerMm, homePosition, travel;
};
SmoothieConfig smoothieConfig(const PipetteSpec& spec) {
  bool gen2 = spec.name.find("_gen2") != std::string::npos;
  if (!gen2) return {768, 220, 30};
  bool multi = spec.name.find("_multi") != std::string::npos;
  return {3200, multi ? 155.75 : 172.15, 60};
}

// "3200.0", "155.75": as Opentrons prints these floats.
std::string number(double v) {
  char buf[32];
  if (v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

namespace {
Status ok(const Result<std::string>& r) {
  if (!r) return tl::unexpected(r.error());
  return {};
}
}  // namespace

// Opentrons' connection setup: reset from error, steps/mm, absolute mode, position, default
// max speeds, feed and accelerations.
Status SmoothieRobot::setUpBoard() {
  for (const char* codes : {"M999", "G28.6", "M92 X80.0 Y80.0 Z400.0 A400.0", "M92 B768.0 C768.0", "G90"})
    if (auto st = ok(driver_->command(codes)); !st) return st;
  if (auto r = driver_->updatePosition(); !r) return tl::unexpected(r.error());
  for (const char* codes : {"M203.1 A125.0 B40.0 C40.0 X600.0 Y400.0 Z125.0", "G0 F24000.0",
                            "M204 S10000.0 A1500.0 B200.0 C200.0 X3000.0 Y2000.0 Z1500.0"})
    if (auto st = ok(driver_->command(codes)); !st) return st;
  return {};
}

// Reads both mounts' instruments and configures the mounts that hold one.
Status SmoothieRobot::configureMounts() {
  for (Mount mount : {Mount::kLeft, Mount::kRight}) {
    std::string found[2];
    for (int model = 1; model >= 0; --model) {
      if (auto st = ok(driver_->command("M18 Z A B C")); !st) return st;
      if (auto st = ok(driver_->command("G4 P0.1", 0.1)); !st) return st;
      auto text = driver_->readInstrument(mount, model == 1);
      if (!text) return tl::unexpected(text.error());
      found[model] = *text;
    }
    boardModel_[mount == Mount::kLeft ? 0 : 1] = found[1];
  }
  for (Mount mount : {Mount::kLeft, Mount::kRight}) {
    auto spec = findPipette(boardModel_[mount == Mount::kLeft ? 0 : 1]);
    boardSpec_[mount == Mount::kLeft ? 0 : 1] = spec ? *spec : nullptr;
    if (!spec) continue;
    SmoothieConfig c = smoothieConfig(**spec);
    char plunger = axisLetter(plungerAxis(mount)), mountLetter = axisLetter(mountAxis(mount));
    if (auto st = ok(driver_->command(std::string("M92 ") + plunger + number(c.stepsPerMm))); !st) return st;
    if (auto st = ok(driver_->command(std::string("M365.0 ") + mountLetter + number(c.homePosition))); !st) return st;
    if (auto st = ok(driver_->command(std::string("M365.1 ") + plunger + number(c.travel))); !st) return st;
  }
  return {};
}

Status SmoothieRobot::connect() {
  if (auto st = setUpBoard(); !st) return st;
  return configureMounts();
}

Status SmoothieRobot::stopAndHome() {
  // Halt: reset from error and read the homing flags (M999, G28.6), then wait for idle;
  // then the connection setup. Opentrons' stop() does this twice (the backend's halt, then
  // its reset()), re-reads the instruments, and homes.
  for (int i = 0; i < 2; ++i) {
    for (const char* codes : {"M999", "G28.6"})
      if (auto st = ok(driver_->command(codes)); !st) return st;
    if (auto st = driver_->waitForIdle(); !st) return st;
    if (auto st = setUpBoard(); !st) return st;
  }
  if (auto st = configureMounts(); !st) return st;
  homed_ = false;
  return home();
}

Status SmoothieRobot::ensureReady() {
  if (!homed_)
    if (auto st = home(); !st) return st;
  while (pendingScans_ > 0) {
    --pendingScans_;
    if (auto st = scanInstruments(); !st) {
      pendingScans_ = 0;
      return st;
    }
  }
  return {};
}

Status SmoothieRobot::homeAxis(int axis, double current) {
  std::string axes(1, axisLetter(axis));
  if (auto st = driver_->home(axes, with(axis, current)); !st) return st;
  if (auto st = driver_->setCurrents(idleCurrents()); !st) return st;
  if (auto r = driver_->updatePosition(); !r) return tl::unexpected(r.error());
  return {};
}

Status SmoothieRobot::axisMove(int axis, double target, double current, std::optional<double> speed) {
  AxisTargets t;
  t[axis] = target;
  if (auto r = driver_->move(t, with(axis, current), speed); !r) return tl::unexpected(r.error());
  return {};
}

Status SmoothieRobot::plungerMove(Mount mount, double target, double current, std::optional<double> speed) {
  AxisTargets t;
  t[plungerAxis(mount)] = target;
  auto moved = driver_->move(t, with(plungerAxis(mount), current), speed);
  if (!moved) return tl::unexpected(moved.error());
  if (*moved)
    if (auto st = driver_->setCurrents(idleCurrents()); !st) return st;
  return {};
}

// Moves `margin` mm short of the axis's switch at full speed, then homes it.
Status SmoothieRobot::fastHome(int axis, double margin, double current) {
  bool plunger = axis == kAxisB || axis == kAxisC;
  AxisTargets t;
  t[axis] = kSmoothieHomed[axis] - std::fabs(margin);
  auto moved = driver_->move(t, with(axis, current));
  if (!moved) return tl::unexpected(moved.error());
  if (plunger && *moved)
    if (auto st = driver_->setCurrents(idleCurrents()); !st) return st;
  return homeAxis(axis, current);
}

Status SmoothieRobot::retract(Mount mount, double margin) { return fastHome(mountAxis(mount), margin, kMountActive); }

Status SmoothieRobot::homePlunger(Mount mount, const PipetteSpec* spec) {
  int axis = plungerAxis(mount);
  char b = axisLetter(axis);
  if (spec && hasQuirk(*spec, "needsUnstick")) {
    // Opentrons' unstick: full-step, high current, 1 mm down at 1 mm/s, then back.
    std::string s = std::string("M53 M92 ") + b + "100.0 G4 P0.01 M907 " + b + "1.75 G4 P0.005 G0 F60.0 G91";
    if (auto r = driver_->command(s); !r) return tl::unexpected(r.error());
    if (auto r = driver_->command(std::string("G0 ") + b + "-1.0", 1.5); !r) return tl::unexpected(r.error());
    s = std::string("G90 M52 M92 ") + b + "3200.0 G4 P0.01 G0 F24000.0";
    if (auto r = driver_->command(s); !r) return tl::unexpected(r.error());
  }
  double current = spec ? spec->plungerCurrent : 0.5;
  if (auto st = homeAxis(axis, current); !st) return st;
  if (spec)
    if (auto st = plungerMove(mount, spec->plungerBottom, current, std::nullopt); !st) return st;
  return {};
}

Status SmoothieRobot::home() {
  // Opentrons' OT-2 sequence: Z and A; Y backed off the switch at low current and speed;
  // X at 80 mm/s; Y, then Y again slowly from 3 mm; then the plunger of each attached
  // pipette, loaded or not (unstick if the model needs it), which ends at its bottom ready
  // to aspirate. Opentrons' hardware home() knows every attached instrument: a protocol that
  // homes before loading its pipettes (basic_smoothie) still homes both plungers.
  AxisArray idle = idleCurrents();
  auto cmd = [&](const std::string& codes, double seconds = 0) -> Status {
    if (auto r = driver_->command(codes, seconds); !r) return tl::unexpected(r.error());
    return {};
  };
  AxisArray za = idle;
  za[kAxisA] = za[kAxisZ] = kMountActive;
  if (auto st = driver_->home("AZ", za); !st) return st;
  if (auto st = driver_->setCurrents(idle); !st) return st;
  if (auto st = cmd("M203.1 Y50.0"); !st) return st;
  {
    std::string s = "M907";
    AxisArray c = with(kAxisY, 0.8);
    for (int i = 0; i < kSmoothieAxes; ++i) {
      char buf[24];
      std::snprintf(buf, sizeof buf, " %c%g", axisLetter(i), c[i]);
      s += buf;
    }
    s += " G4 P0.005 G91 G0 Y-28.0 G0 Y10.0 G90";
    if (auto st = cmd(s, 2); !st) return st;
  }
  if (auto st = cmd("M203.1 X80.0"); !st) return st;
  if (auto st = driver_->home("X", with(kAxisX, kGantryActive)); !st) return st;
  if (auto st = cmd("M203.1 A125.0 B40.0 C40.0 X600.0 Y400.0 Z125.0"); !st) return st;
  if (auto st = driver_->setCurrents(idle); !st) return st;
  if (auto st = cmd("M203.1 Y80.0"); !st) return st;
  if (auto st = driver_->home("Y", with(kAxisY, kGantryActive)); !st) return st;
  if (auto st = cmd("M203.1 Y8.0"); !st) return st;
  if (auto st = cmd("G91 G0 Y-3.0 G90", 1); !st) return st;
  if (auto st = cmd("G28.2 Y"); !st) return st;
  if (auto st = cmd("G91 G0 Y-3.0 G90", 1); !st) return st;
  if (auto st = cmd("M203.1 A125.0 B40.0 C40.0 X600.0 Y400.0 Z125.0"); !st) return st;
  if (auto st = driver_->setCurrents(idle); !st) return st;
  if (auto r = driver_->updatePosition(); !r) return tl::unexpected(r.error());
  homed_ = true;  // the gantry is; plunger trouble below still leaves it so
  lastMoved_.reset();
  for (Mount mount : {Mount::kLeft, Mount::kRight}) {
    const PipetteSpec* spec = attachedSpec(mount);
    if (!spec) continue;
    if (auto st = homePlunger(mount, spec); !st) return st;
    MountState& m = state(mount);
    m.volume = 0;
    m.plungerReady = true;
  }
  return {};
}

Status SmoothieRobot::moveTo(Mount mount, const Point& target, std::optional<double> speed) {
  if (!std::isfinite(target.x) || !std::isfinite(target.y) || !std::isfinite(target.z)) {
    return fail(ErrorCode::kInvalidArgument, "move target is not a finite point");
  }
  if (speed && !(*speed > 0 && std::isfinite(*speed))) {
    return fail(ErrorCode::kInvalidArgument, "move speed must be positive, got " + std::to_string(*speed),
                {{"speed", *speed}});
  }
  if (auto ok = requireInstrument(mount); !ok) return ok;
  const MountState& m = state(mount);
  MountAxes to = deckToAxes(mount, m.spec, m.tipLength, target);
  if (auto ok = checkReach(mount, target, to); !ok) return ok;
  double x = to.x, y = to.y, z = to.mount;
  if (auto st = ensureReady(); !st) return st;
  if (lastMoved_ && *lastMoved_ != mount)
    if (auto st = retract(*lastMoved_, kRetractMargin); !st) return st;
  lastMoved_ = mount;
  AxisTargets t;
  t[kAxisX] = x;
  t[kAxisY] = y;
  t[mountAxis(mount)] = z;
  // Moving axes at their running current, the rest dwelling: a move along X alone keeps Y
  // at its idle current (basic_smoothie trace: `M907 ... X1.25 Y0.3` before `G0 X146.88`).
  AxisArray currents = idleCurrents();
  if (driver_->wouldMove(kAxisX, x)) currents[kAxisX] = kGantryActive;
  if (driver_->wouldMove(kAxisY, y)) currents[kAxisY] = kGantryActive;
  if (driver_->wouldMove(mountAxis(mount), z)) currents[mountAxis(mount)] = kMountActive;
  if (auto r = driver_->move(t, currents, speed); !r) return tl::unexpected(r.error());
  return {};
}

Status SmoothieRobot::preparePlunger(Mount mount) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (m.volume > kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                std::string("cannot prepare the ") + toString(mount) + " plunger: the tip holds " +
                    std::to_string(m.volume) + " µL",
                {{"mount", toString(mount)}, {"volume", m.volume}});
  }
  if (auto st = ensureReady(); !st) return st;
  if (auto st = plungerMove(mount, m.spec->plungerBottom, m.spec->plungerCurrent, std::nullopt); !st) return st;
  m.plungerReady = true;
  return {};
}

Status SmoothieRobot::aspirate(Mount mount, double volume, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (!std::isfinite(volume) || volume < 0) {
    return fail(ErrorCode::kInvalidArgument, "aspirate volume must be >= 0, got " + std::to_string(volume),
                {{"volume", volume}});
  }
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, std::string("cannot aspirate: no tip on the ") + toString(mount) + " pipette",
                {{"mount", toString(mount)}});
  }
  if (m.volume + volume > m.spec->maxVolume + kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                "cannot aspirate " + std::to_string(volume) + " µL: the " + m.spec->model + " holds " +
                    std::to_string(m.volume) + " µL of at most " + std::to_string(m.spec->maxVolume) + " µL",
                {{"mount", toString(mount)}, {"volume", volume}, {"current", m.volume}, {"max", m.spec->maxVolume}});
  }
  if (auto st = ensureReady(); !st) return st;
  if (!m.plungerReady)
    if (auto st = preparePlunger(mount); !st) return st;
  double target = m.spec->plungerPositionFor(m.volume + volume, false);
  if (auto st = plungerMove(mount, target, m.spec->plungerCurrent, m.spec->plungerSpeedFor(flowRate, false)); !st)
    return st;
  m.volume += volume;
  return {};
}

Status SmoothieRobot::dispense(Mount mount, double volume, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (!std::isfinite(volume) || volume < 0) {
    return fail(ErrorCode::kInvalidArgument, "dispense volume must be >= 0, got " + std::to_string(volume),
                {{"volume", volume}});
  }
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, std::string("cannot dispense: no tip on the ") + toString(mount) + " pipette",
                {{"mount", toString(mount)}});
  }
  if (volume > m.volume + kVolumeTolerance) {
    return fail(ErrorCode::kInvalidArgument,
                "cannot dispense " + std::to_string(volume) + " µL: the tip holds " + std::to_string(m.volume) + " µL",
                {{"mount", toString(mount)}, {"volume", volume}, {"current", m.volume}});
  }
  if (auto st = ensureReady(); !st) return st;
  double left = std::max(0.0, m.volume - volume);
  if (left < kVolumeTolerance) left = 0;
  double target = m.spec->plungerPositionFor(left, true);
  if (auto st = plungerMove(mount, target, m.spec->plungerCurrent, m.spec->plungerSpeedFor(flowRate, true)); !st)
    return st;
  m.volume = left;
  return {};
}

Status SmoothieRobot::blowOut(Mount mount, double flowRate) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (!std::isfinite(flowRate) || flowRate <= 0) {
    return fail(ErrorCode::kInvalidArgument, "flow rate must be positive, got " + std::to_string(flowRate),
                {{"flowRate", flowRate}});
  }
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, std::string("cannot blow out: no tip on the ") + toString(mount) + " pipette",
                {{"mount", toString(mount)}});
  }
  if (auto st = ensureReady(); !st) return st;
  if (auto st = plungerMove(mount, m.spec->plungerBlowOut, m.spec->plungerCurrent,
                            m.spec->plungerSpeedFor(flowRate, true));
      !st)
    return st;
  m.volume = 0;
  m.plungerReady = false;
  return {};
}

Status SmoothieRobot::pickUpTip(Mount mount, double tipLength) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (!std::isfinite(tipLength) || tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, "tip length must be positive, got " + std::to_string(tipLength),
                {{"tipLength", tipLength}});
  }
  if (m.tipLength > 0) {
    return fail(ErrorCode::kInvalidArgument, std::string("the ") + toString(mount) + " pipette already has a tip",
                {{"mount", toString(mount)}});
  }
  if (auto st = ensureReady(); !st) return st;
  const PipetteSpec& spec = *m.spec;
  int axis = mountAxis(mount);
  double start = driver_->position()[axis];
  int presses = std::max(1, spec.pickUpPresses);
  for (int i = 0; i < presses; ++i) {
    double depth = spec.pickUpDistance + i * spec.pickUpIncrement;
    if (auto st = axisMove(axis, start - depth, spec.pickUpCurrent, spec.pickUpSpeed); !st) return st;
    if (auto st = axisMove(axis, start, kMountActive, std::nullopt); !st) return st;
  }
  m.tipLength = tipLength;
  m.volume = 0;
  double retractBy = spec.pickUpDistance + (presses - 1) * spec.pickUpIncrement + 2;
  if (auto st = retract(mount, retractBy); !st) return st;
  // Opentrons readies the plunger after a pick-up (it is already at the bottom unless a
  // blow-out or an interrupted run left it elsewhere).
  if (auto st = plungerMove(mount, spec.plungerBottom, spec.plungerCurrent, std::nullopt); !st) return st;
  m.plungerReady = true;
  return {};
}

Status SmoothieRobot::dropTip(Mount mount) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  MountState& m = state(mount);
  if (m.tipLength <= 0) {
    return fail(ErrorCode::kInvalidArgument, std::string("the ") + toString(mount) + " pipette has no tip to drop",
                {{"mount", toString(mount)}});
  }
  if (auto st = ensureReady(); !st) return st;
  const PipetteSpec& spec = *m.spec;
  int axis = plungerAxis(mount);
  // To the bottom, eject at the drop-tip speed and current, home the plunger from just
  // short of its switch, and back to the bottom.
  if (auto st = plungerMove(mount, spec.plungerBottom, spec.plungerCurrent, std::nullopt); !st) return st;
  if (auto st = plungerMove(mount, spec.plungerDropTip, spec.dropTipCurrent, spec.dropTipSpeed); !st) return st;
  m.tipLength = 0;
  m.volume = 0;
  m.plungerReady = false;
  if (auto st = fastHome(axis, std::fabs(spec.plungerBottom - spec.plungerDropTip), spec.dropTipCurrent); !st)
    return st;
  if (auto st = plungerMove(mount, spec.plungerBottom, spec.plungerCurrent, std::nullopt); !st) return st;
  m.plungerReady = true;
  return {};
}

Status SmoothieRobot::assumeTip(Mount mount, double tipLength) {
  if (auto ok = requireInstrument(mount); !ok) return ok;
  state(mount).tipLength = tipLength;
  return {};
}

Status SmoothieRobot::delay(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) {
    return fail(ErrorCode::kInvalidArgument, "delay must be >= 0 s, got " + std::to_string(seconds),
                {{"seconds", seconds}});
  }
  if (seconds == 0) return {};
  char buf[48];
  std::snprintf(buf, sizeof buf, "G4 S%.3f", seconds);
  if (auto r = driver_->command(buf, seconds); !r) return tl::unexpected(r.error());
  return {};
}

::runrec::hardware::MountState SmoothieRobot::stateOf(Mount mount) const {
  const MountState& m = state(mount);
  const AxisArray& a = driver_->position();
  ::runrec::hardware::MountState s;
  s.point = axesToDeck(mount, m.spec, m.tipLength, {a[kAxisX], a[kAxisY], a[mountAxis(mount)]});
  s.plunger = a[plungerAxis(mount)];
  return s;
}

Result<Positions> SmoothieRobot::positions() {
  // Before the first home the board's positions mean nothing: home to know them.
  if (auto st = ensureReady(); !st) return tl::unexpected(st.error());
  const AxisArray& a = driver_->position();
  Positions p;
  p.axes = {a[kAxisX], a[kAxisY], a[kAxisZ], a[kAxisA], a[kAxisB], a[kAxisC]};
  p.left = stateOf(Mount::kLeft);
  p.right = stateOf(Mount::kRight);
  return p;
}

std::unique_ptr<Robot> makeSimulatedSmoothieRobot(VirtualSmoothieOptions board,
                                                  std::function<void(std::string_view)> onLine,
                                                  bool verifyInstruments) {
  auto vboard = std::make_shared<VirtualSmoothie>(std::move(board));
  std::unique_ptr<SerialPort> port = makeLoopbackPort(*vboard);
  // `onLine` sees what runs send: the connection setup below happens before any run (as
  // Opentrons' G-code traces start after its driver connected), so it is not shown.
  auto recording = std::make_shared<bool>(false);
  if (onLine)
    port = makeRecordingPort(std::move(port), [recording, onLine = std::move(onLine)](std::string_view line) {
      if (*recording) onLine(line);
    });
  SmoothieRobotOptions options;
  options.verifyInstruments = verifyInstruments;
  options.name = "sim";
  options.board = vboard;
  auto robot = std::make_unique<SmoothieRobot>(std::make_unique<SmoothieDriver>(std::move(port)), std::move(options));
  if (auto st = robot->connect(); !st) spdlog::error("virtual Smoothie: connecting: {}", st.error().message);
  *recording = true;
  return robot;
}

Result<std::unique_ptr<Robot>> makeSerialSmoothieRobot(const std::string& device) {
  auto port = openSerialPort(device);
  if (!port) return tl::unexpected(port.error());
  SmoothieRobotOptions options;
  options.name = "smoothie:" + device;
  auto robot = std::make_unique<SmoothieRobot>(std::make_unique<SmoothieDriver>(std::move(*port)), std::move(options));
  if (auto st = robot->connect(); !st) {
    Error e = st.error();
    e.message = "connecting to the board on " + device + ": " + e.message;
    return tl::unexpected(e);
  }
  return std::unique_ptr<Robot>(std::move(robot));
}

}  // namespace runrec::hardware
