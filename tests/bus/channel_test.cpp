// Tests for the command channel over real ZeroMQ sockets (inproc, ipc, tcp): the credit window
// measured with a held engine, no lost commands across many runs, early finish, bad frames.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include "raw_engine.hpp"
#include "support.hpp"
#include "test_engine.hpp"

using namespace runrec::bus;
using namespace runrec::bus::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Transport kAllTransports[] = {Transport::kInproc, Transport::kIpc, Transport::kTcp};

ChannelOptions withHwm(int hwm) { return ChannelOptions{.hwm = hwm, .linger = 500ms}; }

std::unique_ptr<CommandServer> bindOrFail(Context& ctx, const std::string& e, ChannelOptions o) {
  auto s = CommandServer::bind(ctx, e, o);
  if (!s) FAIL("bind " << e << ": " << s.error().message);
  return std::move(*s);
}

std::unique_ptr<CommandClient> connectOrFail(Context& ctx, const std::string& e, ChannelOptions o) {
  auto c = CommandClient::connect(ctx, e, o);
  if (!c) FAIL("connect " << e << ": " << c.error().message);
  return std::move(*c);
}

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs one complete run of `n` commands on `client`; returns the summary.
nlohmann::json oneRun(CommandClient& client, int n) {
  auto id = client.open({{"protocol", {{"name", "test"}}}}, 5s);
  if (!id) FAIL("open: " << id.error().message);
  for (int i = 1; i <= n; ++i) {
    auto s = client.send(command(i), 5s);
    if (!s) FAIL("send " << i << ": " << s.error().message);
  }
  auto summary = client.finish({{"commands", n}, {"reason", "complete"}}, 5s);
  if (!summary) FAIL("finish: " << summary.error().message);
  return *summary;
}

void checkRunsComplete(const TestEngine& engine, int runs, int commands) {
  CHECK(engine.problems().empty());
  for (const auto& p : engine.problems()) MESSAGE(p);
  CHECK(engine.malformed().empty());
  CHECK(engine.stale() == 0);
  REQUIRE(engine.runs().size() == static_cast<std::size_t>(runs));
  for (const auto& run : engine.runs()) {
    CAPTURE(run.id);
    CHECK(run.ended);
    REQUIRE(run.seqs.size() == static_cast<std::size_t>(commands));
    bool inOrder = true;
    for (int i = 0; i < commands; ++i) {
      if (run.seqs[i] != static_cast<std::uint64_t>(i + 1) || run.indices[i] != i + 1) {
        inOrder = false;
      }
    }
    CHECK_MESSAGE(inOrder, "every command index must arrive exactly once, in order");
  }
}

}  // namespace

TEST_CASE("ARunCompletesOnEveryTransport") {
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto e = freshEndpoint(t);
    auto server = bindOrFail(ctx, e, withHwm(4));
    TestEngine engine(*server);
    auto client = connectOrFail(ctx, e, withHwm(4));
    std::vector<std::uint64_t> outcomeSeqs;
    client->onOutcome([&](const Message& m) {
      CHECK(typeOf(m) == "outcome");
      CHECK(m.body["status"] == "succeeded");
      outcomeSeqs.push_back(m.seq);
    });
    auto summary = oneRun(*client, 25);
    CHECK(summary["status"] == "succeeded");
    CHECK(summary["commands"] == 25);
    CHECK(client->sent() == 25);
    CHECK(client->completed() == 25);
    CHECK(client->inFlight() == 0);
    CHECK(client->maxInFlight() <= 4);
    REQUIRE(outcomeSeqs.size() == 25);
    for (std::size_t i = 0; i < outcomeSeqs.size(); ++i) CHECK(outcomeSeqs[i] == i + 1);
    client.reset();
    engine.stop();
    checkRunsComplete(engine, 1, 25);
    CHECK(engine.runs()[0].endBody["reason"] == "complete");
  }
}

