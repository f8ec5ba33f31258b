// The engine's writer thread: open runs, record and execute commands, end runs.
#include "runrec/engine/engine.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>

#include "executor.hpp"

namespace runrec::engine {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A string field of a message body, or `dflt` when missing or not a string: bus input is
// never trusted to have the right types.
std::string text(const json& j, const char* key, const std::string& dflt = "") {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}

json member(const json& j, const char* key, json dflt = json()) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() ? *it : dflt;
}

std::string newRunId() {
  static std::mt19937_64 rng{std::random_device{}() ^ static_cast<std::uint64_t>(::getpid())};
  std::uint64_t a = rng(), b = rng();
  char buf[40];
  // UUID version 4 layout.
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// Seconds between two ISO 8601 UTC timestamps written by nowTimestamp().
double secondsBetween(const std::string& a, const std::string& b) {
  auto parse = [](const std::string& t) -> double {
    std::tm tm{};
    int us = 0;
    if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                    &tm.tm_sec, &us) < 6)
      return NAN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<double>(timegm(&tm)) + us / 1e6;
  };
  return parse(b) - parse(a);
}

// An exclusive lock on <db>.lock: one engine writes a log at a time.
class LogLock {
 public:
  static Result<std::unique_ptr<LogLock>> acquire(const std::filesystem::path& db) {
    std::string path = db.string() + ".lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return fail(ErrorCode::kIo, path + ": cannot create the engine lock file: " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {0};
      ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      return fail(ErrorCode::kIo, db.string() + ": another engine is writing this log" +
                                      (n > 0 ? " (pid " + std::string(buf, static_cast<size_t>(n)) + ")" : std::string()) +
                                      "; use another --db or wait for it to finish");
    }
    std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) { /* informational only */ }
    return std::unique_ptr<LogLock>(new LogLock(fd));
  }
  ~LogLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit LogLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

json summaryJson(const RunState& s, const RunRow* row) {
  json j;
  j["runId"] = s.runId;
  j["status"] = toString(s.status);
  j["protocolName"] = row ? json(row->protocolName) : s.protocol.value("name", json());
  j["robot"] = row ? json(row->robot) : json();
  j["createdAt"] = s.createdAt.empty() ? json() : json(s.createdAt);
  j["startedAt"] = s.startedAt.empty() ? json() : json(s.startedAt);
  j["finishedAt"] = s.finishedAt.empty() ? json() : json(s.finishedAt);
  double wall = (!s.startedAt.empty() && !s.finishedAt.empty()) ? secondsBetween(s.startedAt, s.finishedAt) : NAN;
  j["durationSeconds"] = std::isnan(wall) ? json() : json(std::round(wall * 1e6) / 1e6);
  json counts = {{"protocolCommands", s.protocol.value("commandCount", json())},
                 {"started", s.commandsStarted},
                 {"succeeded", s.commandsSucceeded},
                 {"failed", s.commandsFailed},
                 {"discarded", s.commandsDiscarded}};
  j["counts"] = counts;
  j["events"] = s.lastSeq;
  j["commandsPerSecond"] = (!std::isnan(wall) && wall > 0)
                               ? json(std::round(s.commandsSucceeded + s.commandsFailed) / wall)
                               : json();
  j["reason"] = s.finish.value("reason", json());
  j["error"] = s.status == RunStatus::kFailed && s.lastError ? *s.lastError : s.finish.value("error", json());
  return j;
}

struct Engine::Impl {
  EngineOptions options;
  std::unique_ptr<LogLock> lock;
  std::unique_ptr<EventLog> log;
  std::unique_ptr<hardware::Robot> robot;
  std::unique_ptr<bus::CommandServer> server;
  hardware::LabwareLibrary library;
  std::atomic<bool> shutdown{false};
  std::mutex holdMutex;
  std::condition_variable holdCv;
  bool held = false;
  Status finalStatus;

  // --- the run in progress ---
  RunState state;
  std::vector<bus::Message> pendingReplies;  // sent after the next commit

  Status record(const std::string& type, json payload, const std::string& commandId = "") {
    if (auto st = log->begin(); !st) return st;
    Event e{state.runId, state.lastSeq + 1, type, nowTimestamp(), commandId, std::move(payload)};
    if (auto st = log->append(e); !st) return st;
    apply(state, e);
    return {};
  }

