// Tests for live events: endpoint derivation, topic scheme, event and history codecs, and
// the subscriber's late join, gap backfill and tail check against a fake history server
// over real ZeroMQ sockets.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "runrec/bus/events.hpp"

using namespace runrec::bus;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

RunEvent ev(const std::string& run, std::int64_t seq, const std::string& type = "commandSucceeded") {
  return {run, seq, type, "2026-01-01T00:00:00.000000Z", type.rfind("command", 0) == 0 ? "c" + std::to_string(seq) : "",
          {{"n", seq}}};
}

// A history server over an in-memory log, and a publisher the test drives by hand.
struct FakeEngine {
  Context& ctx;
  std::string endpoint;
  std::mutex mutex;
  std::map<std::string, std::vector<RunEvent>> log;  // run -> events 1..n
  std::vector<std::string> order;                     // runs, oldest first
  std::unique_ptr<EventPublisher> pub;
  std::unique_ptr<HistoryResponder> rep;
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0};
  std::thread thread;

  FakeEngine(Context& c, const std::string& ep) : ctx(c), endpoint(ep) {
    auto p = EventPublisher::bind(ctx, ep, 1000);
    REQUIRE_MESSAGE(p.has_value(), (p ? "" : p.error().message));
    pub = std::move(*p);
    auto r = HistoryResponder::bind(ctx, *historyEndpoint(ep));
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    rep = std::move(*r);
    thread = std::thread([this] { serve(); });
  }
  ~FakeEngine() {
    stop = true;
    thread.join();
  }
  void append(const RunEvent& e) {
    std::lock_guard lk(mutex);
    if (!log.count(e.runId)) order.push_back(e.runId);
    log[e.runId].push_back(e);
  }
  void publish(const RunEvent& e) { pub->publish(eventTopic(e.runId, e.type), encodeEvent(e)); }
  void serve() {
    while (!stop) {
      auto req = rep->receive(20ms);
      if (!req || !*req) continue;
      requests++;
      std::lock_guard lk(mutex);
      const HistoryRequest& r = **req;
      json answer;
      if (r.op == HistoryRequest::Op::kRuns) {
        json runs = json::array();
        for (auto it = order.rbegin(); it != order.rend(); ++it)
          runs.push_back({{"runId", *it}, {"lastSeq", log[*it].size()}, {"finished", log[*it].back().type == "runFinished"}});
        answer = {{"v", 1}, {"ok", true}, {"runs", runs}, {"more", false}};
      } else if (!log.count(r.runId)) {
        answer = historyError("unknown run \"" + r.runId + "\"");
      } else {
        auto& evs = log[r.runId];
        json page = json::array();
        for (auto& e : evs)
          if (e.seq >= r.fromSeq && static_cast<std::int64_t>(page.size()) < r.limit) page.push_back(eventJson(e));
        answer = {{"v", 1}, {"ok", true}, {"events", page}, {"lastSeq", evs.size()},
                  {"finished", evs.back().type == "runFinished"}};
      }
      (void)rep->reply(answer);
    }
  }
};

std::string ipcEndpoint(const char* name) {
  static int n = 0;
  return "ipc:///tmp/runrec-evtest-" + std::to_string(::getpid()) + "-" + name + "-" + std::to_string(++n);
}

struct Collected {
  std::mutex mutex;
  std::vector<RunEvent> events;
  std::vector<std::int64_t> seqs(const std::string& run) {
    std::lock_guard lk(mutex);
    std::vector<std::int64_t> out;
    for (auto& e : events)
      if (e.runId == run) out.push_back(e.seq);
    return out;
  }
};

std::vector<std::int64_t> range(std::int64_t a, std::int64_t b) {
  std::vector<std::int64_t> v;
  for (auto i = a; i <= b; ++i) v.push_back(i);
  return v;
}

// Runs a subscriber in a thread, collecting what it delivers.
struct SubThread {
  std::unique_ptr<EventSubscriber> sub;
  Collected got;
  Status result;
  std::thread thread;
  SubThread(Context& ctx, const std::string& ep, SubscribeOptions o) {
    auto s = EventSubscriber::connect(ctx, ep, o);
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    sub = std::move(*s);
    thread = std::thread([this] {
      result = sub->run([this](const RunEvent& e, const json& body) {
        CHECK(body["seq"] == e.seq);
        std::lock_guard lk(got.mutex);
        got.events.push_back(e);
        return true;
      });
    });
  }
  void join() {
    if (thread.joinable()) thread.join();
  }
  ~SubThread() {
    sub->stop();
    join();
  }
};

}  // namespace

