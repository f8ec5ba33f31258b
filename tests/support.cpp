// Helpers shared by the tests.
#include "support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace runrec::test {

std::optional<std::filesystem::path> sharedOpentrons() {
  if (const char* env = std::getenv("RUNREC_SHARED")) {
    std::filesystem::path p = std::filesystem::path(env) / "opentrons";
    if (std::filesystem::is_directory(p)) return p;
  }
  std::filesystem::path p = std::filesystem::path(RUNREC_SOURCE_DIR) / ".." / "shared" / "opentrons";
  if (std::filesystem::is_directory(p)) return std::filesystem::canonical(p);
  return std::nullopt;
}

std::optional<std::filesystem::path> requireShared() {
  auto p = sharedOpentrons();
  if (p) return p;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") {
    FAIL("../shared/opentrons is missing, and CI=true: the reference data is required in CI");
  } else {
    MESSAGE("skipped: ../shared/opentrons is not beside the source tree");
  }
  return std::nullopt;
}

std::filesystem::path tempDir(const std::string& name) {
  static std::mt19937_64 rng{std::random_device{}()};
  auto base = std::filesystem::temp_directory_path() /
              ("runrec-test-" + std::to_string(::getpid()));
  auto dir = base / (name + "-" + std::to_string(rng() % 1000000));
  std::filesystem::create_directories(dir);
  static struct Cleanup {
    std::filesystem::path base;
    ~Cleanup() {
      std::error_code ec;
      if (!base.empty() && !std::getenv("RUNREC_KEEP_TEST_FILES")) std::filesystem::remove_all(base, ec);
    }
  } cleanup{base};
  return dir;
}

std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json readJson(const std::filesystem::path& path) { return nlohmann::json::parse(readText(path)); }

// G-code traces (../shared/opentrons/gcode/*/expected*.txt): the code part of each
// "smoothie: CODE -> gloss" line.
std::vector<std::string> gcodeTraceLines(const std::filesystem::path& file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("smoothie: ", 0) != 0) continue;
    line = line.substr(10);
    line = line.substr(0, line.find(" -> "));
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    out.push_back(line);
  }
  return out;
}

namespace {
// Two G0 lines with the same axes in the same order, every target within 0.01 mm.
bool g0Close(const std::string& a, const std::string& b) {
  if (a.rfind("G0 ", 0) != 0 || b.rfind("G0 ", 0) != 0) return false;
  std::istringstream sa(a.substr(3)), sb(b.substr(3));
  std::string ta, tb;
  while (true) {
    bool ha = static_cast<bool>(sa >> ta), hb = static_cast<bool>(sb >> tb);
    if (ha != hb) return false;
    if (!ha) return true;
    if (ta[0] != tb[0] || ta[0] == 'F') return false;
    if (std::fabs(std::stod(ta.substr(1)) - std::stod(tb.substr(1))) > 0.01 + 1e-9) return false;
  }
}
}  // namespace

std::size_t gcodeLinesMatched(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = (a[i - 1] == b[j - 1] || g0Close(a[i - 1], b[j - 1])) ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace runrec::test
