// libFuzzer target: the history request handler. Arbitrary request frames are parsed
// (bus::parseHistoryRequest) and, when well-formed, answered from a small real log
// (engine::answerHistory), as the engine's history server does.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "runrec/bus/events.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/history.hpp"

namespace {
namespace engine = runrec::engine;

std::unique_ptr<engine::EventLog> makeLog() {
  auto dir = std::filesystem::temp_directory_path() / ("runrec-fuzz-history-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  static const std::filesystem::path kDir = dir;
  std::atexit([] { std::filesystem::remove_all(kDir); });
  auto log = engine::EventLog::open(dir / "log.db");
  if (!log) __builtin_trap();
  for (const char* id : {"run-a", "run-b"}) {
    engine::RunRow row{id, engine::nowTimestamp(), "fuzz", "", "sim"};
    if (!(*log)->begin() || !(*log)->createRun(row, "fuzz.json", "{}")) __builtin_trap();
    std::int64_t seq = 0;
    auto add = [&](const char* type, std::string cmd, nlohmann::json payload) {
      if (!(*log)->append({id, ++seq, type, engine::nowTimestamp(), std::move(cmd), std::move(payload)}))
        __builtin_trap();
    };
    add(engine::event::kRunCreated, "", {{"robot", "sim"}});
    add(engine::event::kRunStarted, "", nlohmann::json::object());
    for (int i = 1; i <= 5; ++i) {
      std::string cmd = "c" + std::to_string(i);
      add(engine::event::kCommandStarted, cmd, {{"commandId", cmd}, {"index", i}, {"commandType", "home"}});
      add(engine::event::kCommandSucceeded, cmd, {{"commandId", cmd}, {"result", nlohmann::json::object()}});
    }
    if (std::string_view(id) == "run-a") add(engine::event::kRunFinished, "", {{"status", "succeeded"}});
    if (!(*log)->commit()) __builtin_trap();
  }
  return std::move(*log);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<engine::EventLog> log = makeLog();
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  auto request = runrec::bus::parseHistoryRequest(frame);
  if (!request) return 0;
  // A parsed request must re-encode to one that parses the same.
  auto again = runrec::bus::parseHistoryRequest(runrec::bus::toJson(*request).dump());
  if (!again || again->op != request->op || again->runId != request->runId || again->fromSeq != request->fromSeq ||
      again->limit != request->limit)
    __builtin_trap();
  auto answer = engine::answerHistory(*log, *request);
  if (!answer.is_object() || !answer.contains("ok")) __builtin_trap();
  (void)answer.dump();
  return 0;
}
