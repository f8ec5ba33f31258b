// The engine's writer thread: open runs, record and execute commands, end runs.
#include "runrec/engine/engine.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "committer.hpp"
#include "executor.hpp"
#include "runrec/bus/control.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/history.hpp"
#include "runrec/engine/log_follower.hpp"

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

// Appends `s` as a JSON string exactly as nlohmann's dump() writes it: plain ASCII is
// copied, anything else goes through nlohmann.
void appendJsonString(std::string& out, std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

}  // namespace

std::optional<CommitPolicy> parseCommitPolicy(std::string_view text) {
  if (text == "each") return CommitPolicy::kEach;
  if (text == "group") return CommitPolicy::kGroup;
  return std::nullopt;
}

const char* toString(CommitPolicy policy) { return policy == CommitPolicy::kGroup ? "group" : "each"; }

std::string encodeLiveEvent(const Event& e, std::string_view payloadJson) {
  // nlohmann objects are ordered by key, so this is the order bus::encodeEvent writes.
  std::string out;
  out.reserve(96 + e.runId.size() + e.type.size() + e.commandId.size() + payloadJson.size());
  out += "{\"commandId\":";
  if (e.commandId.empty())
    out += "null";
  else
    appendJsonString(out, e.commandId);
  out += ",\"payload\":";
  out += payloadJson;
  out += ",\"runId\":";
  appendJsonString(out, e.runId);
  out += ",\"seq\":";
  out += std::to_string(e.seq);
  out += ",\"ts\":";
  appendJsonString(out, e.ts);
  out += ",\"type\":";
  appendJsonString(out, e.type);
  out += ",\"v\":";
  out += std::to_string(bus::kEventsVersion);
  out += '}';
  return out;
}

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
                 {"discarded", s.commandsDiscarded},
                 {"cleanup", s.cleanupCommands},
                 {"cleanupFailed", s.cleanupFailed}};
  j["counts"] = counts;
  j["events"] = s.lastSeq;
  j["commandsPerSecond"] = (!std::isnan(wall) && wall > 0)
                               ? json(std::round(s.commandsSucceeded + s.commandsFailed) / wall)
                               : json();
  // Transactions the run was committed in (EngineOptions::commit); null for runs recorded
  // before it was counted, and for interrupted runs.
  j["commits"] = s.finish.value("commits", json());
  j["reason"] = s.finish.value("reason", json());
  j["error"] = s.status == RunStatus::kFailed && s.lastError ? *s.lastError : s.finish.value("error", json());
  return j;
}

struct Engine::Impl {
  EngineOptions options;
  std::unique_ptr<LogLock> lock;
  std::unique_ptr<EventLog> log;
  // Under --commit group: the log thread that appends and commits groups of motion and liquid
  // events while this thread drives the next commands (committer.hpp). It uses `log` and
  // `events`, so it is stopped first (~Impl).
  std::unique_ptr<Committer> committer;
  ~Impl() { committer.reset(); }  // a group still in flight is committed and published first
  // Folds the open run's committed events on its own thread, for cleanup (log_follower.hpp).
  std::unique_ptr<LogFollower> follower;
  std::unique_ptr<hardware::Robot> robot;
  std::unique_ptr<bus::CommandServer> server;
  std::unique_ptr<bus::ControlServer> control;
  // Live events (docs/events-wire.md): the XPUB socket (this thread's, and the committer's
  // while a group is in flight) and the history server (its own thread and log connection).
  std::unique_ptr<bus::EventPublisher> events;
  // Whether anyone subscribes to live events (read every kControlPeriod): while nobody does,
  // events are not encoded for them; a subscriber that arrives reads the rest from history.
  bool listened = false;
  // Reads the socket, only while no group is in flight (the committer holds it then);
  // otherwise the check is left for handOff(), before the next group goes out.
  bool listenersDue = false;
  void checkListeners() {
    listenersDue = committer && committer->inFlight();
    if (!listenersDue) listened = events && events->hasSubscribers();
  }
  std::unique_ptr<HistoryServer> history;
  hardware::LabwareLibrary library;
  std::atomic<bool> shutdown{false};
  std::mutex holdMutex;
  std::condition_variable holdCv;
  bool held = false;
  Status finalStatus;

  // Stop requests may come from any thread (Ctrl-C) or the control socket.
  std::mutex stopMutex;
  std::atomic<bool> stopFlag{false};
  std::string stopBy;

  // --- the run in progress (writer thread only) ---
  RunState state;
  bool runOpen = false;
  bool paused = false;
  std::vector<bus::Message> pendingReplies;  // sent after the next commit
  int cleanupSeq = 0;
  // Recorded since the last commit (and not in the group the committer holds): appended and
  // committed by the next flush() or handOff(), re-appended after a failed write. `payload`
  // is the event's JSON text: the event's own payload has been moved into the state
  // (apply(state, Event&&)).
  std::vector<PendingEvent> uncommitted;
  // The replies to the group the committer is writing: sent once it is committed (collect()).
  // Its live events are published by the committer itself, right after the commit.
  std::vector<bus::Message> inFlightReplies;