TEST_CASE("BackpressureStopsTheRunnerAtExactlyTheWindow") {
  // The engine answers open, then stops receiving. A runner thread sends as fast as it can;
  // once it is blocked, the number of sends that returned must be exactly N.
  for (auto t : kAllTransports) {
    for (int n : {1, 4, 16}) {
      const std::string transport = name(t);
    CAPTURE(transport);
      CAPTURE(n);
      Context ctx;
      auto e = freshEndpoint(t);
      auto server = bindOrFail(ctx, e, withHwm(n));
      TestEngine engine(*server, {.hold = true});
      auto client = connectOrFail(ctx, e, withHwm(n));
      REQUIRE(client->window() == n);
      REQUIRE(client->open({{"protocol", nlohmann::json::object()}}, 5s));

      const int total = n + 10;
      std::atomic<int> returned{0};
      std::atomic<bool> done{false};
      std::optional<Error> failure;
      nlohmann::json summary;
      std::uint64_t maxSeen = 0;
      std::thread runner([&] {
        for (int i = 1; i <= total; ++i) {
          auto s = client->send(command(i), 10s);
          if (!s) {
            failure = s.error();
            break;
          }
          maxSeen = std::max(maxSeen, client->inFlight());
          ++returned;
        }
        auto f = client->finish({{"commands", total}}, 10s);
        if (f) summary = *f;
        else failure = f.error();
        done = true;
      });

      auto t0 = Clock::now();
      while (returned < n && secondsSince(t0) < 5) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(150ms);  // give it every chance to send one more
      const int whileHeld = returned;
      CHECK(whileHeld == n);
      CHECK_FALSE(done);
      CHECK(engine.received() == 0);  // held: nothing was taken off the socket

      engine.release();
      runner.join();
      CHECK_FALSE(failure.has_value());
      if (failure) MESSAGE(failure->message);
      CHECK(returned == total);
      CHECK(summary["commands"] == total);
      CHECK(client->completed() == static_cast<std::uint64_t>(total));
      CHECK(maxSeen <= static_cast<std::uint64_t>(n));
      CHECK(client->maxInFlight() == static_cast<std::uint64_t>(n));
      client.reset();
      engine.stop();
      checkRunsComplete(engine, 1, total);
    }
  }
}

TEST_CASE("NoCommandIsLostAcrossManyRunsWithFreshClients") {
  // The same server serves run after run; each run uses new client sockets that are closed
  // right after finish(). Every command index must arrive exactly once, in order.
  const int kRuns = runrec::test::rounds(50, 10);
  constexpr int kCommands = 200;
  for (auto t : kAllTransports) {
    for (int n : {1, 16}) {
      const std::string transport = name(t);
    CAPTURE(transport);
      CAPTURE(n);
      Context ctx;
      auto e = freshEndpoint(t);
      auto server = bindOrFail(ctx, e, withHwm(n));
      TestEngine engine(*server);
      auto t0 = Clock::now();
      for (int run = 0; run < kRuns; ++run) {
        CAPTURE(run);
        auto client = connectOrFail(ctx, e, withHwm(n));
        auto summary = oneRun(*client, kCommands);
        CHECK(summary["commands"] == kCommands);
        CHECK(client->completed() == kCommands);
        CHECK(client->maxInFlight() <= static_cast<std::uint64_t>(n));
      }
      double s = secondsSince(t0);
      MESSAGE(transport << " hwm " << n << ": " << kRuns * kCommands << " commands in " << s
                      << " s (" << static_cast<long>(kRuns * kCommands / s) << " round trips/s)");
      engine.stop();
      checkRunsComplete(engine, kRuns, kCommands);
    }
  }
}

TEST_CASE("TheRunnerMayConnectBeforeTheEngineBinds") {
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto e = freshEndpoint(t);
    auto client = connectOrFail(ctx, e, withHwm(4));
    std::this_thread::sleep_for(20ms);
    auto server = bindOrFail(ctx, e, withHwm(4));
    TestEngine engine(*server);
    auto summary = oneRun(*client, 10);
    CHECK(summary["commands"] == 10);
    client.reset();
    engine.stop();
    checkRunsComplete(engine, 1, 10);
  }
}