  // Commits what is pending, then sends the replies that waited for it.
  Status flush() {
    if (auto st = log->commit(); !st) return st;
    for (auto& m : pendingReplies) {
      if (auto st = server->reply(m); !st)
        spdlog::warn("engine: could not send {} for run {} to the runner: {}", bus::toString(m.type), m.runId,
                     st.error().message);
    }
    pendingReplies.clear();
    return {};
  }

  void waitWhileHeld() {
    std::unique_lock lk(holdMutex);
    holdCv.wait(lk, [&] { return !held || shutdown.load(); });
  }

  // Next message; nullopt on shutdown. Commits before blocking, so nothing waits
  // uncommitted while the engine idles.
  Result<std::optional<bus::Message>> next(Clock::time_point deadline = Clock::time_point::max()) {
    waitWhileHeld();
    auto m = server->tryReceive();
    if (!m) return fail(m.error().code == bus::ErrorCode::kMalformed ? ErrorCode::kInvalid : ErrorCode::kBus,
                        m.error().message);
    if (*m) return std::move(*m);
    if (auto st = flush(); !st) return fail(st.error().code, st.error().message);
    while (!shutdown.load()) {
      if (Clock::now() >= deadline) return std::optional<bus::Message>{};
      waitWhileHeld();
      auto r = server->receive(std::chrono::milliseconds(100));
      if (!r)
        return fail(r.error().code == bus::ErrorCode::kMalformed ? ErrorCode::kInvalid : ErrorCode::kBus,
                    r.error().message);
      if (*r) return std::move(*r);
    }
    return std::optional<bus::Message>{};
  }

  Status serve() {
    int served = 0;
    while (!shutdown.load() && (options.maxRuns < 0 || served < options.maxRuns)) {
      auto m = next();
      if (!m) {
        spdlog::warn("engine: {}", m.error().message);
        continue;
      }
      if (!*m) break;
      if (auto st = handleIdle(**m, served); !st) return st;
    }
    return {};
  }

  // A message while no run is open: only `open` is valid.
  Status handleIdle(bus::Message& m, int& served) {
    if (m.type != bus::MessageType::kOpen) {
      spdlog::warn("engine: ignoring {} for run {} (no run is open)", bus::toString(m.type), m.runId);
      return {};
    }
    auto st = runOne(m);
    served++;
    return st;
  }

