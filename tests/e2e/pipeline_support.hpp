// End-to-end helpers: run a protocol through a real engine (in-process, inproc://) or
// the runrec binary, and read back what the log holds.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runrec/bus/channel.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/runner/runner.hpp"

namespace runrec::test {

// A real engine (SimRobot, one run, logging to `db`) started on a fresh inproc endpoint named
// after `name`, and a runner's client connected to it. The engine and the client are the
// test thread's; the engine may also be asked to stop from another thread.
struct InProcessEngine {
  bus::Context ctx;
  std::unique_ptr<engine::Engine> eng;
  std::unique_ptr<bus::CommandClient> client;

  InProcessEngine(const std::filesystem::path& db, const std::string& name, int hwm = bus::kDefaultHwm);
  // After the run: the client goes, and the engine, its one run served, ends cleanly.
  void finish();
};

struct PipelineRun {
  runner::RunResult result;
  nlohmann::json detail;  // recorder::runDetail of the run, with state
};

// Runs `protocolJson` through runner -> inproc bus -> engine (SimRobot) -> `db`.
PipelineRun runInProcess(const nlohmann::json& protocolJson, const std::filesystem::path& db,
                         int hwm = bus::kDefaultHwm);

struct Proc {
  int exitCode;
  std::string out, err;
};
// Runs the runrec binary with arguments (shell-quoted here), capturing stdout/stderr.
Proc runrec(const std::string& args);
std::string runrecPath();

}  // namespace runrec::test