  std::string payloadText;  // record()'s encoding buffer, reused
  Clock::time_point lastCommit = Clock::now();
  std::int64_t runCommits = 0;  // transactions committed for the open run
  std::int64_t groupCommits = 0;  // of which by the committer

  // Whether a command's start must be committed before the robot acts on it
  // (EngineOptions::commit). Under kGroup only motion and liquid commands, whose loss in a
  // crash changes nothing cleanup or recovery needs, may wait for a later commit.
  bool commitBeforeActing(const std::string& type, const char* intent) const {
    if (options.commit == CommitPolicy::kEach || std::strcmp(intent, "protocol") != 0) return true;
    static const std::unordered_set<std::string> kGroupable = {
        "aspirate", "dispense", "blowout", "touchTip", "moveToWell", "moveToCoordinates", "moveRelative",
        "savePosition", "comment"};
    if (!kGroupable.count(type)) return true;
    const std::size_t waiting = uncommitted.size() + (committer ? committer->inFlightEvents() : 0);
    return static_cast<int>(waiting) >= options.commitMaxEvents || Clock::now() - lastCommit >= options.commitWindow;
  }

  // Records an event: encoded, folded into the state, and queued for the next commit
  // (flush() or handOff()).
  Status record(const std::string& type, json payload, const std::string& commandId = "") {
    Event e{state.runId, state.lastSeq + 1, type, nowTimestamp(), commandId, std::move(payload)};
    // The payload is encoded once: the same text goes to the log and to subscribers.
    payloadText.clear();
    bus::dumpJson(e.payload, payloadText);
    uncommitted.push_back({std::move(e), payloadText});
    // The state takes the payload (a commandStarted's params are moved, not copied); the
    // text kept above is what a retry appends.
    apply(state, std::move(uncommitted.back().event));
    return {};
  }

  // Live events of committed events, in order (never blocks: the socket drops at its HWM).
  // Called by the thread that committed them: the committer for its groups (it holds the
  // socket while a group is in flight), this thread for its own commits.
  void publish(const std::vector<PendingEvent>& committed) {
    for (const auto& p : committed)
      events->publish(bus::eventTopic(p.event.runId, p.event.type), encodeLiveEvent(p.event, p.payload));
  }

  // The replies that waited for a commit.
  void sendReplies(std::vector<bus::Message>& replies) {
    for (auto& m : replies) {
      if (auto st = server->reply(m); !st)
        spdlog::warn("engine: could not send {} for run {} to the runner: {}", bus::toString(m.type), m.runId,
                     st.error().message);
    }
    replies.clear();
  }

  // Takes the committer's group once it is committed (or waits for it: `wait`) and sends the
  // replies that waited for it (the committer has published its live events). A group that
  // could not be committed (and was not published) goes back in front of what was recorded
  // since, with its replies, for endAfterLogFailure. After it returns with nothing in flight,
  // the log connection and the event socket are this thread's.
  Status collect(bool wait) {
    if (!committer) return {};
    auto done = committer->take(wait);
    if (!done) return {};
    if (!done->status) {
      done->events.insert(done->events.end(), std::make_move_iterator(uncommitted.begin()),
                          std::make_move_iterator(uncommitted.end()));
      uncommitted = std::move(done->events);
      inFlightReplies.insert(inFlightReplies.end(), std::make_move_iterator(pendingReplies.begin()),
                             std::make_move_iterator(pendingReplies.end()));
      pendingReplies = std::move(inFlightReplies);
      inFlightReplies.clear();
      return done->status;
    }
    runCommits++;
    groupCommits++;
    lastCommit = done->committedAt;
    sendReplies(inFlightReplies);
    return {};
  }

  // Commits what is pending (after the committer's group), then sends what waited for it.
  Status flush() {
    if (auto st = collect(true); !st) return st;
    const bool wrote = !uncommitted.empty();
    if (auto st = appendAndCommit(*log, uncommitted); !st) return st;
    if (wrote) runCommits++;
    lastCommit = Clock::now();
    if (listened) publish(uncommitted);
    uncommitted.clear();
    sendReplies(pendingReplies);
    return {};
  }

  // Under --commit group: sends what the committer's last group held once it is committed,
  // and hands it what is pending when it is idle. Between motion and liquid commands
  // (`idle` false) only once a few commands have gathered; when the bus is empty (`idle`)
  // everything, so nothing waits uncommitted while the engine waits for the runner.
  Status handOff(bool idle) {
    if (!committer) return idle ? flush() : Status{};
    if (auto st = collect(false); !st) return st;
    if (committer->inFlight()) return {};
    if (uncommitted.empty()) return idle ? flush() : Status{};  // flush(): replies that wait for nothing
    if (!idle && uncommitted.size() < kHandOffEvents) return {};
    if (listenersDue) checkListeners();
    std::vector<PendingEvent> group;
    group.reserve(uncommitted.capacity());
    group.swap(uncommitted);
    inFlightReplies.swap(pendingReplies);
    committer->submit(std::move(group), listened);
    return {};
  }
  // A group goes to the committer once this many events wait (about four commands): few
  // enough that the runner's outcomes keep flowing within a small credit window, enough that
  // a commit's fixed cost (WAL frames, locks) is shared.
  static constexpr std::size_t kHandOffEvents = 8;