  Status runOne(const bus::Message& open) {
    state = RunState{};
    pendingReplies.clear();
    const json& body = open.body;
    const json protocol = member(body, "protocol", json::object());
    // Protocol-supplied labware definitions: validated before the run exists.
    hardware::LabwareLibrary lib;
    for (auto& dir : options.labwareDirs)
      if (auto st = lib.addDirectory(dir); !st) return refuse(open, st.error().message);
    if (body.contains("labwareDefinitions") && body["labwareDefinitions"].is_object())
      for (auto& [uri, def] : body["labwareDefinitions"].items())
        if (auto st = lib.add(def, "labwareDefinitions[\"" + uri + "\"]"); !st) return refuse(open, st.error().message);
    library = std::move(lib);
    Executor executor(*robot, library);

    RunRow row{newRunId(), nowTimestamp(), text(protocol, "name", "unnamed"),
               text(protocol, "sha256"), robot->describe()};
    state.runId = row.runId;
    if (auto st = log->begin(); !st) return st;
    if (auto st = log->createRun(row, text(protocol, "fileName"), text(protocol, "text"));
        !st) {
      log->rollback();
      return refuse(open, st.error().message);
    }
    json created = {{"protocol", {{"name", row.protocolName},
                                  {"fileName", protocol.value("fileName", json())},
                                  {"sha256", row.protocolSha256},
                                  {"schemaVersion", protocol.value("schemaVersion", json())},
                                  {"commandCount", protocol.value("commandCount", json())},
                                  {"metadata", protocol.value("metadata", json::object())}}},
                    {"robot", row.robot},
                    {"engine", {{"hwm", options.channel.hwm}, {"sync", toString(options.sync)}}},
                    {"liquids", member(body, "liquids", json::object())},
                    {"fixedTrash", executor.fixedTrash()}};
    if (auto st = record(event::kRunCreated, created); !st) return st;
    if (auto st = record(event::kRunStarted, json::object()); !st) return st;
    pendingReplies.push_back({bus::MessageType::kOpened, state.runId, 0, {{"runId", state.runId}}});
    if (auto st = flush(); !st) return st;
    spdlog::info("engine: run {} started ({})", state.runId, row.protocolName);

    std::uint64_t expected = 1;
    bool failed = false;
    std::int64_t discarded = 0;
    std::string reason = "completed";
    Clock::time_point endDeadline = Clock::time_point::max();

    while (true) {
      auto r = next(endDeadline);
      if (!r && r.error().code == ErrorCode::kInvalid) {
        // A frame that does not decode: recorded, never executed.
        if (auto st = record(event::kBusMessageRejected, {{"message", r.error().message}}); !st) return st;
        continue;
      }
      if (!r) return fail(r.error().code, r.error().message);
      if (!*r) {
        // Shutdown, or the runner never sent `end` after a failure.
        if (!failed) reason = "engine shut down";
        break;
      }
      bus::Message& m = **r;
      if (m.type == bus::MessageType::kOpen) {
        pendingReplies.push_back({bus::MessageType::kRefused, "", 0,
                                  {{"message", "engine busy with run " + state.runId}}});
        continue;
      }
      if (m.runId != state.runId) {
        if (auto st = record(event::kBusMessageRejected,
                             {{"message", std::string("message for another run: ") + bus::toString(m.type) + " " + m.runId}});
            !st)
          return st;
        continue;
      }
      if (m.type == bus::MessageType::kEnd) {
        if (!failed && text(m.body, "reason", "complete") != "complete") {
          failed = true;
          reason = "runner: " + text(m.body, "reason");
          if (m.body.is_object() && m.body.contains("error")) state.lastError = m.body["error"];
        }
        break;
      }
      if (m.type != bus::MessageType::kCommand) {
        if (auto st = record(event::kBusMessageRejected,
                             {{"message", std::string("unexpected ") + bus::toString(m.type) + " on the command channel"}});
            !st)
          return st;
        continue;
      }
      if (failed) {  // after a failure: never executed, counted
        discarded++;
        continue;
      }
      if (m.seq != expected) {
        if (auto st = record(event::kBusMessageRejected,
                             {{"message", "command out of order: expected " + std::to_string(expected) + ", got " +
                                              std::to_string(m.seq)}});
            !st)
          return st;
        failed = true;
        reason = "command stream out of order";
        discarded++;
        endDeadline = Clock::now() + options.endTimeout;
        pendingReplies.push_back({bus::MessageType::kOutcome, state.runId, m.seq,
                                  {{"status", "failed"}, {"error", {{"errorType", "Bus"}, {"message", reason}}}}});
        continue;
      }
      expected++;
      if (auto st = executeCommand(executor, m, failed); !st) return st;
      if (failed) {
        reason = "command failed";
        endDeadline = Clock::now() + options.endTimeout;
        if (auto st = flush(); !st) return st;  // tell the runner at once
      }
    }
    if (discarded > 0)
      if (auto st = record(event::kCommandsDiscarded, {{"count", discarded}}); !st) return st;
    RunStatus status = failed ? RunStatus::kFailed : (reason == "completed" ? RunStatus::kSucceeded : RunStatus::kStopped);
    json fin = {{"status", toString(status)},
                {"reason", reason},
                {"counts",
                 {{"started", state.commandsStarted},
                  {"succeeded", state.commandsSucceeded},
                  {"failed", state.commandsFailed},
                  {"discarded", state.commandsDiscarded + discarded}}}};
    if (failed && state.lastError) fin["error"] = *state.lastError;
    if (auto st = record(event::kRunFinished, fin); !st) return st;
    RunRow rowCopy = row;
    pendingReplies.push_back({bus::MessageType::kFinished, state.runId, 0, summaryJson(state, &rowCopy)});
    if (auto st = flush(); !st) return st;
    spdlog::info("engine: run {} {}", state.runId, toString(status));
    return {};
  }

