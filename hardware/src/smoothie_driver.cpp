// SmoothieDriver: command lines, acknowledgements, timeouts and retries, typed errors with
// the board's reset and re-home, and the G-code formats the OT-2 board expects.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "reply_text.hpp"
#include "runrec/hardware/smoothie.hpp"

namespace runrec::hardware {
namespace {

using detail::containsNoCase;
using detail::endsWith;
using detail::escaped;
using detail::printable;

constexpr std::string_view kAck = "ok\r\nok\r\n";
constexpr AxisArray kMaxSpeed{125, 40, 40, 600, 400, 125};  // mm/s, for timeouts
constexpr double kBacklash = 0.3;                          // plunger backlash, mm
constexpr double kDefaultSpeed = 400;                      // mm/s (F24000)

// llround(x), as Opentrons' Python round() gives it for our values (half away from zero),
// without the libm call: this runs for every number of every move. Exact: the cast
// truncates and x - trunc(x) is exact in binary floating point. Huge or non-finite values
// go to llround.
long long roundHalfAway(double x) {
  if (!(std::fabs(x) < 1e15)) return std::llround(x);
  auto i = static_cast<long long>(x);
  double frac = x - static_cast<double>(i);
  if (frac >= 0.5) ++i;
  else if (frac <= -0.5) --i;
  return i;
}

// std::round(v * 1000) / 1000: the 3 decimals Opentrons sends (sign of zero kept).
double round3(double v) {
  double x = v * 1000.0;
  if (!(std::fabs(x) < 1e15)) return std::round(x) / 1000.0;
  return std::copysign(static_cast<double>(roundHalfAway(x)), x) / 1000.0;
}

// Python's str(round(v, 3)), as Opentrons prints coordinates: "54.24", "218.0", "-3.525".
// Integer arithmetic: this runs for every number of every move.
void appendNumber(std::string& out, double v) {
  long long milli = roundHalfAway(v * 1000.0);
  char buf[32];
  char* p = buf;
  if (milli < 0) {
    *p++ = '-';
    milli = -milli;
  }
  p = std::to_chars(p, buf + sizeof buf, milli / 1000).ptr;
  *p++ = '.';
  int frac = static_cast<int>(milli % 1000);
  *p++ = static_cast<char>('0' + frac / 100);
  if (frac % 100 != 0) {
    *p++ = static_cast<char>('0' + frac / 10 % 10);
    if (frac % 10 != 0) *p++ = static_cast<char>('0' + frac % 10);
  }
  out.append(buf, static_cast<std::size_t>(p - buf));
}

}  // namespace

std::string decodeInstrumentHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    char c = static_cast<char>(hi * 16 + lo);
    if (c == 0) break;
    out += c;
  }
  return out;
}

std::string encodeInstrumentHex(std::string_view text) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

SmoothieDriver::SmoothieDriver(std::unique_ptr<SerialPort> port, SmoothieDriverOptions options)
    : port_(std::move(port)), options_(options) {
  line_.reserve(256);
  reply_.reserve(256);
}

Result<std::string_view> SmoothieDriver::transact(std::string_view line, std::chrono::milliseconds timeout,
                                                  bool homing) {
  char buf[512];
  // The command as messages show it, built only when one is needed.
  auto commandText = [line] { return std::string(line.substr(0, line.size() - 2)); };
  // Anything already waiting is stale (a late reply to a timed-out attempt): report it.
  while (true) {
    auto n = port_->read(buf, sizeof buf, std::chrono::milliseconds(0));
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) break;
    spdlog::warn("smoothie: discarding {} stale byte(s) before `{}`: {}", *n, line.substr(0, line.find('\r')),
                 escaped(std::string_view(buf, *n)));
  }
  bool acked = false;
  int attempts = 1 + std::max(0, options_.retries);
  for (int attempt = 1; attempt <= attempts && !acked; ++attempt) {
    if (attempt > 1)
      spdlog::warn("smoothie: no acknowledgement for `{}`; retry {} of {}", line.substr(0, line.find('\r')),
                   attempt - 1, attempts - 1);
    ++linesSent_;
    if (auto st = port_->write(line); !st)
      return fail(ErrorCode::kCommunication, st.error().message, {{"command", commandText()}});
    reply_.clear();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!endsWith(reply_, kAck)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto n = port_->read(buf, sizeof buf, left);
      if (!n) return fail(ErrorCode::kCommunication, n.error().message, {{"command", commandText()}});
      reply_.append(buf, *n);
    }
    acked = endsWith(reply_, kAck);
    // An error or alarm line is an answer even if its acknowledgement never came.
    if (!acked && (containsNoCase(reply_, "error") || containsNoCase(reply_, "alarm"))) break;
  }
  if (!acked && reply_.empty()) {
    std::string command = commandText();
    return fail(ErrorCode::kTimeout,
                "the Smoothie did not acknowledge `" + command + "` (" + std::to_string(attempts) + " attempt(s), " +
                    std::to_string(timeout.count()) + " ms each)",
                {{"command", command}, {"attempts", attempts}, {"timeoutMs", timeout.count()}});
  }
  std::string_view body(reply_);
  if (acked) body.remove_suffix(kAck.size());
  if (body.empty() && acked) return body;  // the usual answer to a move: just the acknowledgement
  if (!printable(body)) {
    std::string command = commandText();
    return fail(ErrorCode::kCommunication, "garbage in the Smoothie's reply to `" + command + "`: " + escaped(body),
                {{"command", command}, {"reply", escaped(body)}});
  }
  bool isAlarm = containsNoCase(body, "alarm");
  bool isError = !isAlarm && containsNoCase(body, "error");
  if (isAlarm || isError) {
    std::string command = commandText();
    std::string reply(body);  // recovery below reuses reply_
    while (!reply.empty() && (reply.back() == '\r' || reply.back() == '\n' || reply.back() == ' ')) reply.pop_back();
    auto recovered = recoverFromError(command, homing ? std::string_view() : std::string_view(reply));
    nlohmann::json details = {{"command", command}, {"reply", reply}};
    if (!recovered) details["recovery"] = recovered.error().message;
    return fail(isAlarm ? ErrorCode::kAlarm : ErrorCode::kBoardError,
                std::string(isAlarm ? "Smoothie ALARM" : "Smoothie error") + " on `" + command + "`: " + reply,
                std::move(details));
  }
  if (!acked) {
    std::string command = commandText();
    return fail(ErrorCode::kTimeout, "the Smoothie's reply to `" + command + "` never finished: " + escaped(body),
                {{"command", command}, {"reply", escaped(body)}});
  }
  return body;
}

