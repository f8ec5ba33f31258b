// Helpers shared by the tests.
#include "support.hpp"

#include <doctest/doctest.h>

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

}  // namespace runrec::test