TEST_CASE("history endpoint is derived from the event endpoint like the other channels") {
  CHECK(*historyEndpoint("inproc://ev") == "inproc://ev.history");
  CHECK(*historyEndpoint("ipc:///tmp/x.events") == "ipc:///tmp/x.events.history");
  CHECK(*historyEndpoint("tcp://127.0.0.1:7000") == "tcp://127.0.0.1:7001");
  CHECK(*historyEndpoint("tcp://*:7000") == "tcp://*:7001");
  CHECK(historyEndpoint("udp://x").error().code == ErrorCode::kInvalidEndpoint);
  CHECK(historyEndpoint("tcp://h:65535").error().code == ErrorCode::kInvalidEndpoint);
  auto tooLong = historyEndpoint("ipc:///" + std::string(100, 'a'));
  REQUIRE_FALSE(tooLong.has_value());
  CHECK(tooLong.error().message.find(".history") != std::string::npos);
}

TEST_CASE("topics let a subscriber filter by run and type with prefix matching") {
  CHECK(eventTopic("r1", "commandFailed") == "run/r1/commandFailed");
  CHECK(runTopicPrefix("r1") == "run/r1/");
  CHECK(runTopicPrefix("") == "run/");
  CHECK(eventTopic("r1", "x").rfind(runTopicPrefix("r1"), 0) == 0);
  CHECK(eventTopic("r10", "x").rfind(runTopicPrefix("r1"), 0) != 0);  // the trailing slash
}

TEST_CASE("event bodies round-trip and carry the log's fields") {
  RunEvent e = ev("r1", 7);
  json j = json::parse(encodeEvent(e));
  CHECK(j["v"] == 1);
  CHECK(j["runId"] == "r1");
  CHECK(j["seq"] == 7);
  CHECK(j["commandId"] == "c7");
  CHECK(j["payload"]["n"] == 7);
  auto back = decodeEvent(encodeEvent(e));
  REQUIRE(back.has_value());
  CHECK(back->seq == 7);
  CHECK(back->commandId == "c7");
  RunEvent runLevel = ev("r1", 1, "runStarted");
  CHECK(json::parse(encodeEvent(runLevel))["commandId"].is_null());
  CHECK(decodeEvent(encodeEvent(runLevel))->commandId.empty());
}

TEST_CASE("malformed event bodies are rejected naming the field") {
  auto msg = [](std::string_view body) {
    auto r = decodeEvent(body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kMalformed);
    return r.error().message;
  };
  CHECK(msg("nope").find("not JSON") != std::string::npos);
  CHECK(msg("[]").find("object") != std::string::npos);
  CHECK(msg(R"({"v":2,"runId":"r","seq":1,"type":"t","ts":"x","payload":{}})").find("version") != std::string::npos);
  CHECK(msg(R"({"v":1,"runId":"r","seq":0,"type":"t","ts":"x","payload":{}})").find("\"seq\"") != std::string::npos);
  CHECK(msg(R"({"v":1,"runId":"r","seq":1,"type":"t","ts":"x","payload":[]})").find("\"payload\"") != std::string::npos);
  CHECK(msg(R"({"v":1,"seq":1,"type":"t","ts":"x","payload":{}})").find("\"runId\"") != std::string::npos);
}

TEST_CASE("history requests parse strictly with clear errors") {
  auto ok = parseHistoryRequest(R"({"v":1,"op":"events","runId":"r1","fromSeq":5,"limit":10})");
  REQUIRE(ok.has_value());
  CHECK(ok->op == HistoryRequest::Op::kEvents);
  CHECK(ok->fromSeq == 5);
  CHECK(ok->limit == 10);
  auto defaults = parseHistoryRequest(R"({"v":1,"op":"events","runId":"r1"})");
  REQUIRE(defaults.has_value());
  CHECK(defaults->fromSeq == 1);
  CHECK(defaults->limit == kDefaultHistoryLimit);
  auto runs = parseHistoryRequest(R"({"v":1,"op":"runs"})");
  REQUIRE(runs.has_value());
  CHECK(runs->op == HistoryRequest::Op::kRuns);
  CHECK(parseHistoryRequest(toJson(*ok).dump())->runId == "r1");

  auto err = [](std::string_view frame) {
    auto r = parseHistoryRequest(frame);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.rfind("history request: ", 0) == 0);
    return r.error().message;
  };
  CHECK(err("").find("not JSON") != std::string::npos);
  CHECK(err("\xff\xfe").find("not JSON") != std::string::npos);
  CHECK(err("[1]").find("JSON object") != std::string::npos);
  CHECK(err(R"({"op":"runs"})").find("\"v\"") != std::string::npos);
  CHECK(err(R"({"v":2,"op":"runs"})").find("version") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"delete"})").find("unknown operation") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events"})").find("\"runId\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":""})").find("\"runId\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","fromSeq":0})").find("\"fromSeq\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","fromSeq":"1"})").find("\"fromSeq\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","fromSeq":1.5})").find("\"fromSeq\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","fromSeq":18446744073709551615})").find("\"fromSeq\"") !=
        std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","limit":0})").find("\"limit\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","limit":10001})").find("\"limit\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"runs","runId":"r"})").find("unknown field \"runId\"") != std::string::npos);
  CHECK(err(R"({"v":1,"op":"events","runId":"r","command":"x"})").find("unknown field") != std::string::npos);
  CHECK(err(std::string(kMaxHistoryRequestBytes + 1, ' ')).find("too long") != std::string::npos);
}