TEST_CASE("AnEngineThatEndsTheRunEarlyRejectsFurtherSends") {
  for (auto t : kAllTransports) {
    for (int n : {1, 4}) {
      const std::string transport = name(t);
    CAPTURE(transport);
      CAPTURE(n);
      constexpr std::uint64_t kFailAt = 5;
      Context ctx;
      auto e = freshEndpoint(t);
      auto server = bindOrFail(ctx, e, withHwm(n));
      TestEngine engine(*server, {.failAt = kFailAt});
      auto client = connectOrFail(ctx, e, withHwm(n));
      bool sawFailure = false;
      client->onOutcome([&](const Message& m) {
        if (m.body["status"] == "failed") {
          CHECK(m.seq == kFailAt);
          CHECK(m.body["error"]["errorType"] == "TestFailure");
          sawFailure = true;
        }
      });
      REQUIRE(client->open(nlohmann::json::object(), 5s));
      std::optional<Error> rejected;
      for (int i = 1; i <= 100; ++i) {
        // Once the failure is seen, kFinished is at most a moment behind it.
        if (sawFailure) std::this_thread::sleep_for(50ms);
        const bool failureSeenBefore = sawFailure;
        auto s = client->send(command(i), 5s);
        if (!s) {
          rejected = s.error();
          break;
        }
        CHECK_FALSE(failureSeenBefore);  // the next send after the failure must be rejected
      }
      REQUIRE(rejected.has_value());
      CHECK(codeIs(*rejected, ErrorCode::kRejected));
      CHECK(rejected->message.find("finished run") != std::string::npos);
      CHECK(client->sent() <= kFailAt + n);
      // Later sends stay rejected; finish() returns the summary without waiting.
      CHECK(codeIs(client->send(command(99)).error(), ErrorCode::kRejected));
      auto t0 = Clock::now();
      auto summary = client->finish({{"commands", client->sent()}}, 5s);
      REQUIRE(summary.has_value());
      CHECK(secondsSince(t0) < 0.5);
      CHECK((*summary)["status"] == "failed");
      CHECK((*summary)["commands"] == kFailAt);
      client.reset();
      engine.stop();
      CHECK(engine.problems().empty());
      REQUIRE(engine.runs().size() == 1);
      CHECK(engine.runs()[0].endedEarly);
      CHECK(engine.runs()[0].endBody.is_null());  // no kEnd was sent for an ended run
    }
  }
}

TEST_CASE("AMalformedFrameIsReportedAndTheServerKeepsWorking") {
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto e = freshEndpoint(t);
    auto server = bindOrFail(ctx, e, withHwm(4));
    {
      zmq::socket_t raw(ctx.zmq(), zmq::socket_type::push);
      raw.set(zmq::sockopt::linger, 1000);
      raw.connect(e);
      raw.send(zmq::str_buffer("not json"));
      raw.send(zmq::str_buffer(R"({"v":1,"type":"command","runId":"r","seq":"x","body":{}})"));
      raw.send(zmq::str_buffer(R"({"v":9,"type":"command","runId":"r","seq":1,"body":{}})"));
      raw.send(zmq::str_buffer("part one"), zmq::send_flags::sndmore);
      raw.send(zmq::str_buffer("part two"));
      const char* expected[] = {"not JSON", R"("seq": expected a non-negative integer, got "x")",
                                "unsupported version 9", "expected one frame, got a 2-part"};
      for (const char* needle : expected) {
        CAPTURE(needle);
        auto r = server->receive(5s);
        REQUIRE_FALSE(r.has_value());
        CHECK(codeIs(r.error(), ErrorCode::kMalformed));
        CAPTURE(r.error().message);
        CHECK(r.error().message.find(needle) != std::string::npos);
      }
      auto none = server->tryReceive();
      REQUIRE(none.has_value());
      CHECK_FALSE(none->has_value());
    }
    TestEngine engine(*server);
    auto client = connectOrFail(ctx, e, withHwm(4));
    CHECK(oneRun(*client, 10)["commands"] == 10);
    client.reset();
    engine.stop();
    checkRunsComplete(engine, 1, 10);
  }
}