  Status executeCommand(Executor& executor, const bus::Message& m, bool& failed) {
    const json& cmd = m.body;
    std::string type = text(cmd, "commandType");
    json params = member(cmd, "params", json::object());
    std::string commandId = text(cmd, "commandId", "c" + std::to_string(m.seq));
    json started = {{"commandId", commandId}, {"index", m.seq}, {"commandType", type}, {"params", params},
                    {"intent", text(cmd, "intent", "protocol")}};
    if (cmd.is_object() && cmd.contains("key")) started["key"] = cmd["key"];
    if (auto st = record(event::kCommandStarted, std::move(started), commandId); !st) return st;
    // The start is durable before the robot acts on the command.
    if (auto st = flush(); !st) return st;

    CommandOutcome out = executor.execute(state, commandId, type, params);
    if (out.ok) {
      if (auto st = record(event::kCommandSucceeded, {{"commandId", commandId}, {"result", out.result}}, commandId); !st)
        return st;
      pendingReplies.push_back({bus::MessageType::kOutcome, state.runId, m.seq, {{"status", "succeeded"}}});
    } else {
      json err = out.error.toJson();
      if (auto st = record(event::kCommandFailed, {{"commandId", commandId}, {"error", err}}, commandId); !st) return st;
      pendingReplies.push_back({bus::MessageType::kOutcome, state.runId, m.seq, {{"status", "failed"}, {"error", err}}});
      failed = true;
    }
    return {};
  }

  Status refuse(const bus::Message& open, const std::string& message) {
    spdlog::warn("engine: refused a run: {}", message);
    pendingReplies.push_back({bus::MessageType::kRefused, "", 0, {{"message", message}}});
    (void)open;
    return flush();
  }

  // Closes runs left without a terminal event by a crashed process.
  Result<std::vector<std::string>> recover() {
    auto unfinished = log->unfinishedRuns();
    if (!unfinished) return tl::unexpected(unfinished.error());
    for (const auto& runId : *unfinished) {
      auto events = log->events(runId);
      if (!events) return tl::unexpected(events.error());
      state = fold(*events);
      state.runId = runId;
      json fin = {{"status", "interrupted"},
                  {"reason", "the engine stopped before the run ended (crash or power loss); closed on reopening the log"},
                  {"lastEvent", events->empty() ? json() : json{{"seq", events->back().seq}, {"type", events->back().type},
                                                                  {"ts", events->back().ts}}},
                  {"commandInProgress", state.currentCommandId ? json(*state.currentCommandId) : json()},
                  {"counts", {{"started", state.commandsStarted},
                              {"succeeded", state.commandsSucceeded},
                              {"failed", state.commandsFailed},
                              {"discarded", state.commandsDiscarded}}}};
      if (auto st = record(event::kRunFinished, fin); !st) return tl::unexpected(st.error());
      if (auto st = log->commit(); !st) return tl::unexpected(st.error());
      spdlog::warn("engine: run {} had no end; recorded it as interrupted", runId);
    }
    return *unfinished;
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  requestShutdown();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<Engine>> Engine::create(bus::Context& ctx, EngineOptions options,
                                               std::unique_ptr<hardware::Robot> robot) {
  auto impl = std::make_unique<Impl>();
  auto lock = LogLock::acquire(options.dbPath);
  if (!lock) return tl::unexpected(lock.error());
  impl->lock = std::move(*lock);
  auto log = EventLog::open(options.dbPath, LogOptions{options.sync, false, true});
  if (!log) return tl::unexpected(log.error());
  impl->log = std::move(*log);
  impl->robot = std::move(robot);
  impl->options = options;
  auto recovered = impl->recover();
  if (!recovered) return tl::unexpected(recovered.error());
  auto server = bus::CommandServer::bind(ctx, options.endpoint, options.channel);
  if (!server) return fail(ErrorCode::kBus, server.error().message);
  impl->server = std::move(*server);
  std::unique_ptr<Engine> engine(new Engine(std::move(impl)));
  engine->recovered_ = std::move(*recovered);
  return engine;
}

void Engine::start() {
  thread_ = std::thread([this] {
    try {
      impl_->finalStatus = impl_->serve();
    } catch (const std::exception& e) {
      // A bug, not bad input (input is checked); the open run stays without an end and is
      // closed as interrupted when the log is next opened.
      impl_->finalStatus = fail(ErrorCode::kInvalid, std::string("engine stopped on an internal error: ") + e.what());
    }
  });
}

void Engine::requestShutdown() {
  impl_->shutdown.store(true);
  std::lock_guard lk(impl_->holdMutex);
  impl_->holdCv.notify_all();
}

Status Engine::wait() {
  if (thread_.joinable()) thread_.join();
  return impl_->finalStatus;
}

void Engine::hold() {
  std::lock_guard lk(impl_->holdMutex);
  impl_->held = true;
}

void Engine::release() {
  std::lock_guard lk(impl_->holdMutex);
  impl_->held = false;
  impl_->holdCv.notify_all();
}

}  // namespace runrec::engine
