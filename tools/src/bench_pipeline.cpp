// One instrumented run of the whole pipeline inside this process, for the benchmark suite:
// per-command latency (send -> start committed -> outcome published), credit window use and
// memory over time, the idle gaps between moves at the virtual Smoothie, and optional load
// (subscribers, a history reader, `runrec show` polling). docs/performance.md.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <zmq.hpp>

#include "bench.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/runner/protocol.hpp"
#include "runrec/runner/runner.hpp"
#include "runrec/runner/seed.hpp"

extern char** environ;

namespace runrec::cli::bench {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double rssMiB() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

namespace {

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// What the driver sends, with the board's simulated motion time so far (read as each line
// is sent, so it covers every line before it).
struct LineLog {
  hardware::VirtualSmoothie* board = nullptr;
  double timeScale = 0;
  struct Line {
    Clock::time_point at;
    double simulated;
    bool move;
  };
  std::vector<Line> lines;
  void add(std::string_view line) {
    bool move = line.size() > 2 && line[0] == 'G' && (line[1] == '0' || line[1] == '1') &&
                (line[2] == ' ' || line[2] == '\r' || line[2] == '\n');
    lines.push_back({Clock::now(), board ? board->simulatedSeconds() : 0.0, move});
  }
  // The gap before a move: wall time since the previous move was sent, minus all the time
  // the board spent in simulated motion in between (that move, and any homing or dwell).
  std::vector<double> gapsUs() const {
    std::vector<double> gaps;
    const Line* prev = nullptr;
    for (const Line& l : lines) {
      if (!l.move) continue;
      if (prev) {
        double motionUs = (l.simulated - prev->simulated) * timeScale * 1e6;
        gaps.push_back(std::max(0.0, us(l.at - prev->at) - motionUs));
      }
      prev = &l;
    }
    return gaps;
  }
};

pid_t spawnQuiet(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

}  // namespace

engine::Result<PipelineResult> runPipeline(const PipelineOptions& o) {
  static std::atomic<int> counter{0};
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++counter);
  std::error_code ec;
  for (auto suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(o.db.string() + suffix, ec);

  auto protocol = runner::parseProtocol(runner::makeSeedProtocol(o.touches).dump(), "seed.json");
  if (!protocol) return engine::fail(engine::ErrorCode::kInvalid, protocol.error().message);

  bus::Context ctx;
  auto lines = std::make_shared<LineLog>();
  lines->timeScale = o.timeScale;
  std::unique_ptr<hardware::Robot> robot;
  if (o.robot == "sim-basic") {
    robot = std::make_unique<hardware::SimRobot>();
  } else {
    hardware::VirtualSmoothieOptions board;
    board.timeScale = o.timeScale;
    std::function<void(std::string_view)> onLine;
    if (o.recordGaps) onLine = [lines](std::string_view l) { lines->add(l); };
    robot = hardware::makeSimulatedSmoothieRobot(board, onLine);
    if (auto* s = dynamic_cast<hardware::SmoothieRobot*>(robot.get())) lines->board = s->board();
  }

  engine::EngineOptions eo;
  eo.dbPath = o.db;
  eo.sync = o.sync;
  eo.endpoint = "inproc://bench-engine-" + tag;
  eo.channel.hwm = o.hwm;
  eo.maxRuns = 1;
  eo.controlEndpoint = "none";
  bool live = o.timeEvents || o.subscribers > 0;
  if (live) {
    eo.eventsEndpoint = "inproc://bench-events-" + tag;
    eo.eventsHwm = o.eventsHwm;
  }
  auto created = engine::Engine::create(ctx, eo, std::move(robot));
  if (!created) return tl::unexpected(created.error());
  auto& eng = *created;
  PipelineResult r;
  {
    hardware::ScopedThreadPriority raise(o.priority);  // the writer thread inherits it
    r.priority = raise.outcome().description;
    if (!raise.outcome().warning.empty()) std::cerr << "runrec bench: " << raise.outcome().warning << "\n";
    eng->start();
  }

  const std::size_t n = protocol->commands.size();
  std::vector<Clock::time_point> sentAt(n + 1), startedAt(n + 1), outcomeAt(n + 1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;

  // The timing subscriber: a plain SUB socket; each event's arrival is when it was published.
  std::atomic<long> timedEvents{0};
  if (o.timeEvents) {
    auto sub = std::make_shared<zmq::socket_t>(ctx.zmq(), zmq::socket_type::sub);
    sub->set(zmq::sockopt::rcvhwm, 0);
    sub->set(zmq::sockopt::subscribe, "run/");
    sub->set(zmq::sockopt::rcvtimeo, 200);
    sub->connect(eo.eventsEndpoint);
    threads.emplace_back([sub, &startedAt, &outcomeAt, &stop, &timedEvents, n] {
      std::map<std::string, std::size_t> indexOf;
      zmq::message_t topic, body;
      while (!stop.load()) {
        if (!sub->recv(topic)) continue;
        (void)sub->recv(body);
        auto now = Clock::now();
        auto e = bus::decodeEvent(body.to_string_view());
        if (!e) continue;
        timedEvents++;
        if (e->type == "commandStarted") {
          auto idx = e->payload.find("index");
          if (idx != e->payload.end() && idx->is_number_unsigned() && idx->get<std::size_t>() <= n) {
            startedAt[idx->get<std::size_t>()] = now;
            indexOf[e->commandId] = idx->get<std::size_t>();
          }
        } else if (e->type == "commandSucceeded" || e->type == "commandFailed") {
          auto it = indexOf.find(e->commandId);
          if (it != indexOf.end()) outcomeAt[it->second] = now;
        } else if (e->type == "runFinished") {
          return;
        }
      }
    });
  }
  // Load: subscribers (the last one slow), a history reader paging the log, `runrec show`.
  std::vector<std::unique_ptr<bus::EventSubscriber>> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    bus::SubscribeOptions so;
    so.follow = true;
    auto c = bus::EventSubscriber::connect(ctx, eo.eventsEndpoint, so);
    if (!c) return engine::fail(engine::ErrorCode::kBus, c.error().message);
    bus::EventSubscriber* p = c->get();
    subs.push_back(std::move(*c));
    auto sleep = std::chrono::milliseconds(i == o.subscribers - 1 ? o.slowSubscriberMs : 0);
    threads.emplace_back([p, sleep] {
      (void)p->run([sleep](const bus::RunEvent& e, const json&) {
        if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
        return e.type != "runFinished";
      });
    });
  }
  if (o.historyReader && live) {
    threads.emplace_back([&stop, &ctx, ep = eo.eventsEndpoint, &r] {
      auto hist = bus::historyEndpoint(ep);
      if (!hist) return;
      auto client = bus::HistoryClient::connect(ctx, *hist, 2s);
      if (!client) return;
      while (!stop.load()) {
        auto runs = (*client)->runs(1);
        if (!runs || !runs->contains("runs") || (*runs)["runs"].empty()) {
          std::this_thread::sleep_for(5ms);
          continue;
        }
        std::string runId = (*runs)["runs"][0].value("runId", "");
        std::int64_t from = 1;
        while (!stop.load()) {  // the whole log, page by page, then again
          auto page = (*client)->events(runId, from, 1000);
          if (!page || !page->contains("events") || (*page)["events"].empty()) break;
          from += static_cast<std::int64_t>((*page)["events"].size());
          r.historyPages++;
        }
      }
    });
  }
  if (o.showPoller) {
    threads.emplace_back([&stop, exe = o.exe, db = o.db.string(), &r] {
      while (!stop.load()) {
        pid_t pid = spawnQuiet({exe, "show", "last", "--db", db});
        if (pid > 0) {
          int status = 0;
          waitpid(pid, &status, 0);
          r.showPolls++;
        }
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  if (live) std::this_thread::sleep_for(200ms);  // subscriptions reach the publisher

  // The runner, driven command by command so each send is timed.
  auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
  if (!client) return engine::fail(engine::ErrorCode::kBus, client.error().message);
  auto& c = *client;
  r.rssStartMiB = rssMiB();
  r.rssPeakMiB = r.rssStartMiB;
  auto t0 = Clock::now();
  auto opened = c->open(runner::runDescription(*protocol));
  if (!opened) {
    stop = true;
    for (auto& s : subs) s->stop();
    for (auto& t : threads) t.join();
    eng->requestShutdown();
    (void)eng->wait();
    return engine::fail(engine::ErrorCode::kBus, opened.error().message);
  }
  auto lastSample = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    if (auto st = c->send(protocol->commands[i]); !st) break;
    auto now = Clock::now();
    sentAt[i + 1] = now;
    if (o.sampleEvery.count() > 0 && now - lastSample >= o.sampleEvery) {
      lastSample = now;
      double rss = rssMiB();
      r.rssPeakMiB = std::max(r.rssPeakMiB, rss);
      r.samples.push_back({std::chrono::duration<double>(now - t0).count(), static_cast<double>(c->inFlight()), rss});
    }
  }
  auto summary = c->finish({{"commands", n}, {"reason", "complete"}, {"sent", c->sent()}});
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.rssPeakMiB = std::max(r.rssPeakMiB, rssMiB());
  r.maxInFlight = c->maxInFlight();
  auto st = eng->wait();
  stop = true;
  for (auto& s : subs) s->stop();
  for (auto& t : threads) t.join();
  if (!summary) return engine::fail(engine::ErrorCode::kBus, summary.error().message);
  if (!st) return tl::unexpected(st.error());
  r.summary = *summary;
  r.commands = summary->at("counts").value("succeeded", 0L);
  r.events = summary->value("events", 0L);
  double secs = summary->value("durationSeconds", 0.0);
  r.commandsPerSecond = secs > 0 ? r.commands / secs : 0;
  r.timedEvents = timedEvents.load();
  for (std::size_t i = 1; i <= n; ++i) {
    if (sentAt[i] == Clock::time_point{}) continue;
    if (startedAt[i] != Clock::time_point{}) r.startedUs.push_back(us(startedAt[i] - sentAt[i]));
    if (outcomeAt[i] != Clock::time_point{}) r.outcomeUs.push_back(us(outcomeAt[i] - sentAt[i]));
  }
  if (o.recordGaps) r.gapsUs = lines->gapsUs();
  return r;
}

}  // namespace runrec::cli::bench