  void waitWhileHeld() {
    std::unique_lock lk(holdMutex);
    holdCv.wait(lk, [&] { return !held || shutdown.load(); });
  }

  bool requestStop(const std::string& who) {
    std::lock_guard lk(stopMutex);
    if (stopFlag.load()) return false;
    stopBy = who;
    stopFlag.store(true);
    return true;
  }

  // Answers at most one control request, waiting up to `timeout` for it.
  Status pollControl(std::chrono::milliseconds timeout) {
    if (!control) {
      if (timeout.count() > 0) std::this_thread::sleep_for(timeout);
      return {};
    }
    auto r = control->receive(timeout);
    if (!r) {
      spdlog::warn("engine: control: {}", r.error().message);
      return {};
    }
    if (!*r) return {};
    const json& req = **r;
    std::string action = text(req, "action");
    std::string who = text(req, "requestedBy", "unknown client");
    json answer;
    if (action == "status") {
      answer = {{"ok", true}, {"engine", {{"endpoint", server->endpoint()}, {"db", options.dbPath.string()}}}};
      if (runOpen) {
        json run = summaryJson(state);
        run["paused"] = paused;
        run["stopping"] = stopFlag.load();
        run["currentCommand"] = state.currentCommandId ? json(*state.currentCommandId) : json();
        answer["run"] = run;
      } else {
        answer["run"] = nullptr;
      }
    } else if (!runOpen) {
      answer = {{"ok", false}, {"error", "no run in progress"}};
    } else if (action == "pause") {
      if (!paused) {
        if (auto st = record(event::kRunPaused, {{"requestedBy", who}, {"source", "control"}}); !st) return st;
        if (auto st = flush(); !st) return st;
        paused = true;
      }
      answer = {{"ok", true}, {"paused", true}, {"runId", state.runId}};
    } else if (action == "resume" || action == "play") {
      if (paused) {
        if (auto st = record(event::kRunResumed, {{"requestedBy", who}, {"source", "control"}}); !st) return st;
        if (auto st = flush(); !st) return st;
        paused = false;
      }
      answer = {{"ok", true}, {"paused", false}, {"runId", state.runId}};
    } else if (action == "stop") {
      bool first = requestStop(who);
      answer = {{"ok", true}, {"stopping", true}, {"alreadyStopping", !first}, {"runId", state.runId}};
    } else {
      answer = {{"ok", false},
                {"error", "unknown action \"" + action + "\" (expected play, pause, resume, stop or status)"}};
    }
    if (auto st = control->reply(answer); !st) spdlog::warn("engine: control reply: {}", st.error().message);
    return {};
  }

  static constexpr std::chrono::milliseconds kControlPeriod{2};
  Clock::time_point nextControlPoll{};

  bool interrupted() const { return stopFlag.load() || paused || shutdown.load(); }

  // Next bus message; nullopt on stop, pause, shutdown or `deadline`. Commits before
  // blocking, so nothing waits uncommitted while the engine idles.
  Result<std::optional<bus::Message>> next(Clock::time_point deadline = Clock::time_point::max()) {
    waitWhileHeld();
    // Control requests are looked at every kControlPeriod while commands flow (a poll is a
    // system call; per command it cost more than the rest of the bus), and on every wait.
    if (const auto now = Clock::now(); now >= nextControlPoll) {
      nextControlPoll = now + kControlPeriod;
      checkListeners();
      if (auto st = pollControl(std::chrono::milliseconds(0)); !st) return tl::unexpected(st.error());
    }
    if (interrupted()) return std::optional<bus::Message>{};
    auto m = server->tryReceive();
    if (!m) return fail(m.error().code == bus::ErrorCode::kMalformed ? ErrorCode::kInvalid : ErrorCode::kBus,
                        m.error().message);
    if (*m) return std::move(*m);
    // The bus is empty: everything recorded goes to the log before the engine waits.
    if (auto st = handOff(true); !st) return fail(st.error().code, st.error().message);
    while (!interrupted()) {
      if (Clock::now() >= deadline) return std::optional<bus::Message>{};
      waitWhileHeld();
      // Also wakes when the committer's group is committed: its outcomes go out at once.
      const int wake = committer && committer->inFlight() ? committer->wakeFd() : -1;
      auto r = server->receive(std::chrono::milliseconds(control ? 20 : 100), wake);
      if (!r)
        return fail(r.error().code == bus::ErrorCode::kMalformed ? ErrorCode::kInvalid : ErrorCode::kBus,
                    r.error().message);
      if (*r) return std::move(*r);
      if (auto st = handOff(true); !st) return fail(st.error().code, st.error().message);
      checkListeners();
      if (auto st = pollControl(std::chrono::milliseconds(0)); !st) return tl::unexpected(st.error());
    }
    return std::optional<bus::Message>{};
  }

