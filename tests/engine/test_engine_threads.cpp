// The engine's threads all at once, for ThreadSanitizer (docs/hardening.md): while the
// writer thread runs a protocol, other threads ask for status, pause, resume and stop over
// the control socket, follow the live events, read history, call requestStop(),
// hold()/release() and requestShutdown(). Each case also checks what the threads saw, so
// it is a test in the plain build too.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runrec/bus/control.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/history.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "support/live_events.hpp"

using namespace runrec;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// An engine with control, live events and history on inproc endpoints, serving until
// destroyed.
struct ThreadedEngine {
  bus::Context ctx;
  std::filesystem::path db;
  std::string endpoint, control, events;
  std::unique_ptr<engine::Engine> eng;

  ThreadedEngine(const char* name, int maxRuns = -1) {
    db = test::tempDir(std::string("threads-") + name) / "runrec.db";
    static int n = 0;
    endpoint = "inproc://threads-" + std::string(name) + "-" + std::to_string(++n);
    engine::EngineOptions eo;
    eo.dbPath = db;
    eo.endpoint = endpoint;
    eo.maxRuns = maxRuns;
    eo.eventsEndpoint = endpoint + ".events";
    eo.channel.hwm = 4;
    auto e = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
    REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
    eng = std::move(*e);
    control = eng->controlEndpoint();
    events = eng->eventsEndpoint();
    REQUIRE(!control.empty());
    REQUIRE(!events.empty());
    eng->start();
  }
  ~ThreadedEngine() {
    if (eng) eng->requestShutdown();
  }
  runner::Result<runner::RunResult> run(const json& protocolJson) {
    return test::runOverBus(ctx, endpoint, protocolJson, "threads.json", std::chrono::seconds(120));
  }
  json ask(const std::string& action, const std::string& who = "threads-test") {
    auto a = bus::controlRequest(ctx, control, {{"action", action}, {"requestedBy", who}}, 30s);
    REQUIRE_MESSAGE(a.has_value(), (a ? "" : a.error().message));
    return *a;
  }
  std::vector<engine::Event> logged(const std::string& runId) { return test::loggedEvents(db, runId); }
};

}  // namespace

TEST_CASE("control, live events and history from other threads while the writer thread runs a protocol") {
  ThreadedEngine e("all");
  // A small HWM: the follower may fall behind and backfill from history.
  test::EventFollower follower(e.ctx, e.events, {.rcvhwm = 50});
  std::this_thread::sleep_for(200ms);  // the subscription reaches the engine

  std::atomic<bool> done{false};
  runner::Result<runner::RunResult> result = tl::unexpected(runner::Error{runner::ErrorCode::kBus, "not run"});
  std::thread runnerThread([&] {
    result = e.run(runner::makeSeedProtocol(2000));
    done.store(true);
  });

  // Control: status while running (counts never go back), one pause and resume.
  std::thread controlThread([&] {
    long last = 0;
    bool pausedOnce = false;
    while (!done.load()) {
      json st = e.ask("status");
      if (st["run"].is_object()) {
        long started = st["run"]["counts"]["started"].get<long>();
        CHECK(started >= last);
        last = started;
        if (!pausedOnce && started > 20) {
          CHECK(e.ask("pause")["ok"] == true);
          std::this_thread::sleep_for(20ms);
          CHECK(e.ask("status")["run"]["paused"] == true);
          CHECK(e.ask("resume")["ok"] == true);
          pausedOnce = true;
        }
      }
      std::this_thread::sleep_for(1ms);
    }
  });

  // History: the run list and pages of the newest run, read while it is being written.
  std::atomic<int> pagesRead{0};
  std::thread historyThread([&] {
    auto h = bus::HistoryClient::connect(e.ctx, e.events + ".history", 30s);
    REQUIRE(h.has_value());
    while (!done.load()) {
      auto runs = (*h)->runs(5);
      REQUIRE_MESSAGE(runs.has_value(), (runs ? "" : runs.error().message));
      if (!(*runs)["runs"].empty()) {
        std::string id = (*runs)["runs"][0]["runId"];
        auto page = (*h)->events(id, 1, 100);
        REQUIRE_MESSAGE(page.has_value(), (page ? "" : page.error().message));
        std::int64_t seq = 0;
        for (auto& ev : (*page)["events"]) CHECK(ev["seq"].get<std::int64_t>() == ++seq);  // in order, no hole
        pagesRead++;
      }
      std::this_thread::sleep_for(1ms);
    }
  });

  runnerThread.join();
  controlThread.join();
  historyThread.join();
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  CHECK(result->succeeded());
  follower.thread.join();
  REQUIRE_MESSAGE(follower.result.has_value(), (follower.result ? "" : follower.result.error().message));
  auto log = e.logged(result->runId);
  test::checkSameAsLog(follower.got, log);
  int paused = 0, resumed = 0;
  for (auto& ev : log) {
    paused += ev.type == "runPaused" && ev.payload["requestedBy"] == "threads-test";
    resumed += ev.type == "runResumed" && ev.payload["requestedBy"] == "threads-test";
  }
  CHECK(paused == 1);
  CHECK(resumed == 1);
  CHECK(pagesRead.load() > 0);
}

TEST_CASE("stop from two threads at once (control and requestStop) ends the run stopped once; shutdown from a third") {
  ThreadedEngine e("stop");
  runner::Result<runner::RunResult> result = tl::unexpected(runner::Error{runner::ErrorCode::kBus, "not run"});
  std::atomic<bool> opened{false};
  // Long enough that the stops land mid-run in any build; fewer touches under the sanitizers.
  std::thread runnerThread([&] { result = e.run(runner::makeSeedProtocol(test::rounds(20000, 3000))); });
  // Wait until the run has started commands (counted by the engine), then stop it twice.
  for (int i = 0; i < 2000; ++i) {
    json st = e.ask("status");
    if (st["run"].is_object() && st["run"]["counts"]["started"].get<long>() > 10) {
      opened.store(true);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(opened.load());
  std::atomic<int> firsts{0};
  std::thread viaControl([&] {
    json a = e.ask("stop", "control-thread");
    if (a["ok"] == true) {
      if (a["alreadyStopping"] == false) firsts++;
    } else {
      CHECK(a["error"] == "no run in progress");  // it arrived after the other stop ended the run
    }
  });
  std::thread viaCall([&] {
    if (e.eng->requestStop("signal-thread")) firsts++;
  });
  viaControl.join();
  viaCall.join();
  CHECK(firsts.load() >= 1);  // one of the two stopped the run (the other may come after it ended)
  runnerThread.join();
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  CHECK(result->summary["status"] == "stopped");
  auto log = e.logged(result->runId);
  int stopEvents = 0;
  std::string who;
  for (auto& ev : log)
    if (ev.type == "runStopRequested") {
      stopEvents++;
      who = ev.payload["requestedBy"];
    }
  CHECK(stopEvents == 1);
  CHECK((who == "control-thread" || who == "signal-thread"));
  CHECK(log.back().type == "runFinished");

  // Idle engine: hold and release from one thread, shutdown from another; wait() returns.
  std::thread holder([&] {
    e.eng->hold();
    std::this_thread::sleep_for(20ms);
    e.eng->release();
  });
  std::thread stopper([&] {
    std::this_thread::sleep_for(10ms);
    e.eng->requestShutdown();
  });
  holder.join();
  stopper.join();
  auto st = e.eng->wait();
  CHECK_MESSAGE(st.has_value(), (st ? "" : st.error().message));
}
