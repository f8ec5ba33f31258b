// Live events end to end: a real engine publishes; subscribers (fast and slow, early and
// late, the CLI and the Python example) each end with every event of the run, in order,
// exactly once; history answers hostile input with errors and keeps serving.
#include <doctest/doctest.h>

#include <atomic>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <sstream>
#include <thread>

#include "pipeline_support.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/history.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "support/live_events.hpp"

extern char** environ;

using namespace runrec;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string ipcName(const char* what) {
  static int n = 0;
  return "ipc:///tmp/runrec-e2e-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(++n) + ".events";
}

// An engine publishing on an ipc event endpoint, serving runs until destroyed.
struct EventEngine {
  bus::Context ctx;
  std::filesystem::path db;
  std::string endpoint, events;
  std::unique_ptr<engine::Engine> eng;

  explicit EventEngine(const char* name, int eventsHwm = 10000, int maxRuns = -1) {
    db = test::tempDir(std::string("sub-") + name) / "runrec.db";
    static int n = 0;
    endpoint = "inproc://sub-" + std::to_string(++n);
    events = ipcName(name);
    engine::EngineOptions eo;
    eo.dbPath = db;
    eo.endpoint = endpoint;
    eo.maxRuns = maxRuns;
    eo.eventsEndpoint = events;
    eo.eventsHwm = eventsHwm;
    auto e = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
    REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
    eng = std::move(*e);
    CHECK(eng->eventsEndpoint() == events);
    CHECK(eng->historyEndpoint() == events + ".history");
    eng->start();
  }
  ~EventEngine() {
    if (eng) eng->requestShutdown();
  }
  runner::RunResult run(const json& protocolJson) {
    auto result = test::runOverBus(ctx, endpoint, protocolJson, "sub.json", std::chrono::seconds(60));
    REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
    return *result;
  }
  std::vector<engine::Event> logged(const std::string& runId) { return test::loggedEvents(db, runId); }
};

pid_t spawn(const std::vector<std::string>& args, const std::filesystem::path& out) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

// Waits for a child up to `timeout`; kills it after that. Returns its exit code (-1: killed).
int waitFor(pid_t pid, std::chrono::seconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(20ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

std::vector<json> jsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("four subscribers, one slow: each ends with every event of the run, in order, exactly once") {
  // Small HWMs on both sides so the slow subscriber really falls behind and must backfill.
  EventEngine e("four", /*eventsHwm=*/50);
  std::vector<std::unique_ptr<test::EventFollower>> subs;
  // The slow one takes longer per event than the engine does, in any build.
  const std::chrono::milliseconds slow{test::rounds(5, 10)};
  for (int i = 0; i < 4; ++i)
    subs.push_back(std::make_unique<test::EventFollower>(e.ctx, e.events, bus::SubscribeOptions{.rcvhwm = 50},
                                                         i == 3 ? slow : 0ms));
  std::this_thread::sleep_for(300ms);  // subscriptions reach the engine
  auto started = std::chrono::steady_clock::now();
  auto result = e.run(runner::makeSeedProtocol(1000));
  double runSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::size_t slowHadWhenRunEnded = subs[3]->received.load();
  CHECK(result.succeeded());
  for (auto& s : subs) s->thread.join();
  auto log = e.logged(result.runId);
  MESSAGE("run: " << log.size() << " events in " << runSeconds << " s");
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(subs[i]->result.has_value(), (subs[i]->result ? "" : subs[i]->result.error().message));
    CHECK(subs[i]->runId == result.runId);
    test::checkSameAsLog(subs[i]->got, log);
    auto st = subs[i]->sub->stats();
    MESSAGE("subscriber " << i << ": live " << st.fromLive << ", history " << st.fromHistory << ", gaps " << st.gaps
                          << ", duplicates " << st.duplicates);
  }
  // The slow one fell behind its HWM during the run and backfilled.
  CHECK(subs[3]->sub->stats().fromHistory > 0);
  // The engine did not wait for it: the run ended while it was still behind.
  MESSAGE("the slow subscriber had " << slowHadWhenRunEnded << " of " << log.size()
                                     << " events when the run ended");
  CHECK(slowHadWhenRunEnded < log.size());
}

TEST_CASE("a subscriber that joins after the run reads it all from history; from-seq starts later") {
  EventEngine e("late");
  auto result = e.run(runner::makeSeedProtocol(30));
  auto log = e.logged(result.runId);
  for (std::int64_t from : {std::int64_t{1}, std::int64_t{10}}) {
    auto s = bus::EventSubscriber::connect(e.ctx, e.events, bus::SubscribeOptions{.runId = result.runId, .fromSeq = from,
                                                                                   .follow = true, .pageSize = 7});
    REQUIRE(s.has_value());
    std::vector<json> got;
    auto st = (*s)->run([&](const bus::RunEvent&, const json& body) {
      got.push_back(body);
      return true;
    });
    REQUIRE(st.has_value());
    test::checkSameAsLog(got, std::vector<engine::Event>(log.begin() + (from - 1), log.end()));
  }
}

TEST_CASE("history lists runs and refuses an unknown run clearly") {
  EventEngine e("runs");
  auto r1 = e.run(runner::makeSeedProtocol(2));
  auto r2 = e.run(runner::makeSeedProtocol(3));
  auto h = bus::HistoryClient::connect(e.ctx, e.events + ".history");
  REQUIRE(h.has_value());
  auto runs = (*h)->runs();
  REQUIRE_MESSAGE(runs.has_value(), (runs ? "" : runs.error().message));
  REQUIRE((*runs)["runs"].size() == 2);
  CHECK((*runs)["runs"][0]["runId"] == r2.runId);  // newest first
  CHECK((*runs)["runs"][1]["runId"] == r1.runId);
  CHECK((*runs)["runs"][0]["finished"] == true);
  CHECK((*runs)["runs"][0]["status"] == "succeeded");
  CHECK((*runs)["runs"][0]["lastSeq"] == e.logged(r2.runId).size());
  auto unknown = (*h)->events("no-such-run", 1, 10);
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().code == bus::ErrorCode::kRejected);
  CHECK(unknown.error().message == "unknown run \"no-such-run\"");
  auto sub = bus::EventSubscriber::connect(e.ctx, e.events, bus::SubscribeOptions{.runId = "no-such-run", .follow = true});
  REQUIRE(sub.has_value());
  auto st = (*sub)->run([](const bus::RunEvent&, const json&) { return true; });
  REQUIRE_FALSE(st.has_value());
  CHECK(st.error().message == "unknown run \"no-such-run\"");
}