  Status serve() {
    // The log thread is started here, by the writer thread, so it inherits the writer's
    // scheduling (raised for a board moving in real time: hardware/thread_priority.hpp): the
    // writer waits for it before every tip, pipette or module command.
    if (options.commit == CommitPolicy::kGroup && !committer) {
      try {
        committer = std::make_unique<Committer>(*log, [this](const std::vector<PendingEvent>& group) { publish(group); });
      } catch (const std::exception& e) {
        return fail(ErrorCode::kIo, std::string("cannot start the engine's log thread: ") + e.what());
      }
    }
    int served = 0;
    while (!shutdown.load() && (options.maxRuns < 0 || served < options.maxRuns)) {
      stopFlag.store(false);
      auto m = next();
      if (!m) {
        spdlog::warn("engine: {}", m.error().message);
        continue;
      }
      if (!*m) {
        if (shutdown.load()) break;
        stopFlag.store(false);  // a stop with no run open has nothing to stop
        continue;
      }
      if ((**m).type != bus::MessageType::kOpen) {
        spdlog::debug("engine: ignoring {} for run {} (no run is open)", bus::toString((**m).type), (**m).runId);
        continue;
      }
      if (auto st = runOne(**m); !st) return st;
      served++;
    }
    return {};
  }

  Status runOne(const bus::Message& open) {
    auto st = runOneBody(open);
    // A group still with the committer: its outcome (a failed one goes back to `uncommitted`).
    if (auto c = collect(true); !c && st) st = c;
    follower.reset();
    if (st || !runOpen || (st.error().code != ErrorCode::kIo && st.error().code != ErrorCode::kCorrupt)) return st;
    return endAfterLogFailure(st.error());
  }

  // A write to the log failed mid-run (I/O error, disk full, failed sync). The robot has not
  // acted on a command whose start is not committed (executeCommand commits first) and is
  // not moved again (no cleanup: its moves could not be recorded). Once the log takes writes
  // again (retried for about 3 s) the events appended but not committed are appended again —
  // except a trailing commandStarted, never executed — then runFinished `failed` with the
  // cause. If it never does, the error stops the engine, and the next engine to open the
  // log closes the run as interrupted (docs/hardening.md).
  Status endAfterLogFailure(const Error& cause) {
    spdlog::error("engine: run {}: the event log failed: {}", state.runId, cause.message);
    std::vector<PendingEvent> keep = std::move(uncommitted);
    uncommitted.clear();
    std::optional<PendingEvent> notRun;
    if (!keep.empty() && keep.back().event.type == event::kRunFinished) keep.pop_back();
    if (!keep.empty() && keep.back().event.type == event::kCommandStarted) {
      notRun = std::move(keep.back());
      keep.pop_back();
    }
    std::string reason = "the event log could not be written (" + cause.message + ")";
    if (notRun) reason += "; command " + notRun->event.commandId + " was not executed";
    Status st = fail(cause.code, cause.message);
    for (int attempt = 0; attempt < 30 && !shutdown.load(); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      (void)log->rollback();
      std::vector<PendingEvent> appended;
      st = [&]() -> Status {
        if (auto b = log->begin(); !b) return b;
        auto last = log->lastSeq(state.runId);
        if (!last) return tl::unexpected(last.error());
        std::int64_t seq = *last;
        for (PendingEvent p : keep) {
          if (p.event.seq <= *last) continue;  // committed after all
          p.event.seq = ++seq;
          if (auto a = log->append(p.event, p.payload); !a) return a;
          appended.push_back(std::move(p));
        }
        auto all = log->events(state.runId);
        if (!all) return tl::unexpected(all.error());
        RunState folded = fold(*all);
        folded.runId = state.runId;
        json fin = {{"status", "failed"},
                    {"reason", reason},
                    {"counts", {{"started", folded.commandsStarted}, {"succeeded", folded.commandsSucceeded},
                                {"failed", folded.commandsFailed}, {"discarded", folded.commandsDiscarded},
                                {"cleanup", folded.cleanupCommands}, {"cleanupFailed", folded.cleanupFailed}}},
                    {"error", {{"errorType", "Storage"}, {"message", cause.message}, {"details", json::object()}}}};
        Event e{state.runId, ++seq, event::kRunFinished, nowTimestamp(), "", std::move(fin)};
        if (auto a = log->append(e); !a) return a;
        apply(folded, e);
        std::string text;
        bus::dumpJson(e.payload, text);
        appended.push_back({std::move(e), std::move(text)});
        if (auto c = log->commit(); !c) return c;
        state = std::move(folded);
        return {};
      }();
      if (!st) continue;
      spdlog::warn("engine: run {} failed: {}", state.runId, reason);
      if (events) publish(appended);
      json notRunPayload = notRun ? json::parse(notRun->payload, nullptr, false) : json();
      if (notRunPayload.is_object() && notRunPayload.value("index", json()).is_number())
        pendingReplies.push_back({bus::MessageType::kOutcome, state.runId, notRunPayload["index"].get<std::uint64_t>(),
                                  {{"status", "failed"}, {"error", {{"errorType", "Storage"}, {"message", reason}}}}});
      pendingReplies.push_back({bus::MessageType::kFinished, state.runId, 0, summaryJson(state)});
      runOpen = false;
      return flush();
    }
    runOpen = false;
    return st;
  }

