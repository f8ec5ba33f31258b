// The history server: answers "events of run R from seq N, at most M" and "list runs" over
// REQ/REP (docs/events-wire.md), from the log file, never from engine memory.
//
// Threading: a HistoryServer owns one thread and its own read-only EventLog connection;
// the engine's writer thread never waits for it. The destructor stops and joins the thread.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "runrec/bus/events.hpp"
#include "runrec/engine/error.hpp"
#include "runrec/engine/event_log.hpp"

namespace runrec::engine {

// The reply to one well-formed request, read from `log` ({"ok": false, "error"} for an
// unknown run or a log that cannot be read). Pure over the log: used by the server and tests.
nlohmann::json answerHistory(EventLog& log, const bus::HistoryRequest& request);

// The published form of a logged event.
bus::RunEvent toRunEvent(const Event& event);

class HistoryServer {
 public:
  // Binds `endpoint` (REP; CURVE with `curve`'s keys unless null) and starts the thread.
  // The log file must exist.
  static Result<std::unique_ptr<HistoryServer>> start(bus::Context& ctx, const std::filesystem::path& db,
                                                      const std::string& endpoint,
                                                      const bus::CurveServer* curve = nullptr);
  ~HistoryServer();
  const std::string& endpoint() const { return endpoint_; }

 private:
  HistoryServer() = default;
  std::string endpoint_;
  std::unique_ptr<bus::HistoryResponder> responder_;
  std::unique_ptr<EventLog> log_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace runrec::engine
