// Helpers for tests that watch a real engine's events, shared by test_engine and test_e2e: a
// follower collecting every live event on a thread of its own, a protocol run over the
// command channel, what the log holds for a run, and a check that the two agree.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "runrec/bus/channel.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/engine/history.hpp"
#include "runrec/runner/runner.hpp"

namespace runrec::test {

// Follows every run's live events (options.follow is set here) on its own thread, keeping
// each event's JSON, until the first runFinished, an error or destruction. `got`, `runId`
// and `result` belong to that thread until it has been joined; `received` may be read at any
// time.
struct EventFollower {
  std::unique_ptr<bus::EventSubscriber> sub;
  std::vector<nlohmann::json> got;
  std::atomic<std::size_t> received{0};  // got.size()
  std::string runId;                     // of the last event
  bus::Status result;
  std::thread thread;

  // `sleepPerEvent` > 0: a slow subscriber, which falls behind a fast run.
  EventFollower(bus::Context& ctx, const std::string& endpoint, bus::SubscribeOptions options,
                std::chrono::milliseconds sleepPerEvent = std::chrono::milliseconds(0)) {
    options.follow = true;
    auto s = bus::EventSubscriber::connect(ctx, endpoint, options);
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    sub = std::move(*s);
    thread = std::thread([this, sleepPerEvent] {
      result = sub->run([this, sleepPerEvent](const bus::RunEvent& e, const nlohmann::json& body) {
        if (sleepPerEvent.count() > 0) std::this_thread::sleep_for(sleepPerEvent);
        runId = e.runId;
        got.push_back(body);
        ++received;
        return e.type != "runFinished";
      });
    });
  }
  ~EventFollower() {
    sub->stop();
    if (thread.joinable()) thread.join();
  }
  EventFollower(const EventFollower&) = delete;
  EventFollower& operator=(const EventFollower&) = delete;
};

// Runs `protocolJson` (named `name`) as a runner does, over the command channel at `endpoint`.
inline runner::Result<runner::RunResult> runOverBus(bus::Context& ctx, const std::string& endpoint,
                                                    const nlohmann::json& protocolJson, const std::string& name,
                                                    std::chrono::seconds timeout) {
  auto protocol = runner::parseProtocol(protocolJson.dump(), name);
  REQUIRE(protocol.has_value());
  auto client = bus::CommandClient::connect(ctx, endpoint, bus::ChannelOptions{});
  REQUIRE(client.has_value());
  runner::RunOptions ro;
  ro.timeout = timeout;
  return runner::runProtocol(**client, *protocol, ro);
}

// Every event the log at `db` holds for `runId`, read through a read-only connection of its own.
inline std::vector<engine::Event> loggedEvents(const std::filesystem::path& db, const std::string& runId) {
  auto log = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(log.has_value());
  auto ev = (*log)->events(runId);
  REQUIRE(ev.has_value());
  return *ev;
}

// Checks that `got` is exactly the log's events of the run, in order: same seqs, types and
// bodies (as bus::eventJson gives them). Stops at the first event that differs.
inline void checkSameAsLog(const std::vector<nlohmann::json>& got, const std::vector<engine::Event>& log) {
  REQUIRE(got.size() == log.size());
  for (std::size_t i = 0; i < log.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i]["seq"] == log[i].seq);
    CHECK(got[i]["type"] == log[i].type);
    const nlohmann::json expected = bus::eventJson(engine::toRunEvent(log[i]));
    CHECK(got[i] == expected);
    if (got[i] != expected) break;
  }
}

}  // namespace runrec::test
