// Shared pieces of the runrec subcommands.
#include "cli_common.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

namespace runrec::cli {

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