  Status runOneBody(const bus::Message& open) {
    state = RunState{};
    pendingReplies.clear();
    uncommitted.clear();
    paused = false;
    cleanupSeq = 0;
    const json& body = open.body;
    const json protocol = member(body, "protocol", json::object());
    // Protocol-supplied labware definitions: validated before the run exists.
    hardware::LabwareLibrary lib;
    for (auto& dir : options.labwareDirs)
      if (auto st = lib.addDirectory(dir); !st) return refuse(st.error().message);
    if (body.contains("labwareDefinitions") && body["labwareDefinitions"].is_object())
      for (auto& [uri, def] : body["labwareDefinitions"].items())
        if (auto st = lib.add(def, "labwareDefinitions[\"" + uri + "\"]"); !st) return refuse(st.error().message);
    library = std::move(lib);
    options.modules->beginRun();
    Executor executor(*robot, library, options.modules.get());

    RunRow row{newRunId(), nowTimestamp(), text(protocol, "name", "unnamed"), text(protocol, "sha256"),
               robot->describe()};
    state.runId = row.runId;
    if (auto st = log->begin(); !st) return st;
    // A streamed protocol (runner::openProtocol) names its file instead of carrying its text.
    auto stored = protocol.contains("textFile") && !protocol.contains("text")
                      ? log->createRunFromFile(row, text(protocol, "fileName"), text(protocol, "textFile"))
                      : log->createRun(row, text(protocol, "fileName"), text(protocol, "text"));
    if (auto st = stored; !st) {
      log->rollback();
      return refuse(st.error().message);
    }
    json created = {{"protocol", {{"name", row.protocolName},
                                  {"fileName", member(protocol, "fileName")},
                                  {"sha256", row.protocolSha256},
                                  {"schemaVersion", member(protocol, "schemaVersion")},
                                  {"commandCount", member(protocol, "commandCount")},
                                  {"metadata", member(protocol, "metadata", json::object())}}},
                    {"robot", row.robot},
                    {"engine", {{"hwm", options.channel.hwm},
                                {"sync", toString(options.sync)},
                                {"commit", toString(options.commit)},
                                {"commitWindowMs", options.commitWindow.count() / 1000.0},
                                {"postRun", options.postRun == EngineOptions::PostRun::kHome ? "home" : "stay"},
                                {"autoResume", options.autoResume}}},
                    {"liquids", member(body, "liquids", json::object())},
                    {"fixedTrash", executor.fixedTrash()}};
    // A replay names the run it replays (docs/recorder.md).
    if (body.is_object() && body.contains("replayOf") && body["replayOf"].is_string()) created["replayOf"] = body["replayOf"];
    runCommits = 0;
    groupCommits = 0;
    checkListeners();
    if (auto st = record(event::kRunCreated, created); !st) return st;
    if (auto st = record(event::kRunStarted, json::object()); !st) return st;
    pendingReplies.push_back({bus::MessageType::kOpened, state.runId, 0, {{"runId", state.runId}}});
    if (auto st = flush(); !st) {  // the run could not be created: nothing was recorded
      (void)log->rollback();
      uncommitted.clear();
        pendingReplies.clear();
      return refuse("the event log could not be written: " + st.error().message);
    }
    runOpen = true;
    spdlog::info("engine: run {} started ({})", state.runId, row.protocolName);
    // Without a follower, cleanup folds the whole run on this thread instead: slower, same state.
    if (auto f = LogFollower::start(options.dbPath, state.runId, std::chrono::milliseconds(5)))
      follower = std::move(*f);
    else
      spdlog::warn("engine: run {}: no log follower ({}); cleanup will fold the run from the log", state.runId,
                   f.error().message);

    std::uint64_t expected = 1;
    bool failed = false, stopped = false;
    std::int64_t discarded = 0;
    std::string reason = "completed";
    std::optional<json> runnerError;  // from the runner's end message; cleanup re-folds state, so keep it apart
    Clock::time_point endDeadline = Clock::time_point::max();

    while (true) {
      if (stopFlag.load() || shutdown.load()) {
        std::string who;
        {
          std::lock_guard lk(stopMutex);
          who = stopFlag.load() ? stopBy : "engine shutdown";
        }
        if (auto st = record(event::kRunStopRequested, {{"requestedBy", who}}); !st) return st;
        stopped = !failed;
        if (!failed) reason = "stopped by " + who;
        break;
      }
      if (paused) {
        if (auto st = flush(); !st) return st;
        if (auto st = pollControl(std::chrono::milliseconds(50)); !st) return st;
        continue;
      }
      auto r = next(endDeadline);
      if (!r && r.error().code == ErrorCode::kInvalid) {
        // A frame that does not decode: recorded, never executed.
        if (auto st = record(event::kBusMessageRejected, {{"message", r.error().message}}); !st) return st;
        continue;
      }
      if (!r) return fail(r.error().code, r.error().message);
      if (!*r) {
        if (interrupted()) continue;  // handled at the top of the loop
        break;                        // the runner never sent `end` after a failure
      }
      bus::Message& m = **r;
      if (m.type == bus::MessageType::kOpen) {
        pendingReplies.push_back({bus::MessageType::kRefused, "", 0, {{"message", "engine busy with run " + state.runId}}});
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
          if (m.body.is_object() && m.body.contains("error")) runnerError = m.body["error"];
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
      const json& cmd = m.body;
      std::string type = text(cmd, "commandType");
      bool ok = false;
      // The params are moved out of the message into the commandStarted payload, then into
      // the state: decoded once, never copied.
      json params = json::object();
      if (cmd.is_object())
        if (auto it = m.body.find("params"); it != m.body.end()) params = std::move(*it);
      const bool pauses = type == "waitForResume" || type == "pause";
      json pauseMessage = pauses ? member(params, "message") : json();
      if (auto st = executeCommand(executor, text(cmd, "commandId", "c" + std::to_string(m.seq)), json(m.seq), type,
                                   std::move(params), member(cmd, "key"), "protocol", &ok);
          !st)
        return st;
      if (!ok) {
        failed = true;
        reason = "command failed";
        endDeadline = Clock::now() + options.endTimeout;
        if (auto st = flush(); !st) return st;  // tell the runner at once
      } else if (pauses) {
        json paus = {{"requestedBy", "protocol"}, {"source", "waitForResume"}, {"message", pauseMessage}};
        if (auto st = record(event::kRunPaused, paus); !st) return st;
        if (options.autoResume) {
          if (auto st = record(event::kRunResumed, {{"requestedBy", "auto-resume (engine option)"}, {"source", "engine"}});
              !st)
            return st;
        } else {
          paused = true;
        }
      }
    }
    // Commands still in the bus are never executed: count them.
    while (true) {
      auto m = server->tryReceive();
      if (!m || !*m) break;
      if ((**m).runId == state.runId && (**m).type == bus::MessageType::kCommand) discarded++;
    }
    paused = false;
    if (discarded > 0)
      if (auto st = record(event::kCommandsDiscarded, {{"count", discarded}}); !st) return st;

    // Cleanup reads the fold of the committed log, never anything else.
    std::string why = failed ? "run failed" : stopped ? "run stopped" : "run completed";
    bool cleanupOk = true;
    if (auto st = cleanup(executor, why, false, &cleanupOk); !st) return st;
    if (!cleanupOk && !failed && !stopped) {
      failed = true;
      reason = "cleanup failed";
    }

    RunStatus status = failed ? RunStatus::kFailed : stopped ? RunStatus::kStopped : RunStatus::kSucceeded;
    json fin = {{"status", toString(status)}, {"reason", reason}, {"counts", countsJson()},
                {"commits", runCommits + 1}};  // + the one that commits this event
    if (failed && (runnerError || state.lastError)) fin["error"] = runnerError ? *runnerError : *state.lastError;
    if (auto st = record(event::kRunFinished, fin); !st) return st;
    runOpen = false;
    pendingReplies.push_back({bus::MessageType::kFinished, state.runId, 0, summaryJson(state, &row)});
    if (auto st = flush(); !st) return st;
    stopFlag.store(false);
    spdlog::info("engine: run {} {}", state.runId, toString(status));
    spdlog::debug("engine: run {}: {} commits, {} of them on the log thread", state.runId, runCommits, groupCommits);
    return {};
  }

  json countsJson() const {
    return {{"started", state.commandsStarted}, {"succeeded", state.commandsSucceeded},
            {"failed", state.commandsFailed},   {"discarded", state.commandsDiscarded},
            {"cleanup", state.cleanupCommands}, {"cleanupFailed", state.cleanupFailed}};
  }

  // Records and executes one command. `index` is the protocol position (null for cleanup).
  Status executeCommand(Executor& executor, const std::string& commandId, const json& index, const std::string& type,
                        json params, const json& key, const char* intent, bool* ok) {
    // Objects built member by member: an initializer list copies every element.
    json started = json::object();
    started["commandId"] = commandId;
    started["index"] = index;
    started["commandType"] = type;
    started["params"] = std::move(params);
    started["intent"] = intent;
    if (!key.is_null()) started["key"] = key;
    if (auto st = record(event::kCommandStarted, std::move(started), commandId); !st) return st;
    // The start is durable before the robot acts on the command (kGroup: see
    // commitBeforeActing); otherwise it goes to the log thread with its group.
    if (auto st = commitBeforeActing(type, intent) ? flush() : handOff(false); !st) return st;

    // The params as recorded: the fold moved the started payload into the state.
    static const json kNoParams = json::object();
    auto recorded = state.currentCommand.is_object() ? state.currentCommand.find("params") : state.currentCommand.end();
    const json& recordedParams = recorded != state.currentCommand.end() ? *recorded : kNoParams;
    CommandOutcome out = executor.execute(state, commandId, type, recordedParams);
    *ok = out.ok;
    bool protocolCommand = index.is_number();
    if (out.ok) {
      json done = json::object();
      done["commandId"] = commandId;
      done["result"] = std::move(out.result);
      if (auto st = record(event::kCommandSucceeded, std::move(done), commandId); !st) return st;
      if (protocolCommand)
        pendingReplies.push_back({bus::MessageType::kOutcome, state.runId, index.get<std::uint64_t>(), {{"status", "succeeded"}}});
    } else {
      json err = out.error.toJson();
      if (auto st = record(event::kCommandFailed, {{"commandId", commandId}, {"error", err}}, commandId); !st) return st;
      if (protocolCommand)
        pendingReplies.push_back(
            {bus::MessageType::kOutcome, state.runId, index.get<std::uint64_t>(), {{"status", "failed"}, {"error", err}}});
    }
    return {};
  }

  // After the last outcome (or a stop or failure): fold the committed log, drop any tip in
  // the fixed trash, then home (or stay). Each move is a command with intent "cleanup".
  // `recovery`: the process that ran the run is gone; the robot knows nothing, so home first
  // and assume a tip may be on the pipette of the command that was in progress.
  Status cleanup(Executor& executor, const std::string& why, bool recovery, bool* ok) {
    if (auto st = flush(); !st) return st;
    // Cleanup reads the fold of the committed log. The follower has folded it as it was
    // committed, on its own connection and thread; it reads the tail now. Without one (or if
    // it failed) the run is folded here, one event at a time as read: memory stays flat.
    std::vector<FoldIssue> issues;
    RunState folded;
    bool haveFold = false;
    if (follower && !recovery) {
      auto f = follower->finish();
      follower.reset();
      if (f && f->state.lastSeq == state.lastSeq) {
        folded = std::move(f->state);
        issues = std::move(f->issues);
        haveFold = true;
      } else {
        spdlog::warn("engine: run {}: the log follower {}; folding the run from the log", state.runId,
                     f ? "stopped at event " + std::to_string(f->state.lastSeq) + " of " + std::to_string(state.lastSeq)
                       : "failed: " + f.error().message);
      }
    }
    if (!haveFold)
      if (auto st = log->forEachEvent(state.runId, [&](Event& e) -> Status {
            apply(folded, std::move(e), &issues);
            return {};
          });
          !st)
        return st;
    json assumptions = json::array();
    if (recovery && folded.currentCommandId) {
      const json params = member(folded.currentCommand, "params", json::object());
      std::string pid = text(params, "pipetteId");
      auto it = folded.pipettes.find(pid);
      if (it != folded.pipettes.end()) {
        it->second.tipUnknown = true;
        assumptions.push_back("command " + *folded.currentCommandId + " (" + text(folded.currentCommand, "commandType") +
                              ") started but has no outcome: pipette " + pid + " may have a tip attached");
      }
      folded.currentCommandId.reset();  // it will never get an outcome
    }
    for (auto& i : issues) assumptions.push_back("fold anomaly at event " + std::to_string(i.seq) + ": " + i.message);
    state = std::move(folded);

    std::string trash;
    for (auto& [id, lw] : state.labware)
      if (lw.placed.definition && std::find(lw.placed.definition->quirks.begin(), lw.placed.definition->quirks.end(),
                                            "fixedTrash") != lw.placed.definition->quirks.end())
        if (trash.empty() || id == "fixedTrash") trash = id;
    json drops = json::array();
    for (auto& [id, p] : state.pipettes)
      if (p.tip || p.tipUnknown) drops.push_back(id);
    bool homeFirst = recovery;
    for (auto& [id, p] : state.pipettes) homeFirst = homeFirst || p.tipUnknown;
    // Modules first: shakers stop and heaters go off before the gantry moves (docs/modules.md).
    auto moduleSteps = moduleCleanupCommands(state);
    json deactivate = json::array();
    for (auto& [type, params] : moduleSteps) deactivate.push_back({{"commandType", type}, {"moduleId", params["moduleId"]}});
    json plan = {{"reason", why},
                 {"deactivateModules", deactivate},
                 {"dropTips", drops},
                 {"trash", trash.empty() ? json() : json(trash)},
                 {"homeFirst", homeFirst},
                 {"postRun", options.postRun == EngineOptions::PostRun::kHome ? "home" : "stay"},
                 {"assumptions", assumptions}};
    if (auto st = record(event::kCleanupStarted, plan); !st) return st;

    if (recovery) {
      for (auto& [id, p] : state.pipettes) {
        if (!p.spec) continue;
        if (auto st = robot->attachInstrument(p.mount, p.spec); !st)
          spdlog::warn("engine: recovery: cannot attach {}: {}", id, st.error().message);
      }
    }
    auto step = [&](const std::string& type, json params) -> Status {
      bool stepOk = false;
      auto st = executeCommand(executor, "cleanup-" + std::to_string(++cleanupSeq), json(), type, params, json(),
                               "cleanup", &stepOk);
      if (!stepOk) *ok = false;
      return st;
    };
    for (auto& [type, params] : moduleSteps)
      if (auto st = step(type, params); !st) return st;
    if (homeFirst)
      if (auto st = step("home", json::object()); !st) return st;
    for (auto& id : drops) {
      const PipetteState* p = state.pipette(id.get<std::string>());
      if (!p) continue;
      if (trash.empty()) {
        *ok = false;
        continue;
      }
      if (p->tipUnknown || recovery)
        robot->assumeTip(p->mount, p->tip ? p->tip->length : (p->spec ? p->spec->defaultTipLength : 0));
      if (auto st = step("dropTip", {{"pipetteId", id}, {"labwareId", trash}, {"wellName", "A1"}}); !st) return st;
    }
    if (options.postRun == EngineOptions::PostRun::kHome)
      if (auto st = step("home", {{"afterRun", true}}); !st) return st;
    return flush();
  }

  Status refuse(const std::string& message) {
    spdlog::warn("engine: refused a run: {}", message);
    pendingReplies.push_back({bus::MessageType::kRefused, "", 0, {{"message", message}}});
    return flush();
  }

  // Closes runs left without a terminal event by a crashed process: cleanup from the
  // folded state (assuming a tip where the log cannot tell), then `interrupted`.
  Result<std::vector<std::string>> recover() {
    auto unfinished = log->unfinishedRuns();
    if (!unfinished) return tl::unexpected(unfinished.error());
    for (const auto& runId : *unfinished) {
      state = RunState();
      json lastEvent;
      if (auto st = log->forEachEvent(runId, [&](Event& e) -> Status {
            lastEvent = {{"seq", e.seq}, {"type", e.type}, {"ts", e.ts}};
            apply(state, std::move(e));
            return {};
          });
          !st)
        return tl::unexpected(st.error());
      state.runId = runId;
      json inProgress = state.currentCommandId ? json(*state.currentCommandId) : json();
      options.modules->beginRun();
      Executor executor(*robot, library, options.modules.get());
      bool cleanupOk = true;
      if (auto st = cleanup(executor, "recovery: the run was cut off (crash or power loss)", true, &cleanupOk); !st)
        return tl::unexpected(st.error());
      json fin = {{"status", "interrupted"},
                  {"reason", "the engine stopped before the run ended (crash or power loss); closed on reopening the log"},
                  {"lastEvent", lastEvent},
                  {"commandInProgress", inProgress},
                  {"cleanupSucceeded", cleanupOk},
                  {"counts", countsJson()}};
      if (auto st = record(event::kRunFinished, fin); !st) return tl::unexpected(st.error());
      if (auto st = flush(); !st) return tl::unexpected(st.error());
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
  if (!impl->options.modules) impl->options.modules = std::make_shared<hardware::ModuleHub>();
  auto recovered = impl->recover();
  if (!recovered) return tl::unexpected(recovered.error());
  auto server = bus::CommandServer::bind(ctx, options.endpoint, options.channel);
  if (!server) return fail(ErrorCode::kBus, server.error().message);
  impl->server = std::move(*server);
  if (options.controlEndpoint != "none") {
    std::string ep = options.controlEndpoint;
    if (ep.empty()) {
      auto derived = bus::controlEndpoint(options.endpoint);
      if (!derived) return fail(ErrorCode::kBus, derived.error().message);
      ep = *derived;
    }
    auto control = bus::ControlServer::bind(ctx, ep);
    if (!control) return fail(ErrorCode::kBus, control.error().message);
    impl->control = std::move(*control);
  }
  // Live events: PUB on eventsEndpoint, history (REQ/REP) beside it.
  if (!options.eventsEndpoint.empty()) {
    std::string hist = options.historyEndpoint;
    if (hist.empty()) {
      auto derived = bus::historyEndpoint(options.eventsEndpoint);
      if (!derived) return fail(ErrorCode::kBus, derived.error().message);
      hist = *derived;
    }
    auto pub = bus::EventPublisher::bind(ctx, options.eventsEndpoint, options.eventsHwm, options.eventsCurve.get());
    if (!pub) return fail(ErrorCode::kBus, pub.error().message);
    impl->events = std::move(*pub);
    auto history = HistoryServer::start(ctx, options.dbPath, hist, options.eventsCurve.get());
    if (!history) return tl::unexpected(history.error());
    impl->history = std::move(*history);
  }
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

bool Engine::requestStop(const std::string& requestedBy) { return impl_->requestStop(requestedBy); }

std::string Engine::controlEndpoint() const { return impl_->control ? impl_->control->endpoint() : std::string(); }
std::string Engine::eventsEndpoint() const { return impl_->events ? impl_->events->endpoint() : std::string(); }
std::string Engine::historyEndpoint() const { return impl_->history ? impl_->history->endpoint() : std::string(); }

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
