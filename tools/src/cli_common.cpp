// Shared pieces of the runrec subcommands.
#include "cli_common.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <unistd.h>

namespace runrec::cli {

StopOnSignal::StopOnSignal(std::string what, std::function<void()> stop)
    : what_(std::move(what)), stop_(std::move(stop)) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, &old_);
  thread_ = std::thread([this] {
    int count = 0;
    timespec tick{0, 100 * 1000 * 1000};
    while (!done_.load()) {
      if (sigtimedwait(&set_, nullptr, &tick) < 0) continue;
      if (count++ == 0) {
        std::cerr << "\nrunrec: stopping the " << what_
                  << " after the command in progress; cleanup will drop any tip and home (Ctrl-C again does not "
                     "skip it)\n";
        stop_();
      } else {
        std::cerr << "\nrunrec: already stopping; waiting for the command in progress and cleanup\n";
      }
    }
  });
}

StopOnSignal::~StopOnSignal() {
  done_.store(true);
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

std::string whoAmI(const std::string& what) {
  const char* user = std::getenv("USER");
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  return what + " (" + (user ? user : "?") + "@" + host + ", pid " + std::to_string(::getpid()) + ")";
}

engine::Result<std::unique_ptr<engine::EventLog>> openForReading(const std::string& db) {
  return engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
}

int exitFor(const engine::Error& e) {
  switch (e.code) {
    case engine::ErrorCode::kNotFound:
    case engine::ErrorCode::kAmbiguous:
    case engine::ErrorCode::kInvalid:
    case engine::ErrorCode::kCorrupt:
    case engine::ErrorCode::kSchema: return kBadInput;
    default: return kSystemError;
  }
}

int error(int code, const std::string& message) {
  std::cerr << "runrec: " << message << "\n";
  return code;
}

void printJson(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::string formatDuration(const nlohmann::json& seconds) {
  if (!seconds.is_number()) return "-";
  double s = seconds.get<double>();
  char buf[32];
  if (s < 1) std::snprintf(buf, sizeof buf, "%.1f ms", s * 1000);
  else if (s < 120) std::snprintf(buf, sizeof buf, "%.2f s", s);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return buf;
}

std::string localControlEndpoint(const std::string& db) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(std::filesystem::absolute(db), ec);
  std::string key = ec ? db : abs.string();
  // FNV-1a: a short stable name, well within the 107-byte limit of a Unix socket path.
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  char buf[64];
  std::snprintf(buf, sizeof buf, "ipc:///tmp/runrec-%016llx.control", static_cast<unsigned long long>(h));
  return buf;
}

std::string formatRate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : "%.1f", v);
  return buf;
}

}  // namespace runrec::cli
