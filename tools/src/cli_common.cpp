// Shared pieces of the runrec subcommands.
#include "cli_common.hpp"

#include <cmath>
#include <cstdio>
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

std::string formatRate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : "%.1f", v);
  return buf;
}

}  // namespace runrec::cli
