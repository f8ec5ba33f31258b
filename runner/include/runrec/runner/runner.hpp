// Publishes a protocol's commands to the engine over the bus, with bounded backpressure,
// and learns their outcomes. Runs in the caller's thread (the protocol thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runrec/bus/channel.hpp"
#include "runrec/runner/protocol.hpp"

namespace runrec::runner {

struct Progress {
  std::uint64_t completed = 0;  // commands with an outcome
  std::uint64_t total = 0;      // commands in the protocol
  std::uint64_t inFlight = 0;   // sent, no outcome yet
  double elapsedSeconds = 0;
};

struct RunOptions {
  // Called after each outcome (from the calling thread); keep it cheap.
  std::function<void(const Progress&)> onProgress;
  // Bounds each wait for the engine (credit, open, finish). nullopt: wait forever.
  std::optional<std::chrono::milliseconds> timeout;
};

struct RunResult {
  std::string runId;
  nlohmann::json summary;  // the engine's run summary (docs/cli-json.md)
  std::uint64_t sent = 0;
  std::uint64_t maxInFlight = 0;
  double wallSeconds = 0;  // as the runner saw it: open to finished
  bool succeeded() const { return summary.value("status", std::string()) == "succeeded"; }
};

// The `open` message body for a protocol (docs/wire-protocol.md).
nlohmann::json runDescription(const Protocol& protocol);

// Runs the protocol: open, send every command (blocking on credit), stop sending after a
// failed outcome, end, and wait for the engine's summary.
Result<RunResult> runProtocol(bus::CommandClient& client, const Protocol& protocol, const RunOptions& options = {});

}  // namespace runrec::runner
