// Run control over ZeroMQ REQ/REP: play, pause, resume, stop and status requests to the
// engine (docs/wire-protocol.md, "Control channel").
//
// The engine binds control(E) beside its command endpoint E: inproc://x -> inproc://x.control,
// ipc://p -> ipc://p.control, tcp://h:P -> tcp://h:(P+2). Requests and replies are one JSON
// frame each. Thread-safety: one object per thread.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runrec/bus/channel.hpp"

namespace runrec::bus {

// Validates a command endpoint and derives its control endpoint.
Result<std::string> controlEndpoint(const std::string& commandEndpoint);

// Engine side: a REP socket. Every request received must be answered with reply() before
// the next tryReceive().
class ControlServer {
 public:
  static Result<std::unique_ptr<ControlServer>> bind(Context& ctx, const std::string& controlEndpoint);
  ~ControlServer();
  // The next request, if one is waiting (waits up to `timeout`). A request that is not a
  // JSON object with a string "action" is answered with an error here and not returned.
  Result<std::optional<nlohmann::json>> receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  Status reply(const nlohmann::json& answer);
  const std::string& endpoint() const;

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request, one reply: {"action": "pause", "requestedBy": "..."} -> {"ok": true, ...}.
// kTimeout when no engine answers in time.
Result<nlohmann::json> controlRequest(Context& ctx, const std::string& controlEndpoint, const nlohmann::json& request,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace runrec::bus