// As Opentrons' driver: reset the board (M999), then home the axis an alarm named after a
// move (a limit switch hit leaves its position unknown).
Status SmoothieDriver::recoverFromError(std::string_view /*line*/, std::string_view reply) {
  if (recovering_) return {};
  recovering_ = true;
  struct Guard {
    bool& flag;
    ~Guard() { flag = false; }
  } guard{recovering_};
  if (auto r = transact("M999 M400\r\n", options_.ackTimeout, false); !r) return tl::unexpected(r.error());
  char axis = reply.empty() ? 0 : reply.back();
  const char* at = axis ? std::strchr(kSmoothieAxisNames, axis) : nullptr;
  if (!at) return {};
  int i = static_cast<int>(at - kSmoothieAxisNames);
  std::string home = std::string("G28.2 ") + axis + " M400\r\n";
  if (auto r = transact(home, options_.homeTimeout, true); !r) return tl::unexpected(r.error());
  position_[i] = kSmoothieHomed[i];
  return {};
}

Result<std::string> SmoothieDriver::command(std::string_view codes, double expectedSeconds) {
  line_.clear();
  line_.append(codes);
  line_.append(" M400\r\n", 7);
  bool homing = codes.find("G28.2") != std::string_view::npos;
  auto timeout = homing ? options_.homeTimeout : options_.ackTimeout;
  timeout += std::chrono::milliseconds(static_cast<long long>(std::ceil(expectedSeconds * 2000)));
  auto r = transact(line_, timeout, homing);
  if (!r) return tl::unexpected(r.error());
  return std::string(*r);
}

void SmoothieDriver::appendCurrents(const AxisArray& currents) {
  // Most moves repeat the last currents: reuse their text.
  if (currentsText_.empty() || currents != lastCurrents_) {
    currentsText_ = "M907";
    for (int i = 0; i < kSmoothieAxes; ++i) {
      currentsText_ += ' ';
      currentsText_ += kSmoothieAxisNames[i];
      appendNumber(currentsText_, currents[i]);
    }
    currentsText_ += " G4 P0.005";
    lastCurrents_ = currents;
  }
  line_ += currentsText_;
}

bool SmoothieDriver::wouldMove(int axis, double target) const {
  return std::fabs(round3(target) - position_[axis]) >= 1e-4;
}