TEST_CASE("AMalformedOutcomeIsReportedToTheRunner") {
  // A fake engine on raw sockets (PULL for commands, ROUTER for outcomes) answers badly.
  Context ctx;
  RawEngine engine(ctx);
  auto client = connectOrFail(ctx, engine.endpoint, withHwm(2));
  std::thread fake([&] {
    engine.acceptOpen("r1");
    (void)engine.receive();  // command 1
    engine.reply(R"({"v":1,"type":"outcome","runId":"r1","seq":1})");
    engine.reply(encode(Message{MessageType::kOutcome, "other-run", 1, {}}));
    engine.reply(encode(Message{MessageType::kOutcome, "r1", 7, {}}));
  });
  REQUIRE(client->open({}, 5s).value() == "r1");
  REQUIRE(client->send(command(1)));
  fake.join();
  std::this_thread::sleep_for(50ms);
  auto s = client->send(command(2));
  REQUIRE_FALSE(s);
  CHECK(codeIs(s.error(), ErrorCode::kMalformed));
  CHECK(s.error().message.find(R"("body": missing)") != std::string::npos);
  // The next one: "other-run" is ignored, seq 7 is out of order.
  s = client->send(command(2));
  REQUIRE_FALSE(s);
  CHECK(codeIs(s.error(), ErrorCode::kMalformed));
  CHECK(s.error().message.find("out of order") != std::string::npos);
  CHECK(client->sent() == 1);
  CHECK(client->completed() == 0);
}

TEST_CASE("OpensAreAnsweredInTheOrderTheyArrived") {
  // The engine reads two opens before answering either: each runner still gets its own run.
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto e = freshEndpoint(t);
    auto server = bindOrFail(ctx, e, withHwm(2));
    auto a = connectOrFail(ctx, e, withHwm(2));
    auto b = connectOrFail(ctx, e, withHwm(2));
    Result<std::string> idA = tl::unexpected(Error{ErrorCode::kIo, "not run"});
    Result<std::string> idB = idA;
    std::thread ta([&] { idA = a->open({}, 5s); });
    std::thread tb([&] { idB = b->open({}, 5s); });
    for (int i = 0; i < 2; ++i) {
      auto r = server->receive(5s);
      REQUIRE(r);
      REQUIRE(r->has_value());
      CHECK(typeOf(**r) == "open");
    }
    REQUIRE(server->reply(Message{MessageType::kOpened, "first", 0, {}}, 5s));
    REQUIRE(server->reply(Message{MessageType::kOpened, "second", 0, {}}, 5s));
    ta.join();
    tb.join();
    REQUIRE(idA);
    REQUIRE(idB);
    CHECK(*idA != *idB);
    // Each runner's command carries its run id, and its outcome comes back to it alone.
    for (auto* c : {a.get(), b.get()}) {
      REQUIRE(c->send(command(1), 5s));
      auto r = server->receive(5s);
      REQUIRE(r);
      REQUIRE(r->has_value());
      CHECK(typeOf(**r) == "command");
      const std::string runId = (*r)->runId;
      REQUIRE(server->reply(Message{MessageType::kOutcome, runId, 1, {}}, 5s));
      Result<nlohmann::json> summary = tl::unexpected(Error{ErrorCode::kIo, "not run"});
      std::thread finisher([&] { summary = c->finish({}, 5s); });
      auto end = server->receive(5s);
      REQUIRE(end);
      REQUIRE(end->has_value());
      CHECK(typeOf(**end) == "end");
      CHECK((*end)->runId == runId);
      REQUIRE(server->reply(Message{MessageType::kFinished, runId, 1, {{"who", runId}}}, 5s));
      finisher.join();
      REQUIRE(summary);
      CHECK(c->completed() == 1);
      CHECK((*summary)["who"] == (c == a.get() ? *idA : *idB));
    }
  }
}

