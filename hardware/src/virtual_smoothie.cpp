// VirtualSmoothie: the board emulation (G-code parser, axes, replies, timing, faults) and
// PtySmoothie, which serves it on a pseudo-terminal.
#include "runrec/hardware/virtual_smoothie.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

namespace runrec::hardware {
namespace {

constexpr std::array<double, VirtualSmoothie::kAxes> kHomed{218, 19, 19, 418, 353, 218};
constexpr double kLimitSlack = 0.5;  // mm past the homed position before the switch trips

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

constexpr char kAxisNames[] = "ABCXYZ";

bool parseNumber(std::string_view text, double& out) {
  if (text.empty()) return false;
  const char* first = text.data();
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && std::isfinite(out);
}

// Splits "M907 A0.1 B0.3 G4 P0.005 G0 X1" into codes with their arguments.
struct CodeCursor {
  std::string_view rest;
  // Next code ("G0") and its argument text ("X1 Y2"); false at the end.
  bool next(std::string_view& code, std::string_view& args) {
    auto skip = [&] {
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    };
    skip();
    if (rest.empty()) return false;
    auto end = rest.find(' ');
    code = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    skip();
    std::size_t argEnd = 0;
    std::string_view scan = rest;
    while (!scan.empty()) {
      auto tokEnd = scan.find(' ');
      std::string_view tok = scan.substr(0, tokEnd);
      if (tok.size() >= 2 && (tok[0] == 'G' || tok[0] == 'M') && (tok[1] >= '0' && tok[1] <= '9')) break;
      std::size_t used = tokEnd == std::string_view::npos ? scan.size() : tokEnd;
      argEnd = static_cast<std::size_t>(scan.data() - rest.data()) + used;
      scan.remove_prefix(used);
      while (!scan.empty() && scan.front() == ' ') scan.remove_prefix(1);
    }
    args = rest.substr(0, argEnd);
    rest.remove_prefix(argEnd);
    return true;
  }
};

// Calls f(letter, value) for each "X1.5"-style argument; false on a malformed one.
template <class F>
bool forEachArg(std::string_view args, F&& f) {
  while (!args.empty()) {
    while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
    if (args.empty()) break;
    auto end = args.find(' ');
    std::string_view tok = args.substr(0, end);
    args.remove_prefix(end == std::string_view::npos ? args.size() : end);
    double v = 0;
    if (tok.size() == 1) {
      if (!f(tok[0], std::nullopt)) return false;
      continue;
    }
    if (!parseNumber(tok.substr(1), v)) return false;
    if (!f(tok[0], std::optional<double>(v))) return false;
  }
  return true;
}

void appendFixed(std::string& out, double v) {
  char buf[400];  // "%.3f" of the largest double is 313 characters
  int n = std::snprintf(buf, sizeof buf, "%.3f", v);
  if (n > 0) out.append(buf, std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

bool isMotionLine(std::string_view line) {
  CodeCursor cur{line};
  std::string_view code, args;
  while (cur.next(code, args)) {
    if (code == "G28.2") return true;
    if (code == "G0" || code == "G1")
      for (char c : args)
        if (axisIndex(c) >= 0) return true;
  }
  return false;
}

char firstMovingAxis(std::string_view line) {
  CodeCursor cur{line};
  std::string_view code, args;
  while (cur.next(code, args))
    if (code == "G0" || code == "G1" || code == "G28.2")
      for (char c : args)
        if (axisIndex(c) >= 0) return c;
  return 'X';
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

bool VirtualSmoothie::applyMove(std::string_view args, std::string& /*data*/, std::string& err) {
  std::array<double, kAxes> target = pos_;
  bool ok = forEachArg(args, [&](char letter, std::optional<double> v) {
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
    if (target[i] > kHomed[i] + kLimitSlack) {
      alarm_ = true;
      err = std::string("ALARM: Hard limit +") + kAxisNames[i];
      return false;
    }
  }
  simulatedSeconds_ += moveTime(pos_, target);
  pos_ = target;
  return true;
}

void VirtualSmoothie::executeLine(std::string_view line, std::string& out) {
  ++lines_;
  if (silent_ || disconnected_) return;
  const SmoothieFault* fault = nullptr;
  if (isMotionLine(line)) fault = faultFor(++moves_);
  if (fault) {
    switch (fault->kind) {
      case SmoothieFault::Kind::kSilent:
        silent_ = true;
        return;
      case SmoothieFault::Kind::kError:
        out += "error:Injected fault on move " + std::to_string(moves_) + "\r\nok\r\nok\r\n";
        return;
      case SmoothieFault::Kind::kAlarm:
        alarm_ = true;
        out += std::string("ALARM: Hard limit +") + firstMovingAxis(line) + "\r\nok\r\nok\r\n";
        return;
      default: break;
    }
  }
  if (alarm_ && line.find("M999") == std::string_view::npos) {
    out += "error:Alarm lock\r\nok\r\nok\r\n";
    return;
  }
  double secondsBefore = simulatedSeconds_;
  std::string data, err;
  CodeCursor cur{line};
  std::string_view code, args;
  while (err.empty() && cur.next(code, args)) {
    if (code == "G0" || code == "G1") {
      applyMove(args, data, err);
    } else if (code == "M400" || code == "M18" || code == "M17" || code == "M52" || code == "M53" ||
               code.rfind("M365", 0) == 0) {
      // wait / motors off / microstepping / max travel: nothing to keep
    } else if (code == "M907" || code == "M203.1" || code == "M204" || code == "M92") {
      auto& table = code == "M907" ? current_ : code == "M203.1" ? maxSpeed_ : code == "M204" ? accel_ : steps_;
      bool ok = forEachArg(args, [&](char letter, std::optional<double> v) {
        if (!v) return false;
        if (letter == 'S' && code == "M204") return true;
        int i = axisIndex(letter);
        if (i < 0 || *v < 0) return false;
        table[i] = *v;
        return true;
      });
      if (!ok) err = "error:Bad " + std::string(code) + " arguments";
    } else if (code == "G4") {
      bool ok = forEachArg(args, [&](char letter, std::optional<double> v) {
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
      bool ok = forEachArg(args, [&](char letter, std::optional<double> v) {
        int i = axisIndex(letter);
        if (i < 0 || v) return false;
        target[i] = kHomed[i];
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
        data += kAxisNames[i];
        data += homed_[i] ? ":1" : ":0";
      }
      data += "\r\n";
    } else if (code == "M114.2") {
      data += "ok MCS:";
      for (int i = 0; i < kAxes; ++i) {
        data += ' ';
        data += kAxisNames[i];
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
  out += "ok\r\nok\r\n";
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
