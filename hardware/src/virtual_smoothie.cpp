// VirtualSmoothie: the board emulation (G-code parser, axes, replies, timing, faults) and
// PtySmoothie, which serves it on a pseudo-terminal.
#include "runrec/hardware/virtual_smoothie.hpp"
#include "runrec/hardware/smoothie.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

namespace runrec::hardware {
namespace {

constexpr double kLimitSlack = 0.5;  // mm past the homed position before the switch trips
constexpr std::string_view kAckText = "ok\r\nok\r\n";  // after every line's reply

int axisIndex(char c) {
  switch (c) {
    case 'A': return VirtualSmoothie::kA;
    case 'B': return VirtualSmoothie::kB;
    case 'C': return VirtualSmoothie::kC;
    case 'X': return VirtualSmoothie::kX;
    case 'Y': return VirtualSmoothie::kY;
    case 'Z': return VirtualSmoothie::kZ;
    default: return -1;
  }
}
// The board's axes are the driver's, in the same order (kSmoothieAxisNames, kSmoothieHomed).
static_assert(VirtualSmoothie::kAxes == kSmoothieAxes);

// Plain decimals ("-3.525", "218", "0.005"): what every driver line carries. With at most
// 15 digits the digits are an exact integer m and, with k <= 22 decimals, 10^k is exact
// too, so m / 10^k is one correctly rounded division: the same double std::from_chars
// returns (Clinger's fast path). Reads [-]digits[.digits] from p up to a space or `last`;
// on success moves p there. Anything else ("1e2", ".5", "5.", 16+ digits) returns false,
// leaves p alone and is for std::from_chars.
bool scanPlainDecimal(const char*& p, const char* last, double& out) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char* q = p;
  bool negative = q != last && *q == '-';
  if (negative) ++q;
  std::uint64_t m = 0;
  int digits = 0, decimals = 0;
  for (; q != last && *q >= '0' && *q <= '9'; ++q, ++digits) m = m * 10 + static_cast<unsigned>(*q - '0');
  if (digits == 0) return false;
  if (q != last && *q == '.') {
    const char* frac = ++q;
    for (; q != last && *q >= '0' && *q <= '9'; ++q, ++digits) m = m * 10 + static_cast<unsigned>(*q - '0');
    decimals = static_cast<int>(q - frac);
    if (decimals == 0) return false;
  }
  if ((q != last && *q != ' ') || digits > 15) return false;
  double v = static_cast<double>(m) / kPow10[decimals];
  out = negative ? -v : v;
  p = q;
  return true;
}

bool parseNumber(std::string_view text, double& out) {
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = first + text.size();
  if (*first == '+') ++first;
  if (const char* p = first; scanPlainDecimal(p, last, out) && p == last) return true;
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last && std::isfinite(out);
}

// A code starts a new command in a line: G or M and a digit ("G0", "M907", "G28.2").
bool isCodeStart(const char* p, const char* last) {
  return last - p >= 2 && (p[0] == 'G' || p[0] == 'M') && p[1] >= '0' && p[1] <= '9';
}

void appendFixed(std::string& out, double v) {
  char buf[400];  // "%.3f" of the largest double is 313 characters
  int n = std::snprintf(buf, sizeof buf, "%.3f", v);
  if (n > 0) out.append(buf, std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

bool namesAnAxis(std::string_view args) {
  for (char c : args)
    if (axisIndex(c) >= 0) return true;
  return false;
}

double trapezoid(double d, double v, double a) {
  if (d <= 0 || v <= 0) return 0;
  if (a <= 0) return d / v;
  if (d < v * v / a) return 2 * std::sqrt(d / a);
  return d / v + v / a;
}

}  // namespace

Result<SmoothieFault> parseSmoothieFault(std::string_view text) {
  auto at = text.find('@');
  if (at == std::string_view::npos)
    return fail(ErrorCode::kInvalidArgument, "fault \"" + std::string(text) + "\": expected KIND@N, e.g. alarm@3");
  std::string_view kind = text.substr(0, at);
  double n = 0;
  if (!parseNumber(text.substr(at + 1), n) || n < 1 || n != std::floor(n))
    return fail(ErrorCode::kInvalidArgument, "fault \"" + std::string(text) + "\": N must be a whole number >= 1");
  SmoothieFault f;
  f.nthMove = static_cast<long>(n);
  if (kind == "error") f.kind = SmoothieFault::Kind::kError;
  else if (kind == "alarm") f.kind = SmoothieFault::Kind::kAlarm;
  else if (kind == "drop") f.kind = SmoothieFault::Kind::kDropReply;
  else if (kind == "garbage") f.kind = SmoothieFault::Kind::kGarbage;
  else if (kind == "silent") f.kind = SmoothieFault::Kind::kSilent;
  else if (kind == "disconnect") f.kind = SmoothieFault::Kind::kDisconnect;
  else
    return fail(ErrorCode::kInvalidArgument,
                "fault \"" + std::string(text) + "\": kind must be error, alarm, drop, garbage, silent or disconnect");
  return f;
}

VirtualSmoothie::VirtualSmoothie(VirtualSmoothieOptions options) : options_(std::move(options)) {}

const SmoothieFault* VirtualSmoothie::faultFor(long move) const {
  for (const auto& f : options_.faults)
    if (f.nthMove == move) return &f;
  return nullptr;
}

void VirtualSmoothie::receive(std::string_view bytes, std::string& out) {
  // Fast path: whole lines with nothing buffered (the loopback writes one line at a time).
  if (!partial_.empty()) {
    partial_.append(bytes);
    bytes = partial_;
  }
  std::size_t start = 0;
  while (true) {
    auto nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) break;
    std::string_view line = bytes.substr(start, nl - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == '\r' || line.front() == ' ')) line.remove_prefix(1);
    if (!line.empty()) executeLine(line, out);
    start = nl + 1;
  }
  if (bytes.data() == partial_.data()) {
    partial_.erase(0, start);
  } else if (start < bytes.size()) {
    partial_.assign(bytes.substr(start));
  }
}