TEST_CASE("AnOpenedThatArrivesAfterOpenTimedOutIsNotTakenForTheNextOpen") {
  Context ctx;
  auto e = freshEndpoint(Transport::kIpc);
  auto server = bindOrFail(ctx, e, withHwm(2));
  auto client = connectOrFail(ctx, e, withHwm(2));
  auto first = client->open({}, 100ms);  // the engine reads it but does not answer in time
  REQUIRE_FALSE(first);
  CHECK(codeIs(first.error(), ErrorCode::kTimeout));
  Result<std::string> second = tl::unexpected(Error{ErrorCode::kIo, "not run"});
  std::thread runner([&] { second = client->open({}, 5s); });
  for (int i = 0; i < 2; ++i) {
    auto r = server->receive(5s);
    REQUIRE(r);
    REQUIRE(r->has_value());
  }
  REQUIRE(server->reply(Message{MessageType::kOpened, "late", 0, {}}, 5s));
  REQUIRE(server->reply(Message{MessageType::kOpened, "fresh", 0, {}}, 5s));
  runner.join();
  REQUIRE(second);
  CHECK(*second == "fresh");
}

TEST_CASE("ReplyForARunNobodyOpenedIsClosedAtOnce") {
  Context ctx;
  auto server = bindOrFail(ctx, freshEndpoint(Transport::kIpc), withHwm(4));
  auto t0 = Clock::now();
  auto s = server->reply(Message{MessageType::kOutcome, "r", 1, {{"status", "succeeded"}}}, 2s);
  REQUIRE_FALSE(s);
  CHECK(codeIs(s.error(), ErrorCode::kClosed));
  CHECK(secondsSince(t0) < 0.5);
  CHECK(codeIs(server->reply(Message{MessageType::kOpened, "r", 0, {}}, 2s).error(),
               ErrorCode::kClosed));
  CHECK(codeIs(server->reply(Message{MessageType::kCommand, "r", 1, {}}, 2s).error(),
               ErrorCode::kMalformed));
}

TEST_CASE("ReplyToARunnerThatWentAwayReturnsClosedWithinTheTimeout") {
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto e = freshEndpoint(t);
    auto server = bindOrFail(ctx, e, withHwm(4));
    std::string runId;
    {
      auto client = connectOrFail(ctx, e, ChannelOptions{.hwm = 4, .linger = 0ms});
      std::optional<Error> engineError;
      std::thread engineSide([&] {
        auto r = server->receive(5s);
        if (!r || !*r) {
          engineError = r ? Error{ErrorCode::kTimeout, "no open"} : r.error();
          return;
        }
        auto s = server->reply(Message{MessageType::kOpened, "gone-1", 0, {}}, 5s);
        if (!s) engineError = s.error();
      });
      auto id = client->open({}, 5s);
      engineSide.join();
      REQUIRE_FALSE(engineError.has_value());
      REQUIRE(id);
      runId = *id;
    }  // the runner is gone without finishing
    std::this_thread::sleep_for(50ms);
    auto t0 = Clock::now();
    auto s = server->reply(Message{MessageType::kOutcome, runId, 1, {{"status", "succeeded"}}},
                           200ms);
    double took = secondsSince(t0);
    REQUIRE_FALSE(s);
    CHECK(codeIs(s.error(), ErrorCode::kClosed));
    CHECK(s.error().message.find("no runner") != std::string::npos);
    CHECK(took >= 0.19);
    CHECK(took < 1.0);
  }
}

TEST_CASE("OpenTimesOutWhenThereIsNoEngine") {
  for (auto t : kAllTransports) {
    const std::string transport = name(t);
    CAPTURE(transport);
    Context ctx;
    auto client = connectOrFail(ctx, freshEndpoint(t), ChannelOptions{.hwm = 4, .linger = 0ms});
    auto t0 = Clock::now();
    auto r = client->open({{"protocol", nlohmann::json::object()}}, 200ms);
    double took = secondsSince(t0);
    REQUIRE_FALSE(r);
    CHECK(codeIs(r.error(), ErrorCode::kTimeout));
    CAPTURE(r.error().message);
    CHECK(r.error().message.find("200 ms") != std::string::npos);
    CHECK(took >= 0.19);
    CHECK(took < 1.0);
  }
}

