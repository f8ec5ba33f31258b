// The runrec command line, as a user runs it: real processes, real files, real sockets.
#include <doctest/doctest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sqlite3.h>

#include <fstream>
#include <random>
#include <thread>

#include "pipeline_support.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/state.hpp"
#include "support.hpp"

using namespace runrec;
using nlohmann::json;

extern char** environ;

namespace {

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// A `runrec engine` in the background; waits for it to exit on destruction.
struct EngineProcess {
  pid_t pid = -1;
  EngineProcess(const std::string& endpoint, const std::filesystem::path& db, int runs) {
    std::vector<std::string> args = {test::runrecPath(), "engine", "--listen", endpoint, "--db", db.string(),
                                     "--runs", std::to_string(runs)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
  }
  int wait() {
    int status = 0;
    for (int i = 0; i < 300; ++i) {  // up to 30 s
      if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -2;
  }
};

// A TCP port P on 127.0.0.1 such that P and P+1 are both free (the bus uses both).
int freePortPair() {
  auto bindable = [](int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  };
  for (int i = 0; i < 200; ++i) {
    int port = 20000 + (getpid() * 7 + i * 131) % 30000;
    if (bindable(port) && bindable(port + 1)) return port;
  }
  FAIL("no free pair of TCP ports");
  return 0;
}

}  // namespace

TEST_CASE("runrec run prints a summary, records the run, and runs/show read it back") {
  auto dir = test::tempDir("cli");
  auto proto = dir / "seed.json";
  auto db = dir / "runs.db";
  auto seed = test::runrec("seed -n 50 -o " + q(proto));
  REQUIRE(seed.exitCode == 0);
  auto run = test::runrec("run " + q(proto) + " --db " + q(db));
  INFO(run.err);
  REQUIRE(run.exitCode == 0);
  CHECK(run.out.find("Status     succeeded") != std::string::npos);
  CHECK(run.out.find("55 of 55 succeeded") != std::string::npos);

  auto runJson = test::runrec("run " + q(proto) + " --db " + q(db) + " --json");
  REQUIRE(runJson.exitCode == 0);
  json s = json::parse(runJson.out);
  for (auto key : {"runId", "status", "counts", "createdAt", "startedAt", "finishedAt", "durationSeconds",
                   "commandsPerSecond", "events", "protocolName"})
    CHECK_MESSAGE(s.contains(key), key);
  CHECK(s["counts"]["protocolCommands"] == 55);

  auto runs = test::runrec("runs --json --db " + q(db));
  REQUIRE(runs.exitCode == 0);
  json list = json::parse(runs.out);
  REQUIRE(list.size() == 2);
  CHECK(list[0]["runId"] == s["runId"]);  // newest first

  auto show = test::runrec("show " + s["runId"].get<std::string>().substr(0, 8) + " --json --db " + q(db));
  REQUIRE(show.exitCode == 0);
  json d = json::parse(show.out);
  REQUIRE(d["commands"].size() == 56);  // 55 protocol commands, then cleanup homes
  CHECK(d["commands"][55]["intent"] == "cleanup");
  CHECK(d["commands"][55]["commandType"] == "home");
  for (auto key : {"id", "commandType", "params", "status", "startedAt", "completedAt", "result", "error"})
    CHECK_MESSAGE(d["commands"][0].contains(key), key);

  auto text = test::runrec("show last --db " + q(db));
  REQUIRE(text.exitCode == 0);
  CHECK(text.out.find("touchTip") != std::string::npos);
  auto table = test::runrec("runs --db " + q(db));
  CHECK(table.out.find("succeeded") != std::string::npos);
}

TEST_CASE("an invalid protocol is rejected before anything is recorded") {
  auto dir = test::tempDir("cli-bad");
  auto db = dir / "runs.db";
  auto proto = dir / "bad.json";
  json p = test::readJson([&] {
    auto path = dir / "seed.json";
    REQUIRE(test::runrec("seed -n 3 -o " + q(path)).exitCode == 0);
    return path;
  }());
  p["commands"][4]["params"]["volume"] = "ten";
  p["commands"][4]["commandType"] = "aspirate";
  std::ofstream(proto) << p.dump();
  auto r = test::runrec("run " + q(proto) + " --db " + q(db));
  CHECK(r.exitCode == 2);
  CHECK(r.err.find("commands[4].params.volume") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(db));

  auto missing = test::runrec("run " + q(dir / "nope.json") + " --db " + q(db));
  CHECK(missing.exitCode == 2);
  CHECK(missing.err.find("nope.json") != std::string::npos);
}

TEST_CASE("bad arguments and unknown runs get clear errors") {
  auto dir = test::tempDir("cli-args");
  auto db = dir / "runs.db";
  CHECK(test::runrec("run").exitCode == 2);
  CHECK(test::runrec("run x.json --hwm 0").exitCode == 2);
  CHECK(test::runrec("frobnicate").exitCode == 2);
  auto noLog = test::runrec("runs --db " + q(db));
  CHECK(noLog.exitCode == 2);
  CHECK(noLog.err.find("no such log file") != std::string::npos);
  REQUIRE(test::runrec("seed -n 1 -o " + q(dir / "s.json")).exitCode == 0);
  REQUIRE(test::runrec("run " + q(dir / "s.json") + " --db " + q(db)).exitCode == 0);
  auto unknown = test::runrec("show deadbeef --db " + q(db));
  CHECK(unknown.exitCode == 2);
  CHECK(unknown.err.find("no run matching \"deadbeef\"") != std::string::npos);
  auto help = test::runrec("run --help");
  CHECK(help.exitCode == 0);
  CHECK(help.out.find("--hwm") != std::string::npos);
}

TEST_CASE("a damaged log gives a clear error naming the file") {
  auto dir = test::tempDir("cli-damaged");
  auto db = dir / "runs.db";
  std::ofstream(db) << std::string(5000, 'z');
  auto r = test::runrec("runs --db " + q(db));
  CHECK(r.exitCode == 2);
  CHECK(r.err.find(db.string()) != std::string::npos);
  CHECK(r.err.find("not a runrec log") != std::string::npos);
}

TEST_CASE("engine and runner in separate processes, over ipc:// and tcp://") {
  auto dir = test::tempDir("cli-proc");
  auto proto = dir / "seed.json";
  REQUIRE(test::runrec("seed -n 300 -o " + q(proto)).exitCode == 0);
  std::string endpoint;
  SUBCASE("ipc") { endpoint = "ipc://" + (dir / "engine.sock").string(); }
  SUBCASE("tcp") { endpoint = "tcp://127.0.0.1:" + std::to_string(freePortPair()); }
  auto db = dir / ("runs-" + endpoint.substr(0, 3) + ".db");
  EngineProcess engine(endpoint, db, 2);
  for (int i = 0; i < 2; ++i) {
    auto r = test::runrec("run " + q(proto) + " --connect " + endpoint + " --json --timeout 30");
    INFO(r.err);
    REQUIRE(r.exitCode == 0);
    CHECK(json::parse(r.out)["counts"]["succeeded"] == 305);
  }
  CHECK(engine.wait() == 0);
  auto runs = test::runrec("runs --json --db " + q(db));
  REQUIRE(runs.exitCode == 0);
  CHECK(json::parse(runs.out).size() == 2);
}

TEST_CASE("the shipped seed protocol is what `runrec seed` generates") {
  auto dir = test::tempDir("cli-seed");
  auto generated = dir / "seed.json";
  REQUIRE(test::runrec("seed -o " + q(generated)).exitCode == 0);
  auto shipped = std::filesystem::path(RUNREC_SOURCE_DIR) / "tools" / "protocols" / "seed_touch_tip.json";
  CHECK(test::readText(generated) == test::readText(shipped));
  json p = test::readJson(shipped);
  CHECK(p["schemaVersion"] == 8);
  CHECK(p["commands"].size() == 10005);
}

TEST_CASE("kill -9 at random moments loses nothing committed; the next engine closes the run as interrupted") {
  auto dir = test::tempDir("cli-kill");
  auto big = dir / "big.json";
  REQUIRE(test::runrec("seed -n 100000 -o " + q(big)).exitCode == 0);
  REQUIRE(test::runrec("seed -n 1 -o " + q(dir / "small.json")).exitCode == 0);
  const char* slow = std::getenv("RUNREC_SLOW");
  int kills = slow && std::string(slow) == "1" ? 100 : 5;
  std::mt19937 rng(4242);
  for (int k = 0; k < kills; ++k) {
    CAPTURE(k);
    auto db = dir / ("runs-" + std::to_string(k) + ".db");
    std::vector<std::string> args = {test::runrecPath(), "run", big.string(), "--db", db.string(), "--progress", "never"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
    // Watch the log as a reader would; what it saw committed must survive the kill.
    std::int64_t target = 20 + static_cast<std::int64_t>(rng() % 6000), seen = 0;
    for (int i = 0; i < 1000 && seen < target; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
      if (!log) continue;
      auto runs = (*log)->runs();
      if (runs && !runs->empty()) seen = (*log)->lastSeq(runs->front().runId).value_or(0);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    std::vector<engine::Event> before;
    std::string runId;
    {
      auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
      if (!log) {  // killed while the log was being created: nothing was committed
        INFO(log.error().message);
        REQUIRE(seen == 0);
        continue;
      }
      auto runs = (*log)->runs();
      REQUIRE(runs);
      if (runs->empty()) continue;  // killed before the run was created
      runId = runs->front().runId;
      before = *(*log)->events(runId);
    }
    REQUIRE(static_cast<std::int64_t>(before.size()) >= seen);
    for (size_t i = 0; i < before.size(); ++i) REQUIRE(before[i].seq == static_cast<std::int64_t>(i + 1));
    // Integrity: SQLite's own check of the whole file.
    {
      sqlite3* raw = nullptr;
      REQUIRE(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, nullptr);
      REQUIRE(sqlite3_step(st) == SQLITE_ROW);
      CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "ok");
      sqlite3_finalize(st);
      sqlite3_close(raw);
    }
    // The next run on this log recovers the killed one first.
    auto next = test::runrec("run " + q(dir / "small.json") + " --db " + q(db));
    CHECK(next.exitCode == 0);
    if (before.back().type == "runFinished") continue;
    CHECK(next.err.find("recorded it as interrupted") != std::string::npos);
    auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
    auto after = *(*log)->events(runId);
    REQUIRE(after.size() > before.size());
    for (size_t i = 0; i < before.size(); ++i) {
      REQUIRE(after[i].seq == before[i].seq);
      REQUIRE(after[i].type == before[i].type);
      REQUIRE(after[i].payload == before[i].payload);
    }
    CHECK(after.back().payload["status"] == "interrupted");
    // Recovery cleanup from the log: whatever tip the fold (or the command cut off) says
    // may be on is dropped in the trash.
    auto s = engine::fold(after);
    if (s.pipette("pipette")) CHECK_FALSE(s.pipette("pipette")->tip.has_value());
  }
}