Result<bool> SmoothieDriver::move(const AxisTargets& target, const AxisArray& currents, std::optional<double> speed) {
  AxisArray rounded{};  // the targets as sent: 3 decimals
  std::array<bool, kSmoothieAxes> moving{};
  bool any = false, backlash = false;
  double expected = 0;
  for (int i = 0; i < kSmoothieAxes; ++i) {
    if (!target[i]) continue;
    double t = rounded[i] = round3(*target[i]);
    if (std::fabs(t - position_[i]) < 1e-4) continue;
    moving[i] = any = true;
    if ((i == kAxisB || i == kAxisC) && t > position_[i]) backlash = true;
    double v = std::min(speed.value_or(kDefaultSpeed), kMaxSpeed[i]);
    expected = std::max(expected, std::fabs(t - position_[i]) / v);
  }
  if (!any) return false;
  line_.clear();
  if (speed) {
    line_.append("G0 F", 4);
    appendNumber(line_, std::floor(*speed * 60.0 + 1e-9));  // Opentrons truncates mm/min
    line_ += ' ';
  }
  appendCurrents(currents);
  auto appendMove = [&](bool withBacklash) {
    line_.append(" G0", 3);
    for (int i = 0; i < kSmoothieAxes; ++i) {
      if (!moving[i]) continue;
      double t = rounded[i];
      if (withBacklash && (i == kAxisB || i == kAxisC) && t > position_[i]) t += kBacklash;
      const char axis[2] = {' ', kSmoothieAxisNames[i]};
      line_.append(axis, 2);
      appendNumber(line_, t);
    }
  };
  if (backlash) appendMove(true);
  appendMove(false);
  if (speed) line_.append(" G0 F24000.0", 12);
  line_.append(" M400\r\n", 7);
  auto r = transact(line_, options_.ackTimeout + std::chrono::milliseconds(static_cast<long long>(expected * 2000)),
                    false);
  if (!r) return tl::unexpected(r.error());
  for (int i = 0; i < kSmoothieAxes; ++i)
    if (moving[i]) position_[i] = rounded[i];
  return true;
}

Status SmoothieDriver::setCurrents(const AxisArray& currents) {
  line_.clear();
  appendCurrents(currents);
  line_ += " M400\r\n";
  if (auto r = transact(line_, options_.ackTimeout, false); !r) return tl::unexpected(r.error());
  return {};
}

Status SmoothieDriver::home(std::string_view axes, const AxisArray& currents) {
  line_.clear();
  appendCurrents(currents);
  line_ += " G28.2";
  std::string sorted(axes);
  std::sort(sorted.begin(), sorted.end());
  for (char c : sorted) {
    line_ += ' ';
    line_ += c;
  }
  line_ += " M400\r\n";
  if (auto r = transact(line_, options_.homeTimeout, true); !r) return tl::unexpected(r.error());
  for (char c : sorted) {
    const char* at = c ? std::strchr(kSmoothieAxisNames, c) : nullptr;
    if (at) position_[at - kSmoothieAxisNames] = kSmoothieHomed[at - kSmoothieAxisNames];
  }
  return {};
}

Result<AxisArray> SmoothieDriver::updatePosition() {
  auto r = command("M114.2");
  if (!r) return tl::unexpected(r.error());
  std::string_view body(*r);
  auto mcs = body.find("MCS:");
  AxisArray pos{};
  std::array<bool, kSmoothieAxes> seen{};
  if (mcs != std::string_view::npos) {
    std::string_view rest = body.substr(mcs + 4);
    rest = rest.substr(0, rest.find('\r'));
    while (!rest.empty()) {
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      auto end = rest.find(' ');
      std::string_view tok = rest.substr(0, end);
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
      const char* at = tok.size() > 2 && tok[1] == ':' ? std::strchr(kSmoothieAxisNames, tok[0]) : nullptr;
      if (!at || !*at) continue;
      double v = 0;
      auto [ptr, ec] = std::from_chars(tok.data() + 2, tok.data() + tok.size(), v);
      if (ec != std::errc() || ptr != tok.data() + tok.size() || !std::isfinite(v)) continue;
      pos[at - kSmoothieAxisNames] = v;
      seen[at - kSmoothieAxisNames] = true;
    }
  }
  if (!std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }))
    return fail(ErrorCode::kCommunication, "unreadable position reply to M114.2: " + escaped(body),
                {{"command", "M114.2"}, {"reply", escaped(body)}});
  position_ = pos;
  return pos;
}

Result<std::string> SmoothieDriver::readInstrument(Mount mount, bool model) {
  char m = mount == Mount::kLeft ? 'L' : 'R';
  std::string codes = std::string(model ? "M371 " : "M369 ") + m;
  auto r = command(codes);
  if (!r) return tl::unexpected(r.error());
  std::string_view body(*r);
  std::string prefix = std::string(1, m) + ":";
  auto at = body.find(prefix);
  if (at == std::string_view::npos)
    return fail(ErrorCode::kCommunication, "unreadable reply to " + codes + ": " + escaped(body),
                {{"command", codes}, {"reply", escaped(body)}});
  std::string_view hex = body.substr(at + 2);
  hex = hex.substr(0, hex.find_first_of("\r\n "));
  std::string text = decodeInstrumentHex(hex);
  if (text.empty() && !hex.empty())
    return fail(ErrorCode::kCommunication, "reply to " + codes + " is not hex-encoded text: " + escaped(body),
                {{"command", codes}, {"reply", escaped(body)}});
  return text;
}

Status SmoothieDriver::waitForIdle() {
  if (auto r = transact("M400\r\n", options_.ackTimeout, false); !r) return tl::unexpected(r.error());
  return {};
}

Status SmoothieDriver::reset() {
  if (auto r = command("M999"); !r) return tl::unexpected(r.error());
  return {};
}

}  // namespace runrec::hardware