double VirtualSmoothie::moveTime(const std::array<double, kAxes>& from, const std::array<double, kAxes>& to) const {
  double t = 0;
  for (int i = 0; i < kAxes; ++i) {
    double d = std::fabs(to[i] - from[i]);
    double v = std::min(feed_ / 60.0, maxSpeed_[i]);
    t = std::max(t, trapezoid(d, v, accel_[i]));
  }
  return t;
}

template <class F>
bool VirtualSmoothie::forEachArg(const Code& code, F&& f) const {
  for (std::uint32_t i = code.firstArg, n = code.firstArg + code.argCount; i < n; ++i) {
    const Arg& arg = args_[i];
    if (!arg.valid) return false;
    if (!(arg.bare ? f(arg.letter, std::nullopt) : f(arg.letter, std::optional<double>(arg.value)))) return false;
  }
  return true;
}

bool VirtualSmoothie::applyMove(const Code& code, std::string& err) {
  std::array<double, kAxes> target = pos_;
  bool ok = forEachArg(code, [&](char letter, std::optional<double> v) {
    if (!v) return false;
    if (letter == 'F') {
      if (*v <= 0) return false;
      feed_ = *v;
      return true;
    }
    int i = axisIndex(letter);
    if (i < 0) return false;
    target[i] = relative_ ? pos_[i] + *v : *v;
    return true;
  });
  if (!ok) {
    err = "error:Bad G0 arguments";
    return false;
  }
  for (int i = 0; i < kAxes; ++i) {
    if (target[i] > kSmoothieHomed[i] + kLimitSlack) {
      alarm_ = true;
      err = std::string("ALARM: Hard limit +") + kSmoothieAxisNames[i];
      return false;
    }
  }
  if (target != pos_) simulatedSeconds_ += moveTime(pos_, target);  // a bare "G0 F..." takes no time
  pos_ = target;
  return true;
}

void VirtualSmoothie::splitCodes(std::string_view line) {
  // One pass over the line: the first token is a code, every later code token starts the
  // next one, and a code's arguments run from its first argument token to its last. Each
  // argument's number is read in the same pass.
  codes_.clear();
  args_.clear();
  const char* p = line.data();
  const char* end = p + line.size();
  while (p != end) {
    if (*p == ' ') {
      ++p;
      continue;
    }
    const char* tok = p;
    if (codes_.empty() || isCodeStart(p, end)) {
      while (p != end && *p != ' ') ++p;
      codes_.push_back({std::string_view(tok, static_cast<std::size_t>(p - tok)), {},
                        static_cast<std::uint32_t>(args_.size()), 0});
      continue;
    }
    Arg arg;
    arg.letter = *p++;
    if (!scanPlainDecimal(p, end, arg.value)) {
      while (p != end && *p != ' ') ++p;
      arg.bare = p - tok == 1;
      arg.valid = arg.bare || parseNumber(std::string_view(tok + 1, static_cast<std::size_t>(p - tok - 1)), arg.value);
    }
    args_.push_back(arg);
    Code& code = codes_.back();
    const char* argsBegin = code.argCount ? code.args.data() : tok;
    code.args = std::string_view(argsBegin, static_cast<std::size_t>(p - argsBegin));
    ++code.argCount;
  }
}

