// `runrec bench-events`: does publishing live events to subscribers (one of them slow)
// slow the engine down? The seed protocol through `runrec engine` + `runrec run --connect`
// child processes, with no subscribers and with K, alternating; subscribers are threads of
// this process and each must end with every event of the run, in order, exactly once.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "cli_common.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/runner/seed.hpp"

extern char** environ;

namespace runrec::cli {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

pid_t spawnChild(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

struct Subscriber {
  std::unique_ptr<bus::EventSubscriber> sub;
  std::thread thread;
  bus::Status result;
  std::int64_t count = 0, lastSeq = 0;
  bool inOrder = true;
  double seconds = 0;  // from the start of the run to its last event delivered
};

// CPU seconds (user + system) of each thread of `pid`, summed by thread name ("runrec":
// the main, writer and history threads; "ZMQbg/IO/0": ZeroMQ's I/O thread, which fans each
// event out to every subscriber), from /proc.
std::map<std::string, double> threadCpu(pid_t pid) {
  std::map<std::string, double> out;
  static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(t.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; rest >> field; ++i) {  // fields 14 and 15: utime, stime (clock ticks)
      if (i == 14) utime = std::stod(field);
      if (i == 15) {
        stime = std::stod(field);
        break;
      }
    }
    out[name] += (utime + stime) / tick;
  }
  return out;
}

struct Sample {
  double commandsPerSecond = 0;
  long events = 0;
  bool subscribersOk = true;
  double slowestSubscriberSeconds = 0;
  // The engine process's CPU time (user + system, all its threads incl. ZeroMQ's I/O
  // thread) per command over its whole life: separates work the engine does for
  // subscribers from time it waits for a core that subscribers hold.
  double engineCpuMicrosPerCommand = 0;
  // The same during the run only (from spawning the runner to its exit), by thread name.
  std::map<std::string, double> runCpuMicrosPerCommand;
  std::string problem;
};

Sample runOnce(const std::string& exe, const std::filesystem::path& dir, const std::string& protocol, int tag,
               int subscribers, int slowMs, int nice) {
  Sample s;
  long summaryCommands = 0;
  std::string cmdEp = "ipc://" + (dir / ("c" + std::to_string(tag))).string();
  std::string evEp = "ipc://" + (dir / ("e" + std::to_string(tag))).string();
  std::string db = (dir / ("bench-" + std::to_string(tag) + ".db")).string();
  pid_t engine = spawnChild({exe, "engine", "--listen", cmdEp, "--db", db, "--events", evEp},
                            db + ".engine.out", db + ".engine.err");
  if (engine < 0) {
    s.problem = "cannot start the engine";
    return s;
  }
  bus::Context ctx;
  // Wait for the engine's history to answer.
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    auto h = bus::HistoryClient::connect(ctx, *bus::historyEndpoint(evEp), 100ms);
    up = h && (*h)->runs(1).has_value();
  }
  std::vector<std::unique_ptr<Subscriber>> subs;
  std::atomic<std::chrono::steady_clock::time_point::rep> startedAt{0};
  for (int i = 0; i < subscribers && up; ++i) {
    auto sub = std::make_unique<Subscriber>();
    bus::SubscribeOptions o;
    o.follow = true;
    auto c = bus::EventSubscriber::connect(ctx, evEp, o);
    if (!c) {
      s.problem = c.error().message;
      break;
    }
    sub->sub = std::move(*c);
    auto sleep = std::chrono::milliseconds(i == subscribers - 1 ? slowMs : 0);
    Subscriber* p = sub.get();
    sub->thread = std::thread([p, sleep, nice, &startedAt] {
      // A lower CPU priority for the subscriber threads (Linux: per thread).
      if (nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), nice);
      p->result = p->sub->run([p, sleep, &startedAt](const bus::RunEvent& e, const json&) {
        if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
        if (e.seq != p->lastSeq + 1) p->inOrder = false;
        p->lastSeq = e.seq;
        p->count++;
        if (e.type == "runFinished") {
          auto t0 = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(startedAt.load()));
          p->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          return false;
        }
        return true;
      });
    });
    subs.push_back(std::move(sub));
  }
  std::this_thread::sleep_for(200ms);  // subscriptions reach the engine
  startedAt = std::chrono::steady_clock::now().time_since_epoch().count();
  auto cpuBefore = threadCpu(engine);
  pid_t run = spawnChild({exe, "run", protocol, "--connect", cmdEp, "--json", "--progress", "never"}, db + ".json",
                         db + ".run.err");
  int status = 0;
  if (run > 0) waitpid(run, &status, 0);
  auto cpuAfter = threadCpu(engine);
  json summary;
  {
    std::ifstream in(db + ".json");
    summary = json::parse(in, nullptr, false);
  }
  if (run < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || summary.is_discarded()) {
    s.problem = "the run failed; see " + db + ".run.err";
    for (auto& sub : subs) sub->sub->stop();
  } else {
    long commands = summary["counts"].value("succeeded", 0L);
    summaryCommands = commands;
    for (auto& [name, after] : cpuAfter)
      if (commands > 0) s.runCpuMicrosPerCommand[name] = (after - cpuBefore[name]) * 1e6 / static_cast<double>(commands);
    s.events = summary.value("events", 0L);
    double secs = summary["durationSeconds"].is_number() ? summary["durationSeconds"].get<double>() : 0;
    s.commandsPerSecond = secs > 0 ? commands / secs : 0;
  }
  for (auto& sub : subs) {
    sub->thread.join();
    bool ok = sub->result.has_value() && sub->inOrder && sub->count == s.events && sub->lastSeq == s.events;
    if (!ok && s.problem.empty())
      s.problem = "a subscriber got " + std::to_string(sub->count) + " of " + std::to_string(s.events) + " events" +
                  (sub->inOrder ? "" : " out of order") + (sub->result ? "" : ": " + sub->result.error().message);
    s.subscribersOk = s.subscribersOk && ok;
    s.slowestSubscriberSeconds = std::max(s.slowestSubscriberSeconds, sub->seconds);
  }
  kill(engine, SIGTERM);
  struct rusage ru {};
  wait4(engine, &status, 0, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  long commands = summaryCommands;
  s.engineCpuMicrosPerCommand = commands > 0 ? cpu * 1e6 / static_cast<double>(commands) : 0;
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

void addBenchEventsCommand(CLI::App& app, Globals&, int& exitCode) {
  struct Opts {
    int touches = 2000;
    int repeat = 3;
    int subscribers = 4;
    int slowMs = 5;
    int nice = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench-events", "Benchmark the engine with live-event subscribers (one slow)");
  cmd->footer(
      "Runs the seed protocol through `runrec engine` + `runrec run --connect` child processes,\n"
      "--repeat times with no subscribers and with --subscribers (the last one sleeping --slow-ms\n"
      "per event), alternating, and prints the engine's commands/s for both. Every subscriber\n"
      "must end with every event of the run, in order, exactly once (else exit 3).");
  cmd->add_option("-n,--touches", o->touches, "touchTip commands in the seed protocol")->capture_default_str();
  cmd->add_option("-r,--repeat", o->repeat, "Runs per configuration")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--subscribers", o->subscribers, "Subscribers")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--slow-ms", o->slowMs, "Sleep per event of the slow subscriber")->check(CLI::Range(0, 1000))->capture_default_str();
  cmd->add_option("--nice", o->nice, "CPU niceness of the subscriber threads (0..19)")->check(CLI::Range(0, 19))->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the figures as JSON");
  cmd->callback([o, &exitCode] {
    namespace fs = std::filesystem;
    fs::path dir = fs::path("/tmp") / ("runrec-bev-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string exe = fs::read_symlink("/proc/self/exe").string();
    std::string protocol = (dir / "seed.json").string();
    {
      std::ofstream out(protocol);
      out << runner::makeSeedProtocol(o->touches).dump();
    }
    std::vector<double> base, with, slowest, cpuBase, cpuWith;
    std::map<std::string, std::vector<double>> runCpuBase, runCpuWith;
    long events = 0;
    int tag = 0;
    for (int i = 0; i < o->repeat; ++i) {
      for (int k : {0, o->subscribers}) {
        Sample s = runOnce(exe, dir, protocol, ++tag, k, o->slowMs, o->nice);
        if (!s.problem.empty()) {
          exitCode = error(kSystemError, "bench-events: " + s.problem);
          return;
        }
        events = s.events;
        (k == 0 ? base : with).push_back(s.commandsPerSecond);
        (k == 0 ? cpuBase : cpuWith).push_back(s.engineCpuMicrosPerCommand);
        for (auto& [name, us] : s.runCpuMicrosPerCommand) (k == 0 ? runCpuBase : runCpuWith)[name].push_back(us);
        if (k) slowest.push_back(s.slowestSubscriberSeconds);
        if (!o->json)
          std::cerr << "  run " << (i + 1) << "/" << o->repeat << ", " << k << " subscribers: "
                    << formatRate(s.commandsPerSecond) << " commands/s, engine CPU "
                    << static_cast<long>(s.engineCpuMicrosPerCommand) << " us/command\n";
      }
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    double b = median(base), w = median(with);
    json j = {{"touches", o->touches},
              {"events", events},
              {"repeat", o->repeat},
              {"subscribers", o->subscribers},
              {"slowMs", o->slowMs},
              {"nice", o->nice},
              {"commandsPerSecond", {{"noSubscribers", b}, {"withSubscribers", w}}},
              {"ratio", b > 0 ? w / b : 0},
              {"engineCpuMicrosPerCommand", {{"noSubscribers", median(cpuBase)}, {"withSubscribers", median(cpuWith)}}},
              {"engineRunCpuMicrosPerCommandByThread", json::object()},
              {"slowSubscriberDoneSeconds", median(slowest)},
              {"everySubscriberGotEveryEvent", true}};
    for (auto& [name, v] : runCpuBase) j["engineRunCpuMicrosPerCommandByThread"][name]["noSubscribers"] = median(v);
    for (auto& [name, v] : runCpuWith) j["engineRunCpuMicrosPerCommandByThread"][name]["withSubscribers"] = median(v);
    if (o->json) {
      printJson(j);
      return;
    }
    std::printf("seed protocol: %d touch tips, %ld events; %d runs per configuration; subscriber threads at nice %d\n",
                o->touches, events, o->repeat, o->nice);
    std::printf("commands/s (median), no subscribers:  %10.0f\n", b);
    std::printf("commands/s (median), %d subscribers:   %10.0f  (%.1f%% of no subscribers; one sleeps %d ms/event)\n",
                o->subscribers, w, b > 0 ? 100 * w / b : 0, o->slowMs);
    std::printf("engine CPU per command (median, whole process): %.0f us without, %.0f us with subscribers\n",
                median(cpuBase), median(cpuWith));
    for (auto& [name, v] : j["engineRunCpuMicrosPerCommandByThread"].items())
      std::printf("engine CPU per command during the run, threads \"%s\": %.0f us without, %.0f us with subscribers\n",
                  name.c_str(), v.value("noSubscribers", 0.0), v.value("withSubscribers", 0.0));
    std::printf("slow subscriber had every event after: %.1f s (median); all %d subscribers: every event, in order, once\n",
                median(slowest), o->subscribers);
  });
}

}  // namespace runrec::cli
