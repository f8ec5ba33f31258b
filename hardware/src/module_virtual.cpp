// VirtualModule: the four modules' firmware dialects, temperature ramps, lid, latch, magnet
// and shaker state, fault injection; its in-process loopback port and its pty server.
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "runrec/hardware/modules.hpp"
#include "runrec/hardware/virtual_module.hpp"

namespace runrec::hardware {

Result<ModuleFault> parseModuleFault(std::string_view text) {
  auto at = text.find('@');
  if (at == std::string_view::npos)
    return fail(ErrorCode::kInvalidArgument, "module fault \"" + std::string(text) + "\": expected KIND@N, e.g. error@3");
  std::string_view kind = text.substr(0, at), num = text.substr(at + 1);
  long n = 0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  if (ec != std::errc() || ptr != num.data() + num.size() || n < 1)
    return fail(ErrorCode::kInvalidArgument, "module fault \"" + std::string(text) + "\": N must be a whole number >= 1");
  ModuleFault f;
  f.nthCommand = n;
  if (kind == "error") f.kind = ModuleFault::Kind::kError;
  else if (kind == "drop") f.kind = ModuleFault::Kind::kDrop;
  else if (kind == "garbage") f.kind = ModuleFault::Kind::kGarbage;
  else if (kind == "silent") f.kind = ModuleFault::Kind::kSilent;
  else
    return fail(ErrorCode::kInvalidArgument,
                "module fault \"" + std::string(text) + "\": kind must be error, drop, garbage or silent");
  return f;
}

VirtualModule::VirtualModule(std::string model, ModuleType type, VirtualModuleOptions options)
    : model_(std::move(model)), type_(type), options_(std::move(options)) {
  current_ = lidCurrent_ = options_.ambientCelsius;
  last_ = std::chrono::steady_clock::now();
}

double VirtualModule::elapsedSeconds() {
  auto now = std::chrono::steady_clock::now();
  double real = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  return real;
}

namespace {
double approach(double from, double to, double step) {
  if (std::fabs(to - from) <= step) return to;
  return from + (to > from ? step : -step);
}
}  // namespace

// Moves temperatures, the hold timer and the shaker towards their targets for the time
// that passed (simulated seconds = real seconds / timeScale; timeScale 0: all the way).
void VirtualModule::advance() {
  double real = elapsedSeconds();
  bool instant = options_.timeScale <= 0;
  double sim = instant ? 1e12 : real / options_.timeScale;
  double blockGoal = target_.value_or(options_.ambientCelsius);
  double before = current_;
  current_ = approach(current_, blockGoal, options_.degreesPerSecond * sim);
  if (holdSet_ && target_ && std::fabs(current_ - *target_) < 1e-9) {
    // The hold counts from reaching the target.
    double reachedAfter = options_.degreesPerSecond > 0 ? std::fabs(*target_ - before) / options_.degreesPerSecond : 0;
    double holding = instant ? holdSeconds_ : std::max(0.0, sim - reachedAfter);
    holdSeconds_ = std::max(0.0, holdSeconds_ - holding);
  }
  double lidGoal = lidTarget_.value_or(options_.ambientCelsius);
  lidCurrent_ = approach(lidCurrent_, lidGoal, options_.lidDegreesPerSecond * sim);
  rpmCurrent_ = approach(rpmCurrent_, targetRpm_, options_.rpmPerSecond * sim);
}

double VirtualModule::celsius() {
  advance();
  return current_;
}
double VirtualModule::lidCelsius() {
  advance();
  return lidCurrent_;
}
int VirtualModule::rpm() {
  advance();
  return static_cast<int>(std::lround(rpmCurrent_));
}

void VirtualModule::receive(std::string_view bytes, std::string& out) {
  partial_.append(bytes);
  std::size_t nl;
  while ((nl = partial_.find('\n')) != std::string::npos) {
    std::string line = partial_.substr(0, nl);
    partial_.erase(0, nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    if (line.empty()) continue;  // the \r\n\r\n terminator's second half
    executeLine(line, out);
  }
}

void VirtualModule::executeLine(std::string_view line, std::string& out) {
  ++commands_;
  received_.emplace_back(line);
  if (silent_) return;
  const ModuleFault* fault = nullptr;
  for (const auto& f : options_.faults)
    if (f.nthCommand == commands_) fault = &f;
  if (fault && fault->kind == ModuleFault::Kind::kSilent) {
    silent_ = true;
    return;
  }
  bool hs = type_ == ModuleType::kHeaterShaker;
  auto sp = line.find(' ');
  std::string_view code = line.substr(0, sp);
  std::string_view args = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  std::string err;
  std::string data;
  if (fault && fault->kind == ModuleFault::Kind::kError)
    err = "injected fault on command " + std::to_string(commands_);
  else
    data = execute(code, args, err);
  if (fault && fault->kind == ModuleFault::Kind::kDrop) return;
  if (fault && fault->kind == ModuleFault::Kind::kGarbage) out += "\x02\xfb\x11%Z\x7f";
  if (hs) {
    // `<code> <data> OK\n`; errors as `ERR<n>:<message> OK\n`.
    if (!err.empty()) {
      out += "ERR001:" + err + " OK\n";
      return;
    }
    out += std::string(code);
    if (!data.empty()) out += " " + data;
    out += " OK\n";
    return;
  }
  if (!err.empty()) out += "error:" + err + "\r\n";
  if (!data.empty()) out += data + "\r\n";
  out += "ok\r\nok\r\n";
}

namespace {
std::optional<double> argNumber(std::string_view args, char key) {
  std::size_t i = 0;
  while (i < args.size()) {
    while (i < args.size() && args[i] == ' ') ++i;
    std::size_t start = i;
    while (i < args.size() && args[i] != ' ') ++i;
    std::string_view tok = args.substr(start, i - start);
    if (tok.size() >= 2 && tok[0] == key) {
      double v = 0;
      auto [ptr, ec] = std::from_chars(tok.data() + 1, tok.data() + tok.size(), v);
      if (ec == std::errc() && ptr == tok.data() + tok.size() && std::isfinite(v)) return v;
      return std::nullopt;
    }
  }
  return std::nullopt;
}
std::string num(double v) { return formatModuleNumber(v, 2); }
std::string optNum(const std::optional<double>& v) { return v ? num(*v) : std::string("none"); }
}  // namespace

std::string VirtualModule::execute(std::string_view code, std::string_view args, std::string& err) {
  advance();
  auto requireS = [&](const char* what) -> std::optional<double> {
    auto s = argNumber(args, 'S');
    if (!s) err = std::string(what) + ": missing or bad S parameter";
    return s;
  };
  if (code == "M115") return "serial:RR-VIRTUAL model:" + model_ + " version:runrec-virtual";
  switch (type_) {
    case ModuleType::kTemperature:
      if (code == "M104") {
        if (auto s = requireS("M104")) target_ = *s;
        return {};
      }
      if (code == "M105") return "T:" + optNum(target_) + " C:" + num(current_);
      if (code == "M18") {
        target_.reset();
        return {};
      }
      break;
    case ModuleType::kMagnetic:
      if (code == "G28.2") {
        magnet_ = 0;
        magnetHomed_ = true;
        return {};
      }
      if (code == "G0") {
        auto z = argNumber(args, 'Z');
        if (!z) {
          err = "G0: missing or bad Z parameter";
          return {};
        }
        magnet_ = *z;
        return {};
      }
      if (code == "M114.2") return "Z:" + formatModuleNumber(magnet_, 3);
      if (code == "M836") return "height:30.0";
      break;
    case ModuleType::kThermocycler:
      if (code == "M104") {
        if (auto s = requireS("M104")) {
          target_ = *s;
          auto h = argNumber(args, 'H');
          holdSet_ = h.has_value();
          holdSeconds_ = h.value_or(0);
        }
        return {};
      }
      if (code == "M105")
        return "T:" + optNum(target_) + " C:" + num(current_) + " H:" + (holdSet_ ? num(holdSeconds_) : "none");
      if (code == "M140") {
        if (auto s = requireS("M140")) lidTarget_ = *s;
        return {};
      }
      if (code == "M141") return "T:" + optNum(lidTarget_) + " C:" + num(lidCurrent_);
      if (code == "M108") {
        lidTarget_.reset();
        return {};
      }
      if (code == "M14") {
        target_.reset();
        holdSet_ = false;
        return {};
      }
      if (code == "M18") {
        target_.reset();
        lidTarget_.reset();
        holdSet_ = false;
        return {};
      }
      if (code == "M126") {
        lid_ = "open";
        return {};
      }
      if (code == "M127") {
        lid_ = "closed";
        return {};
      }
      if (code == "M119") return "Lid:" + lid_;
      if (code == "M566") return {};  // ramp rate: accepted, not modelled
      break;
    case ModuleType::kHeaterShaker:
      if (code == "M104") {
        if (auto s = requireS("M104")) target_ = *s;
        return {};
      }
      if (code == "M105") return "C:" + num(current_) + " T:" + optNum(target_);
      if (code == "M106") {
        target_.reset();
        return {};
      }
      if (code == "M3") {
        auto s = requireS("M3");
        if (!s) return {};
        if (*s > 0 && latch_ != "closed") {
          err = "cannot shake while the labware latch is open";
          return {};
        }
        targetRpm_ = static_cast<int>(std::lround(*s));
        return {};
      }
      if (code == "M123") return "C:" + std::to_string(static_cast<int>(std::lround(rpmCurrent_))) + " T:" + std::to_string(targetRpm_);
      if (code == "G28") {
        targetRpm_ = 0;
        rpmCurrent_ = 0;  // homing stops the plate at its home position
        return {};
      }
      if (code == "M242") {
        if (targetRpm_ > 0 || rpmCurrent_ > 0) {
          err = "cannot open the labware latch while shaking";
          return {};
        }
        latch_ = "open";
        return {};
      }
      if (code == "M243") {
        latch_ = "closed";
        return {};
      }
      if (code == "M241") return latch_ == "open" ? "STATUS:IDLE_OPEN" : "STATUS:IDLE_CLOSED";
      if (code == "M411") return {};
      break;
  }
  err = "Unsupported command " + std::string(code);
  return {};
}

// ---- in-process and pty connections ----

namespace {
class ModuleLoopbackPort final : public SerialPort {
 public:
  explicit ModuleLoopbackPort(VirtualModule& module) : module_(module) {}
  Status write(std::string_view bytes) override {
    if (closed_) return fail(ErrorCode::kCommunication, "loopback: port is closed");
    module_.receive(bytes, pending_);
    return {};
  }
  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override {
    if (closed_) return fail(ErrorCode::kCommunication, "loopback: port is closed");
    if (offset_ == pending_.size()) {
      if (timeout.count() > 0) std::this_thread::sleep_for(timeout);
      return std::size_t{0};
    }
    std::size_t n = std::min(size, pending_.size() - offset_);
    std::memcpy(buffer, pending_.data() + offset_, n);
    offset_ += n;
    if (offset_ == pending_.size()) {
      pending_.clear();
      offset_ = 0;
    }
    return n;
  }
  void close() override { closed_ = true; }
  std::string describe() const override { return "virtual " + module_.model(); }

 private:
  VirtualModule& module_;
  std::string pending_;
  std::size_t offset_ = 0;
  bool closed_ = false;
};
}  // namespace

std::unique_ptr<SerialPort> makeModuleLoopbackPort(VirtualModule& module) {
  return std::make_unique<ModuleLoopbackPort>(module);
}

Result<std::unique_ptr<PtyModule>> PtyModule::open(VirtualModule& module) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) return fail(ErrorCode::kCommunication, std::string("posix_openpt: ") + std::strerror(errno));
  char name[128];
  if (::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname_r(master, name, sizeof name) != 0) {
    std::string msg = std::string("pty: ") + std::strerror(errno);
    ::close(master);
    return fail(ErrorCode::kCommunication, msg);
  }
  // Keep the slave open ourselves so the master never reads EIO between clients.
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
  return std::unique_ptr<PtyModule>(new PtyModule(module, master, slave, name));
}

PtyModule::~PtyModule() {
  if (slave_ >= 0) ::close(slave_);
  if (master_ >= 0) ::close(master_);
}

Status PtyModule::serve(const std::atomic<bool>& stop) {
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
    module_.receive(std::string_view(buf, static_cast<std::size_t>(n)), out);
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t w = ::write(master_, out.data() + done, out.size() - done);
      if (w < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return fail(ErrorCode::kCommunication, path_ + ": write: " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
  }
  return {};
}

}  // namespace runrec::hardware
