// ModuleDriver: one G-code per line to a module, its acknowledgement, timeouts and
// re-sends, typed errors, and the codes of each model's dialect (docs/modules.md).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <thread>

#include "reply_text.hpp"
#include "runrec/hardware/modules.hpp"

namespace runrec::hardware {
namespace {

using detail::containsNoCase;
using detail::endsWith;
using detail::escaped;
using detail::printable;

struct Dialect {
  const char* terminator;
  const char* ack;
  const char* errorKeyword;
  std::chrono::milliseconds timeout;
  int retries;
};

// As Opentrons' drivers (api/src/opentrons/drivers/*/driver.py): temperature and magnetic
// modules end a command with \r\n\r\n, the thermocycler with \r\n, the heater-shaker with
// \n; the first three acknowledge `ok\r\nok\r\n`, the heater-shaker echoes the code and
// ends with `OK\n`. Timeouts: Opentrons uses 1 s (temperature), 10 s (magnetic), 40 s
// (thermocycler, heater-shaker); ours are per attempt.
Dialect dialectFor(ModuleType type) {
  switch (type) {
    case ModuleType::kTemperature: return {"\r\n\r\n", "ok\r\nok\r\n", "error", std::chrono::milliseconds(2000), 3};
    case ModuleType::kMagnetic: return {"\r\n\r\n", "ok\r\nok\r\n", "error", std::chrono::milliseconds(10000), 3};
    case ModuleType::kThermocycler: return {"\r\n", "ok\r\nok\r\n", "error", std::chrono::milliseconds(40000), 3};
    case ModuleType::kHeaterShaker: return {"\n", "OK\n", "err", std::chrono::milliseconds(40000), 4};
  }
  return {"\r\n", "ok\r\nok\r\n", "error", std::chrono::milliseconds(2000), 3};
}

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

// Python's str(round(v, precision)), as Opentrons' CommandBuilder prints floats: "40.0", "12.5".
std::string formatModuleNumber(double v, int precision) {
  double scale = std::pow(10.0, precision);
  double r = std::round(v * scale) / scale;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", std::max(precision, 1), r);
  std::string s = buf;
  while (s.size() > 2 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  if (s == "-0.0") s = "0.0";
  return s;
}

std::map<std::string, std::string> parseKeyValues(std::string_view reply) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < reply.size()) {
    while (i < reply.size() && (reply[i] == ' ' || reply[i] == '\r' || reply[i] == '\n')) ++i;
    std::size_t start = i;
    while (i < reply.size() && reply[i] != ' ' && reply[i] != '\r' && reply[i] != '\n') ++i;
    std::string_view tok = reply.substr(start, i - start);
    auto colon = tok.find(':');
    if (colon != std::string_view::npos && colon > 0 && colon + 1 < tok.size())
      out[std::string(tok.substr(0, colon))] = std::string(tok.substr(colon + 1));
  }
  return out;
}

ModuleDriver::ModuleDriver(const ModuleModel& model, std::unique_ptr<SerialPort> port, ModuleDriverOptions options)
    : model_(model), port_(std::move(port)), options_(options) {
  Dialect d = dialectFor(model.type);
  terminator_ = d.terminator;
  ack_ = d.ack;
  timeout_ = options_.ackTimeout.count() > 0 ? options_.ackTimeout : d.timeout;
  if (options_.retries < 0) options_.retries = d.retries;
}

Result<std::string> ModuleDriver::transact(const std::string& line, std::string_view code) {
  char buf[512];
  const std::string shown(code);
  const std::string errorKeyword = dialectFor(model_.type).errorKeyword;
  nlohmann::json where = {{"module", model_.model}, {"port", port_->describe()}, {"command", shown}};
  while (true) {
    auto n = port_->read(buf, sizeof buf, std::chrono::milliseconds(0));
    if (!n) return fail(ErrorCode::kCommunication, n.error().message, where);
    if (*n == 0) break;
    spdlog::warn("{}: discarding {} stale byte(s) before `{}`: {}", model_.model, *n, shown,
                 escaped(std::string_view(buf, *n)));
  }
  std::string reply;
  bool acked = false;
  int attempts = 1 + std::max(0, options_.retries);
  for (int attempt = 1; attempt <= attempts && !acked; ++attempt) {
    if (attempt > 1)
      spdlog::warn("{}: no acknowledgement for `{}`; retry {} of {}", model_.model, shown, attempt - 1, attempts - 1);
    ++linesSent_;
    if (auto st = port_->write(line); !st) return fail(ErrorCode::kCommunication, st.error().message, where);
    reply.clear();
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (!endsWith(reply, ack_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto n = port_->read(buf, sizeof buf, left);
      if (!n) return fail(ErrorCode::kCommunication, n.error().message, where);
      reply.append(buf, *n);
      // An error line is an answer even if the acknowledgement never comes.
      if (containsNoCase(reply, errorKeyword) && reply.find('\n') != std::string::npos && !endsWith(reply, ack_)) {
        // Give the acknowledgement a moment to follow, then report.
        auto more = port_->read(buf, sizeof buf, std::chrono::milliseconds(50));
        if (more && *more) reply.append(buf, *more);
        break;
      }
    }
    acked = endsWith(reply, ack_);
    if (!acked && containsNoCase(reply, errorKeyword)) break;
  }
  if (!acked && reply.empty())
    return fail(ErrorCode::kTimeout,
                "the " + model_.displayName + " did not acknowledge `" + shown + "` (" + std::to_string(attempts) +
                    " attempt(s), " + std::to_string(timeout_.count()) + " ms each)",
                {{"module", model_.model}, {"port", port_->describe()}, {"command", shown}, {"attempts", attempts},
                 {"timeoutMs", timeout_.count()}});
  std::string_view body(reply);
  if (acked) body.remove_suffix(ack_.size());
  if (!printable(body))
    return fail(ErrorCode::kCommunication, "garbage in the " + model_.displayName + "'s reply to `" + shown + "`: " + escaped(body),
                {{"module", model_.model}, {"port", port_->describe()}, {"command", shown}, {"reply", escaped(body)}});
  if (containsNoCase(body, errorKeyword)) {
    std::string text = trimmed(body);
    return fail(ErrorCode::kBoardError, model_.displayName + " error on `" + shown + "`: " + text,
                {{"module", model_.model}, {"port", port_->describe()}, {"command", shown}, {"reply", text}});
  }
  if (!acked)
    return fail(ErrorCode::kTimeout, "the " + model_.displayName + "'s reply to `" + shown + "` never finished: " + escaped(body),
                {{"module", model_.model}, {"port", port_->describe()}, {"command", shown}, {"reply", escaped(body)}});
  std::string text = trimmed(body);
  // The heater-shaker echoes the code first ("M105 C:25 T:none").
  std::string codeName(code.substr(0, code.find(' ')));
  if (model_.type == ModuleType::kHeaterShaker && text.rfind(codeName, 0) == 0) text = trimmed(text.substr(codeName.size()));
  return text;
}

Result<std::string> ModuleDriver::command(std::string_view code) {
  // As Opentrons' CommandBuilder: elements and the terminator joined by spaces ("M105 \r\n\r\n").
  std::string line(code);
  line += ' ';
  line += terminator_;
  return transact(line, code);
}

Status ModuleDriver::requireType(ModuleType type, const char* what) const {
  if (model_.type == type) return {};
  return fail(ErrorCode::kInvalidArgument, std::string(what) + " is not a " + model_.displayName + " command",
              {{"module", model_.model}});
}

namespace {
Status done(const Result<std::string>& r) {
  if (!r) return tl::unexpected(r.error());
  return {};
}

std::optional<double> optionalNumber(const std::map<std::string, std::string>& kv, const char* key, bool* bad) {
  auto it = kv.find(key);
  if (it == kv.end()) {
    *bad = true;
    return std::nullopt;
  }
  if (it->second == "none") return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || ptr != it->second.data() + it->second.size() || !std::isfinite(v)) {
    *bad = true;
    return std::nullopt;
  }
  return v;
}

Error unreadable(const ModuleModel& m, const char* code, const std::string& reply) {
  return Error{ErrorCode::kCommunication, "unreadable reply to " + std::string(code) + " from the " + m.displayName + ": " + reply,
               {{"module", m.model}, {"command", code}, {"reply", reply}}};
}
}  // namespace

Status ModuleDriver::setTemperature(double celsius, std::optional<double> holdSeconds, std::optional<double> volumeUl) {
  if (model_.type == ModuleType::kMagnetic)
    return fail(ErrorCode::kInvalidArgument, "the magnetic module has no heater", {{"module", model_.model}});
  // Precision: 0 decimals (temperature module), 2 (thermocycler, heater-shaker).
  int precision = model_.type == ModuleType::kTemperature ? 0 : 2;
  std::string code = "M104 S" + formatModuleNumber(celsius, precision);
  if (model_.type == ModuleType::kThermocycler) {
    if (holdSeconds && *holdSeconds > 0) code += " H" + formatModuleNumber(*holdSeconds, 2);
    if (volumeUl && *volumeUl > 0) code += " V" + formatModuleNumber(*volumeUl, 2);
  }
  return done(command(code));
}

Result<ModuleReadings> ModuleDriver::readTemperature() {
  if (model_.type == ModuleType::kMagnetic)
    return fail(ErrorCode::kInvalidArgument, "the magnetic module has no heater", {{"module", model_.model}});
  auto r = command("M105");
  if (!r) return tl::unexpected(r.error());
  auto kv = parseKeyValues(*r);
  bool bad = false;
  ModuleReadings out;
  out.targetCelsius = optionalNumber(kv, "T", &bad);
  out.currentCelsius = optionalNumber(kv, "C", &bad);
  if (model_.type == ModuleType::kThermocycler) {
    bool badHold = false;
    out.holdSecondsRemaining = optionalNumber(kv, "H", &badHold);
  }
  if (bad || !out.currentCelsius) return tl::unexpected(unreadable(model_, "M105", *r));
  return out;
}

Result<ModuleReadings> ModuleDriver::waitForTemperature(double celsius) {
  auto start = std::chrono::steady_clock::now();
  while (true) {
    auto r = readTemperature();
    if (!r) return r;
    bool at = r->currentCelsius && std::fabs(*r->currentCelsius - celsius) <= 0.5;
    bool held = !r->holdSecondsRemaining || *r->holdSecondsRemaining <= 0;
    if (at && held) return r;
    if (std::chrono::steady_clock::now() - start > options_.waitLimit)
      return fail(ErrorCode::kTimeout, "the " + model_.displayName + " did not reach " + formatModuleNumber(celsius, 2) + " °C",
                  {{"module", model_.model}, {"celsius", celsius}});
    std::this_thread::sleep_for(options_.pollInterval);
  }
}

Status ModuleDriver::deactivateHeater() {
  switch (model_.type) {
    case ModuleType::kTemperature: return done(command("M18"));
    case ModuleType::kHeaterShaker: return done(command("M106"));
    case ModuleType::kThermocycler: return done(command("M14"));
    case ModuleType::kMagnetic: break;
  }
  return fail(ErrorCode::kInvalidArgument, "the magnetic module has no heater", {{"module", model_.model}});
}

Status ModuleDriver::setLidTemperature(double celsius) {
  if (auto st = requireType(ModuleType::kThermocycler, "M140"); !st) return st;
  return done(command("M140 S" + formatModuleNumber(celsius, 2)));
}

Result<ModuleReadings> ModuleDriver::readLidTemperature() {
  if (auto st = requireType(ModuleType::kThermocycler, "M141"); !st) return tl::unexpected(st.error());
  auto r = command("M141");
  if (!r) return tl::unexpected(r.error());
  auto kv = parseKeyValues(*r);
  bool bad = false;
  ModuleReadings out;
  out.lidTargetCelsius = optionalNumber(kv, "T", &bad);
  out.lidCelsius = optionalNumber(kv, "C", &bad);
  if (bad || !out.lidCelsius) return tl::unexpected(unreadable(model_, "M141", *r));
  return out;
}

Result<ModuleReadings> ModuleDriver::waitForLidTemperature(double celsius) {
  auto start = std::chrono::steady_clock::now();
  while (true) {
    auto r = readLidTemperature();
    if (!r) return r;
    if (r->lidCelsius && std::fabs(*r->lidCelsius - celsius) <= 0.5) return r;
    if (std::chrono::steady_clock::now() - start > options_.waitLimit)
      return fail(ErrorCode::kTimeout, "the thermocycler lid did not reach " + formatModuleNumber(celsius, 2) + " °C",
                  {{"module", model_.model}, {"celsius", celsius}});
    std::this_thread::sleep_for(options_.pollInterval);
  }
}

Status ModuleDriver::deactivateLid() {
  if (auto st = requireType(ModuleType::kThermocycler, "M108"); !st) return st;
  return done(command("M108"));
}

Status ModuleDriver::openLid() {
  if (auto st = requireType(ModuleType::kThermocycler, "M126"); !st) return st;
  return done(command("M126"));
}

Status ModuleDriver::closeLid() {
  if (auto st = requireType(ModuleType::kThermocycler, "M127"); !st) return st;
  return done(command("M127"));
}

Result<std::string> ModuleDriver::readLidStatus() {
  if (auto st = requireType(ModuleType::kThermocycler, "M119"); !st) return tl::unexpected(st.error());
  auto r = command("M119");
  if (!r) return r;
  auto kv = parseKeyValues(*r);
  auto it = kv.find("Lid");
  if (it == kv.end() || (it->second != "open" && it->second != "closed" && it->second != "in_between"))
    return tl::unexpected(unreadable(model_, "M119", *r));
  return it->second;
}

Status ModuleDriver::deactivateAll() {
  if (auto st = requireType(ModuleType::kThermocycler, "M18"); !st) return st;
  return done(command("M18"));
}

Status ModuleDriver::homeMagnet() {
  if (auto st = requireType(ModuleType::kMagnetic, "G28.2"); !st) return st;
  return done(command("G28.2"));
}

Status ModuleDriver::moveMagnet(double position) {
  if (auto st = requireType(ModuleType::kMagnetic, "G0"); !st) return st;
  return done(command("G0 Z" + formatModuleNumber(position, 3)));
}

Result<double> ModuleDriver::readMagnetPosition() {
  if (auto st = requireType(ModuleType::kMagnetic, "M114.2"); !st) return tl::unexpected(st.error());
  auto r = command("M114.2");
  if (!r) return tl::unexpected(r.error());
  auto kv = parseKeyValues(*r);
  bool bad = false;
  auto z = optionalNumber(kv, "Z", &bad);
  if (bad || !z) return tl::unexpected(unreadable(model_, "M114.2", *r));
  return *z;
}

Status ModuleDriver::setRpm(int rpm) {
  if (auto st = requireType(ModuleType::kHeaterShaker, "M3"); !st) return st;
  return done(command("M3 S" + std::to_string(rpm)));
}

Result<ModuleReadings> ModuleDriver::readRpm() {
  if (auto st = requireType(ModuleType::kHeaterShaker, "M123"); !st) return tl::unexpected(st.error());
  auto r = command("M123");
  if (!r) return tl::unexpected(r.error());
  auto kv = parseKeyValues(*r);
  bool bad = false;
  auto t = optionalNumber(kv, "T", &bad);
  auto c = optionalNumber(kv, "C", &bad);
  if (bad || !c) return tl::unexpected(unreadable(model_, "M123", *r));
  ModuleReadings out;
  out.currentRpm = static_cast<int>(std::lround(*c));
  out.targetRpm = t ? static_cast<int>(std::lround(*t)) : 0;
  return out;
}

Result<ModuleReadings> ModuleDriver::waitForRpm(int rpm) {
  auto start = std::chrono::steady_clock::now();
  while (true) {
    auto r = readRpm();
    if (!r) return r;
    if (r->currentRpm && std::abs(*r->currentRpm - rpm) <= std::max(1, rpm / 100)) return r;
    if (std::chrono::steady_clock::now() - start > options_.waitLimit)
      return fail(ErrorCode::kTimeout, "the heater-shaker did not reach " + std::to_string(rpm) + " rpm",
                  {{"module", model_.model}, {"rpm", rpm}});
    std::this_thread::sleep_for(options_.pollInterval);
  }
}

Status ModuleDriver::stopShaking() {
  if (auto st = requireType(ModuleType::kHeaterShaker, "G28"); !st) return st;
  return done(command("G28"));
}

Status ModuleDriver::openLatch() {
  if (auto st = requireType(ModuleType::kHeaterShaker, "M242"); !st) return st;
  return done(command("M242"));
}

Status ModuleDriver::closeLatch() {
  if (auto st = requireType(ModuleType::kHeaterShaker, "M243"); !st) return st;
  return done(command("M243"));
}

Result<std::string> ModuleDriver::readLatch() {
  if (auto st = requireType(ModuleType::kHeaterShaker, "M241"); !st) return tl::unexpected(st.error());
  auto r = command("M241");
  if (!r) return r;
  auto kv = parseKeyValues(*r);
  auto it = kv.find("STATUS");
  if (it == kv.end()) return tl::unexpected(unreadable(model_, "M241", *r));
  // Firmware states: IDLE_OPEN, IDLE_CLOSED, OPENING, CLOSING, IDLE_UNKNOWN, UNKNOWN.
  const std::string& s = it->second;
  if (s == "IDLE_OPEN") return std::string("open");
  if (s == "IDLE_CLOSED") return std::string("closed");
  if (s == "OPENING") return std::string("opening");
  if (s == "CLOSING") return std::string("closing");
  if (s == "IDLE_UNKNOWN" || s == "UNKNOWN") return std::string("unknown");
  return tl::unexpected(unreadable(model_, "M241", *r));
}

Result<ModuleReadings> ModuleDriver::readAll() {
  ModuleReadings out;
  switch (model_.type) {
    case ModuleType::kTemperature: return readTemperature();
    case ModuleType::kMagnetic: {
      auto z = readMagnetPosition();
      if (!z) return tl::unexpected(z.error());
      out.magnetPosition = *z;
      return out;
    }
    case ModuleType::kThermocycler: {
      auto block = readTemperature();
      if (!block) return block;
      out = *block;
      auto lid = readLidTemperature();
      if (!lid) return lid;
      out.lidTargetCelsius = lid->lidTargetCelsius;
      out.lidCelsius = lid->lidCelsius;
      auto status = readLidStatus();
      if (!status) return tl::unexpected(status.error());
      out.lid = *status;
      return out;
    }
    case ModuleType::kHeaterShaker: {
      auto t = readTemperature();
      if (!t) return t;
      out = *t;
      auto rpm = readRpm();
      if (!rpm) return rpm;
      out.targetRpm = rpm->targetRpm;
      out.currentRpm = rpm->currentRpm;
      auto latch = readLatch();
      if (!latch) return tl::unexpected(latch.error());
      out.latch = *latch;
      return out;
    }
  }
  return out;
}

}  // namespace runrec::hardware
