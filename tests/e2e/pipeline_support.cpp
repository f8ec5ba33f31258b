// End-to-end helpers.
#include "pipeline_support.hpp"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/recorder/report.hpp"
#include "support.hpp"

namespace runrec::test {

InProcessEngine::InProcessEngine(const std::filesystem::path& db, const std::string& name, int hwm) {
  static int counter = 0;
  engine::EngineOptions eo;
  eo.dbPath = db;
  eo.endpoint = "inproc://" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  eo.channel.hwm = hwm;
  eo.maxRuns = 1;
  auto created = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
  eng = std::move(*created);
  eng->start();
  auto c = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
  REQUIRE(c.has_value());
  client = std::move(*c);
}

void InProcessEngine::finish() {
  client.reset();
  REQUIRE(eng->wait());
}

PipelineRun runInProcess(const nlohmann::json& protocolJson, const std::filesystem::path& db, int hwm) {
  auto protocol = runner::parseProtocol(protocolJson.dump(), "test-protocol.json");
  REQUIRE_MESSAGE(protocol.has_value(), (protocol ? "" : protocol.error().message));
  InProcessEngine e(db, "e2e", hwm);
  runner::RunOptions ro;
  ro.timeout = std::chrono::seconds(60);
  auto result = runner::runProtocol(*e.client, *protocol, ro);
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  e.finish();
  e.eng.reset();
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(log.has_value());
  auto detail = recorder::runDetail(**log, result->runId, true);
  REQUIRE(detail.has_value());
  return {*result, *detail};
}

std::string runrecPath() { return std::string(RUNREC_BINARY_DIR) + "/tools/runrec"; }

Proc runrec(const std::string& args) {
  static std::mt19937 rng{std::random_device{}()};
  auto dir = tempDir("proc");
  auto out = dir / "out", err = dir / "err";
  std::string cmd = runrecPath() + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null";
  int status = std::system(cmd.c_str());
  Proc p;
  p.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  p.out = readText(out);
  p.err = readText(err);
  return p;
}

}  // namespace runrec::test