TEST_CASE("hostile input: history answers random bytes and oversized frames with errors; junk on the event socket is dropped; both keep serving") {
  EventEngine e("hostile");
  auto r = e.run(runner::makeSeedProtocol(2));
  std::string hist = e.events + ".history";
  auto h = bus::HistoryClient::connect(e.ctx, hist, 2s);
  REQUIRE(h.has_value());
  std::mt19937 rng(12345);
  for (int i = 0; i < 200; ++i) {
    std::string junk(rng() % 300, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    auto a = (*h)->raw(junk);
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().code == bus::ErrorCode::kRejected);
    CHECK(a.error().message.rfind("history request: ", 0) == 0);
  }
  auto big = (*h)->raw(std::string(100 * 1024, '{'));
  REQUIRE_FALSE(big.has_value());
  CHECK(big.error().message.find("too long") != std::string::npos);
  // Beyond 1 MiB ZeroMQ drops the connection: the client times out, the server carries on.
  auto huge = (*h)->raw(std::string(2 * 1024 * 1024, 'x'));
  REQUIRE_FALSE(huge.has_value());
  CHECK(huge.error().code == bus::ErrorCode::kTimeout);
  // Random bytes straight into the event socket (not even ZMTP): the peer is dropped.
  for (int i = 0; i < 20; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = e.events.substr(6);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string junk(1 + rng() % 5000, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    (void)::write(fd, junk.data(), junk.size());
    ::close(fd);
  }
  auto ok = (*h)->events(r.runId, 1, 5);
  REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
  CHECK((*ok)["events"].size() == 5);
  // And the engine still records runs.
  CHECK(e.run(runner::makeSeedProtocol(2)).succeeded());
}

TEST_CASE("runrec subscribe prints the run as JSON Lines; an unknown run is exit 2") {
  EventEngine e("cli");
  auto r = e.run(runner::makeSeedProtocol(20));
  auto log = e.logged(r.runId);
  auto p = test::runrec("subscribe --connect " + e.events + " --run " + r.runId.substr(0, 8));
  REQUIRE_MESSAGE(p.exitCode == 0, p.err);
  test::checkSameAsLog(jsonLines(p.out), log);
  auto last = test::runrec("subscribe --connect " + e.events + " --run last --from-seq 5 --follow");
  REQUIRE_MESSAGE(last.exitCode == 0, last.err);
  test::checkSameAsLog(jsonLines(last.out), std::vector<engine::Event>(log.begin() + 4, log.end()));
  auto unknown = test::runrec("subscribe --connect " + e.events + " --run zzzz");
  CHECK(unknown.exitCode == 2);
  CHECK(unknown.err.find("unknown run \"zzzz\"") != std::string::npos);
  auto neither = test::runrec("subscribe --connect " + e.events);
  CHECK(neither.exitCode == 2);
}

TEST_CASE("the Python example follows a run live (pyzmq, no runrec code)") {
  std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  if (std::system((python + " -c 'import zmq' >/dev/null 2>&1").c_str()) != 0) {
    MESSAGE("skipped: python3-zmq is not installed (tools/install-deps.sh installs it)");
    return;
  }
  EventEngine e("python");
  auto out = test::tempDir("python") / "out.jsonl";
  std::string script = std::string(RUNREC_SOURCE_DIR) + "/examples/python/follow_run.py";
  pid_t pid = spawn({python, script, e.events, "next"}, out);
  std::this_thread::sleep_for(1500ms);  // the interpreter starts and subscribes
  auto r = e.run(runner::makeSeedProtocol(300));
  int rc = waitFor(pid, 30s);
  CHECK(rc == 0);
  test::checkSameAsLog(jsonLines(test::readText(out)), e.logged(r.runId));
  // And a run that is over: read from history alone.
  pid = spawn({python, script, e.events, "last"}, out);
  CHECK(waitFor(pid, 30s) == 0);
  test::checkSameAsLog(jsonLines(test::readText(out)), e.logged(r.runId));
}