TEST_CASE("ARefusedOpenIsRejected") {
  Context ctx;
  auto e = freshEndpoint(Transport::kIpc);
  auto server = bindOrFail(ctx, e, withHwm(4));
  TestEngine engine(*server, {.refuseOpen = true});
  auto client = connectOrFail(ctx, e, withHwm(4));
  auto r = client->open({}, 5s);
  REQUIRE_FALSE(r);
  CHECK(codeIs(r.error(), ErrorCode::kRejected));
  CHECK(r.error().message.find("engine busy") != std::string::npos);
  CHECK(codeIs(client->send(command(1)).error(), ErrorCode::kClosed));
}

TEST_CASE("SendAndFinishTimeOutWhileTheEngineIsHeld") {
  Context ctx;
  auto e = freshEndpoint(Transport::kTcp);
  auto server = bindOrFail(ctx, e, withHwm(2));
  TestEngine engine(*server, {.hold = true});
  auto client = connectOrFail(ctx, e, ChannelOptions{.hwm = 2, .linger = 0ms});
  REQUIRE(client->open({}, 5s));
  CHECK(client->send(command(1), 100ms));
  CHECK(client->send(command(2), 100ms));
  auto t0 = Clock::now();
  auto s = client->send(command(3), 100ms);
  REQUIRE_FALSE(s);
  CHECK(codeIs(s.error(), ErrorCode::kTimeout));
  CHECK(secondsSince(t0) < 1.0);
  CHECK(client->sent() == 2);  // a failed send sent nothing
  auto f = client->finish({}, 100ms);
  REQUIRE_FALSE(f);
  CHECK(codeIs(f.error(), ErrorCode::kTimeout));
  // Released, the run still completes: the end that was sent is answered.
  engine.release();
  auto again = client->finish({}, 5s);
  REQUIRE(again.has_value());
  CHECK((*again)["commands"] == 2);
}

TEST_CASE("SendBeforeOpenAndFinishWithoutARunAreErrors") {
  Context ctx;
  auto client = connectOrFail(ctx, freshEndpoint(Transport::kInproc), withHwm(1));
  CHECK(codeIs(client->send(command(1)).error(), ErrorCode::kClosed));
  CHECK(codeIs(client->finish({}).error(), ErrorCode::kClosed));
}

TEST_CASE("BindingAnEndpointInUseFails") {
  Context ctx;
  auto e = freshEndpoint(Transport::kTcp);
  auto first = bindOrFail(ctx, e, withHwm(1));
  auto second = CommandServer::bind(ctx, e, withHwm(1));
  REQUIRE_FALSE(second);
  CHECK(codeIs(second.error(), ErrorCode::kIo));
  CHECK(second.error().message.find(e) != std::string::npos);
}

TEST_CASE("ReceiveAlsoEndsWhenTheCallersDescriptorBecomesReadable") {
  // The engine waits for the bus and for its log thread's commit at once (an eventfd).
  Context ctx;
  auto server = bindOrFail(ctx, freshEndpoint(Transport::kInproc), withHwm(4));
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  // Not readable: the whole timeout passes.
  auto t0 = Clock::now();
  auto r = server->receive(100ms, efd);
  REQUIRE(r.has_value());
  CHECK_FALSE(r->has_value());
  CHECK(secondsSince(t0) >= 0.09);
  // Made readable by another thread while the server waits: the wait ends early, with no message.
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    const std::uint64_t one = 1;
    CHECK(::write(efd, &one, sizeof one) == sizeof one);
  });
  t0 = Clock::now();
  r = server->receive(10s, efd);
  writer.join();
  REQUIRE(r.has_value());
  CHECK_FALSE(r->has_value());
  CHECK(secondsSince(t0) < 5.0);
  ::close(efd);
}