TEST_CASE("a late subscriber reads history, then live, each event once, in order") {
  Context ctx;
  std::string ep = ipcEndpoint("late");
  FakeEngine fake(ctx, ep);
  for (int i = 1; i <= 30; ++i) fake.append(ev("r1", i, i == 1 ? "runCreated" : "commandSucceeded"));
  SubThread s(ctx, ep, SubscribeOptions{.runId = "r1", .fromSeq = 1, .follow = true, .pageSize = 7});
  std::this_thread::sleep_for(300ms);  // history read; the subscription is live
  // Live overlaps history (25..30 again) and then goes on: the overlap is skipped.
  for (int i = 25; i <= 30; ++i) fake.publish(ev("r1", i));
  for (int i = 31; i <= 40; ++i) {
    RunEvent e = ev("r1", i, i == 40 ? "runFinished" : "commandSucceeded");
    fake.append(e);
    fake.publish(e);
  }
  s.join();
  REQUIRE(s.result.has_value());
  CHECK(s.got.seqs("r1") == range(1, 40));
  auto st = s.sub->stats();
  CHECK(st.fromHistory >= 30);
  CHECK(st.fromLive >= 1);
  CHECK(st.duplicates >= 6);
}

TEST_CASE("a gap on the live stream is backfilled from history before going on") {
  Context ctx;
  std::string ep = ipcEndpoint("gap");
  FakeEngine fake(ctx, ep);
  fake.append(ev("r1", 1, "runCreated"));
  SubThread s(ctx, ep, SubscribeOptions{.runId = "r1", .follow = true, .idleCheck = 5s});
  std::this_thread::sleep_for(300ms);
  for (int i = 2; i <= 20; ++i) {
    RunEvent e = ev("r1", i, i == 20 ? "runFinished" : "commandSucceeded");
    fake.append(e);
    if (i < 8 || i > 12) fake.publish(e);  // 8..12 lost on the way (HWM)
  }
  s.join();
  REQUIRE(s.result.has_value());
  CHECK(s.got.seqs("r1") == range(1, 20));
  CHECK(s.sub->stats().gaps == 1);
}

TEST_CASE("events lost at the tail of a run are found by the idle check") {
  Context ctx;
  std::string ep = ipcEndpoint("tail");
  FakeEngine fake(ctx, ep);
  fake.append(ev("r1", 1, "runCreated"));
  SubThread s(ctx, ep, SubscribeOptions{.runId = "r1", .follow = true, .idleCheck = 100ms});
  std::this_thread::sleep_for(300ms);
  for (int i = 2; i <= 10; ++i) {
    RunEvent e = ev("r1", i, i == 10 ? "runFinished" : "commandSucceeded");
    fake.append(e);
    if (i < 7) fake.publish(e);  // 7..10 never arrive: nothing later shows the gap
  }
  s.join();
  REQUIRE(s.result.has_value());
  CHECK(s.got.seqs("r1") == range(1, 10));
}