void VirtualSmoothie::executeLine(std::string_view line, std::string& out) {
  ++lines_;
  if (silent_ || disconnected_) return;
  splitCodes(line);
  // A motion line: a G28.2, or a G0/G1 naming an axis. Faults count them.
  bool motion = false;
  for (const Code& c : codes_) {
    if (c.name == "G28.2" || ((c.name == "G0" || c.name == "G1") && namesAnAxis(c.args))) {
      motion = true;
      break;
    }
  }
  const SmoothieFault* fault = nullptr;
  if (motion) fault = faultFor(++moves_);
  if (fault) {
    switch (fault->kind) {
      case SmoothieFault::Kind::kSilent:
        silent_ = true;
        return;
      case SmoothieFault::Kind::kError:
        out += "error:Injected fault on move " + std::to_string(moves_) + "\r\nok\r\nok\r\n";
        return;
      case SmoothieFault::Kind::kAlarm: {
        alarm_ = true;
        // The first axis letter of the first G0/G1/G28.2 that names one; X if none does.
        char axis = 'X';
        for (const Code& c : codes_) {
          if (c.name != "G0" && c.name != "G1" && c.name != "G28.2") continue;
          auto at = std::find_if(c.args.begin(), c.args.end(), [](char ch) { return axisIndex(ch) >= 0; });
          if (at != c.args.end()) {
            axis = *at;
            break;
          }
        }
        out += "ALARM: Hard limit +";
        out += axis;
        out += "\r\nok\r\nok\r\n";
        return;
      }
      default: break;
    }
  }
  if (alarm_ && line.find("M999") == std::string_view::npos) {
    out += "error:Alarm lock\r\nok\r\nok\r\n";
    return;
  }
  double secondsBefore = simulatedSeconds_;
  std::string data, err;
  for (std::size_t n = 0; n < codes_.size() && err.empty(); ++n) {
    const Code& c = codes_[n];
    const std::string_view code = c.name, args = c.args;
    // Most frequent first (moves, currents, dwell, wait); the conditions are disjoint.
    if (code == "G0" || code == "G1") {
      applyMove(c, err);
    } else if (code == "M907" || code == "M203.1" || code == "M204" || code == "M92") {
      const bool accel = code == "M204";
      auto& table = code == "M907" ? current_ : code == "M203.1" ? maxSpeed_ : accel ? accel_ : steps_;
      bool ok = forEachArg(c, [&](char letter, std::optional<double> v) {
        if (!v) return false;
        if (letter == 'S' && accel) return true;
        int i = axisIndex(letter);
        if (i < 0 || *v < 0) return false;
        table[i] = *v;
        return true;
      });
      if (!ok) err = "error:Bad " + std::string(code) + " arguments";
    } else if (code == "M400" || code == "M18" || code == "M17" || code == "M52" || code == "M53" ||
               code.rfind("M365", 0) == 0) {
      // wait / motors off / microstepping / max travel: nothing to keep
    } else if (code == "G4") {
      bool ok = forEachArg(c, [&](char letter, std::optional<double> v) {
        if (!v || *v < 0) return false;
        if (letter == 'P') simulatedSeconds_ += *v / 1000.0;
        else if (letter == 'S') simulatedSeconds_ += *v;
        else return false;
        return true;
      });
      if (!ok) err = "error:Bad G4 arguments";
    } else if (code == "G90") {
      relative_ = false;
    } else if (code == "G91") {
      relative_ = true;
    } else if (code == "G28.2") {
      std::array<double, kAxes> target = pos_;
      bool any = false;
      bool ok = forEachArg(c, [&](char letter, std::optional<double> v) {
        int i = axisIndex(letter);
        if (i < 0 || v) return false;
        target[i] = kSmoothieHomed[i];
        homed_[i] = true;
        any = true;
        return true;
      });
      if (!ok || !any) {
        err = "error:Bad G28.2 arguments";
      } else {
        double saved = feed_;
        feed_ = 24000;  // the homing speed is the board's own
        simulatedSeconds_ += moveTime(pos_, target);
        feed_ = saved;
        pos_ = target;
      }
    } else if (code == "G28.6") {
      data += "ok Homing status:";
      for (int i = 0; i < kAxes; ++i) {
        data += ' ';
        data += kSmoothieAxisNames[i];
        data += homed_[i] ? ":1" : ":0";
      }
      data += "\r\n";
    } else if (code == "M114.2") {
      data += "ok MCS:";
      for (int i = 0; i < kAxes; ++i) {
        data += ' ';
        data += kSmoothieAxisNames[i];
        data += ':';
        appendFixed(data, pos_[i]);
      }
      data += "\r\n";
    } else if (code == "M369" || code == "M371") {
      char mount = args.empty() ? '?' : args.front();
      if ((mount != 'L' && mount != 'R') || args.size() != 1) {
        err = "error:Bad " + std::string(code) + " arguments";
      } else {
        const std::string& text = code == "M371" ? (mount == 'L' ? options_.leftModel : options_.rightModel)
                                                 : (mount == 'L' ? options_.leftId : options_.rightId);
        static const char* hex = "0123456789abcdef";
        data += mount;
        data += ':';
        for (unsigned char c : text) {
          data += hex[c >> 4];
          data += hex[c & 15];
        }
        data += "\r\n";
      }
    } else if (code == "M999") {
      alarm_ = false;
      relative_ = false;
    } else {
      err = "error:Unsupported command " + std::string(code);
    }
  }
  if (options_.timeScale > 0) {
    double wait = (simulatedSeconds_ - secondsBefore) * options_.timeScale;
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
  if (fault && fault->kind == SmoothieFault::Kind::kDropReply) return;
  if (fault && fault->kind == SmoothieFault::Kind::kDisconnect) {
    out += "ok\r\n";  // half the acknowledgement, then nothing: the port is gone
    disconnected_ = true;
    return;
  }
  if (fault && fault->kind == SmoothieFault::Kind::kGarbage) out += "\x01\xfe\x13#Q\x7f\r\n";
  if (!err.empty()) {
    out += err;
    out += "\r\n";
  }
  out += data;
  out.append(kAckText.data(), kAckText.size());
}

// ---- PtySmoothie ----

Result<std::unique_ptr<PtySmoothie>> PtySmoothie::open(VirtualSmoothie& board) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) return fail(ErrorCode::kCommunication, std::string("posix_openpt: ") + std::strerror(errno));
  char name[128];
  if (::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname_r(master, name, sizeof name) != 0) {
    std::string msg = std::string("pty: ") + std::strerror(errno);
    ::close(master);
    return fail(ErrorCode::kCommunication, msg);
  }
  // Keep the slave open ourselves: the master then never reads EIO between clients, and
  // the line discipline is raw before the first client opens it.
  int slave = ::open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) {
    std::string msg = std::string(name) + ": " + std::strerror(errno);
    ::close(master);
    return fail(ErrorCode::kCommunication, msg);
  }
  termios tio{};
  ::tcgetattr(slave, &tio);
  ::cfmakeraw(&tio);
  ::cfsetispeed(&tio, B115200);
  ::cfsetospeed(&tio, B115200);
  ::tcsetattr(slave, TCSANOW, &tio);
  ::tcgetattr(master, &tio);
  ::cfmakeraw(&tio);
  ::tcsetattr(master, TCSANOW, &tio);
  return std::unique_ptr<PtySmoothie>(new PtySmoothie(board, master, slave, name));
}

PtySmoothie::~PtySmoothie() {
  if (slave_ >= 0) ::close(slave_);
  if (master_ >= 0) ::close(master_);
}

Status PtySmoothie::serve(const std::atomic<bool>& stop) {
  char buf[4096];
  std::string out;
  while (!stop.load()) {
    pollfd p{master_, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kCommunication, std::string("poll: ") + std::strerror(errno));
    }
    if (r == 0 || !(p.revents & POLLIN)) continue;
    ssize_t n = ::read(master_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EIO) continue;
      return fail(ErrorCode::kCommunication, path_ + ": read: " + std::strerror(errno));
    }
    out.clear();
    board_.receive(std::string_view(buf, static_cast<std::size_t>(n)), out);
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t w = ::write(master_, out.data() + done, out.size() - done);
      if (w < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return fail(ErrorCode::kCommunication, path_ + ": write: " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
    if (board_.disconnected()) {  // the board went away: hang up the terminal
      ::close(master_);
      master_ = -1;
      return {};
    }
  }
  return {};
}

}  // namespace runrec::hardware
