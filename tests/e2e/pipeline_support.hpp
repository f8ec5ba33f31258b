// End-to-end helpers: run a protocol through a real engine (in-process, inproc://) or
// the runrec binary, and read back what the log holds.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "runrec/runner/runner.hpp"

namespace runrec::test {

struct PipelineRun {
  runner::RunResult result;
  nlohmann::json detail;  // recorder::runDetail of the run, with state
};

// Runs `protocolJson` through runner -> inproc bus -> engine (SimRobot) -> `db`.
PipelineRun runInProcess(const nlohmann::json& protocolJson, const std::filesystem::path& db, int hwm = 16);

struct Proc {
  int exitCode;
  std::string out, err;
};
// Runs the runrec binary with arguments (shell-quoted here), capturing stdout/stderr.
Proc runrec(const std::string& args);
std::string runrecPath();

}  // namespace runrec::test