TEST_CASE("every run: history of each run oldest first, then new runs live") {
  Context ctx;
  std::string ep = ipcEndpoint("all");
  FakeEngine fake(ctx, ep);
  for (int i = 1; i <= 5; ++i) fake.append(ev("old", i, i == 5 ? "runFinished" : "x"));
  SubThread s(ctx, ep, SubscribeOptions{.runId = "", .follow = true, .idleCheck = 100ms});
  std::this_thread::sleep_for(300ms);
  for (int i = 1; i <= 6; ++i) {
    RunEvent e = ev("new", i, i == 6 ? "runFinished" : "x");
    fake.append(e);
    if (i != 1) fake.publish(e);  // its first event is missed live
  }
  for (int k = 0; k < 100 && s.got.seqs("new").size() < 6; ++k) std::this_thread::sleep_for(20ms);
  s.sub->stop();
  s.join();
  REQUIRE(s.result.has_value());
  CHECK(s.got.seqs("old") == range(1, 5));
  CHECK(s.got.seqs("new") == range(1, 6));
  CHECK(s.got.events.front().runId == "old");
}

TEST_CASE("without follow the subscriber stops at the end of history; from-seq skips the start") {
  Context ctx;
  std::string ep = ipcEndpoint("nofollow");
  FakeEngine fake(ctx, ep);
  for (int i = 1; i <= 12; ++i) fake.append(ev("r1", i));
  SubThread s(ctx, ep, SubscribeOptions{.runId = "r1", .fromSeq = 4, .follow = false, .pageSize = 5});
  s.join();
  REQUIRE(s.result.has_value());
  CHECK(s.got.seqs("r1") == range(4, 12));
}

TEST_CASE("subscribing to an unknown run is a clear error; no engine is a timeout") {
  Context ctx;
  std::string ep = ipcEndpoint("unknown");
  {
    FakeEngine fake(ctx, ep);
    fake.append(ev("r1", 1));
    auto s = EventSubscriber::connect(ctx, ep, SubscribeOptions{.runId = "nope", .follow = true});
    REQUIRE(s.has_value());
    auto r = (*s)->run([](const RunEvent&, const json&) { return true; });
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kRejected);
    CHECK(r.error().message == "unknown run \"nope\"");
  }
  auto s = EventSubscriber::connect(ctx, ipcEndpoint("nobody"),
                                    SubscribeOptions{.runId = "r1", .requestTimeout = 200ms});
  REQUIRE(s.has_value());
  auto r = (*s)->run([](const RunEvent&, const json&) { return true; });
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::kTimeout);
}

TEST_CASE("a multi-part history request gets an error reply") {
  Context ctx;
  std::string hist = *historyEndpoint(ipcEndpoint("multipart"));
  auto rep = HistoryResponder::bind(ctx, hist);
  REQUIRE(rep.has_value());
  zmq::socket_t req(ctx.zmq(), zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.connect(hist);
  req.send(zmq::str_buffer("{\"v\":1,"), zmq::send_flags::sndmore);
  req.send(zmq::str_buffer("\"op\":\"runs\"}"), zmq::send_flags::none);
  auto got = (*rep)->receive(2s);
  REQUIRE(got.has_value());
  CHECK_FALSE(got->has_value());  // answered with an error, not handed to the caller
  zmq::message_t answer;
  zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
  REQUIRE(zmq::poll(&item, 1, 2000ms) == 1);
  REQUIRE(req.recv(answer));
  json a = json::parse(answer.to_string());
  CHECK(a["ok"] == false);
  CHECK(a["error"].get<std::string>().find("2-part") != std::string::npos);
}

TEST_CASE("the publisher knows whether anyone subscribes") {
  // The engine skips encoding live events while nobody listens (docs/events-wire.md).
  Context ctx;
  auto ep = ipcEndpoint("listeners");
  auto pub = EventPublisher::bind(ctx, ep, 1000);
  REQUIRE(pub.has_value());
  CHECK_FALSE((*pub)->hasSubscribers());
  auto waitFor = [&](bool want) {
    for (int i = 0; i < 500; ++i) {
      if ((*pub)->hasSubscribers() == want) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  };
  {
    zmq::socket_t sub(ctx.zmq(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "run.");
    sub.connect(ep);
    CHECK(waitFor(true));
    // A second subscriber to the same prefix, gone again: one still listens.
    {
      zmq::socket_t other(ctx.zmq(), zmq::socket_type::sub);
      other.set(zmq::sockopt::linger, 0);
      other.set(zmq::sockopt::subscribe, "run.");
      other.connect(ep);
      std::this_thread::sleep_for(50ms);
    }
    std::this_thread::sleep_for(50ms);
    CHECK((*pub)->hasSubscribers());
    sub.set(zmq::sockopt::linger, 0);
  }
  // The last subscriber disconnected: its subscription is withdrawn.
  CHECK(waitFor(false));
}
