// The benchmark suite's plumbing: `runrec bench --suite --quick` writes a report with every
// section and a results file with every measurement. Figures are never checked (timing).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "e2e/pipeline_support.hpp"

namespace fs = std::filesystem;

TEST_CASE("bench --suite --quick writes a report with every section and the results as JSON") {
  fs::path dir = fs::temp_directory_path() / ("runrec-bench-smoke-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::string cmd = runrec::test::runrecPath() + " bench --suite " + dir.string() + " --quick -r 1 2>" + (dir.string() + ".err");
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(dir / "report.md");
  std::stringstream report;
  report << in.rdbuf();
  for (const char* section : {"## 1. Throughput", "## 2. Limits", "## 3. Latency", "## 4. Backpressure", "## 5. Jank",
                              "## 6. Scale"})
    CHECK_MESSAGE(report.str().find(section) != std::string::npos, section);
  std::ifstream rj(dir / "results.json");
  auto results = nlohmann::json::parse(rj, nullptr, false);
  REQUIRE(results.is_object());
  for (const char* key : {"throughput", "limits", "latency", "backpressure", "jank", "scale"})
    CHECK_MESSAGE(results.contains(key), key);
  // Every bounded run kept within its window; the unbounded model did not.
  for (int hwm : {1, 4, 16, 256})
    CHECK(results["backpressure"][std::to_string(hwm)]["maxInFlight"]["max"].get<double>() <= hwm);
  CHECK(results["backpressure"]["1000000"]["maxInFlight"]["max"].get<double>() > 16);
  CHECK(results["limits"]["sqliteInsertsPerSecond"]["median"].get<double>() > 0);
  fs::remove_all(dir);
  fs::remove(dir.string() + ".err");
}
