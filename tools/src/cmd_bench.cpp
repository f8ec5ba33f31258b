// `runrec bench`: the seed protocol through the whole pipeline, measured in child processes.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench.hpp"
#include "cli_common.hpp"
#include "runrec/engine/error.hpp"
#include "runrec/runner/seed.hpp"

extern char** environ;

namespace runrec::cli {

using nlohmann::json;

namespace {

struct Sample {
  double wall = 0, commandsPerSecond = 0, eventsPerSecond = 0, peakRssMiB = 0, logBytesPerCommand = 0;
  long commands = 0, events = 0;
};

// Runs `runrec run` as a child so each sample has its own peak RSS.
engine::Result<Sample> runOnce(const std::string& exe, const std::string& protocol, const std::string& db, int hwm,
                               const std::string& sync) {
  std::string out = db + ".json";
  std::vector<std::string> args = {exe, "run", protocol, "--db", db, "--json", "--progress", "never",
                                   "--hwm", std::to_string(hwm), "--sync", sync};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  auto t0 = std::chrono::steady_clock::now();
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return engine::fail(engine::ErrorCode::kIo, "cannot start " + exe + ": " + std::strerror(rc));
  int status = 0;
  double peakRss = bench::waitForPeakRssMiB(pid, &status);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return engine::fail(engine::ErrorCode::kIo, "benchmark run failed (exit " + std::to_string(WEXITSTATUS(status)) +
                                                    "); see " + out);
  std::ifstream in(out);
  json s = json::parse(in, nullptr, false);
  if (s.is_discarded()) return engine::fail(engine::ErrorCode::kIo, out + ": not JSON");
  Sample x;
  x.commands = s["counts"].value("succeeded", 0L);
  x.events = s.value("events", 0L);
  // The engine's own timing (first to last event) for rates; process wall time as well.
  double runSeconds = s["durationSeconds"].is_number() ? s["durationSeconds"].get<double>() : wall;
  x.wall = wall;
  x.commandsPerSecond = x.commands / runSeconds;
  x.eventsPerSecond = x.events / runSeconds;
  x.peakRssMiB = peakRss;
  std::error_code ec;
  auto bytes = std::filesystem::file_size(db, ec);
  auto walBytes = std::filesystem::file_size(db + "-wal", ec);
  if (ec) walBytes = 0;
  x.logBytesPerCommand = static_cast<double>(bytes + walBytes) / std::max(1L, x.commands);
  return x;
}

using bench::Stat;
using bench::stat;

}  // namespace

void addBenchCommand(CLI::App& app, Globals&, int& exitCode) {
  struct Opts {
    int touches = 10000;
    int repeat = 5;
    int hwm = bus::kDefaultHwm;
    std::string sync = "normal";
    bool json = false;
    std::string dir;
    bool limits = false;
    long rows = 100000;
    std::string suite;
    bool quick = false;
    std::vector<std::string> sections;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Benchmark the pipeline with the seed protocol");
  cmd->description(
      "Runs the seed protocol (runner -> bus -> engine -> SQLite log -> simulated robot)\n"
      "--repeat times, each in a fresh `runrec run` process with a fresh log, and prints\n"
      "median, min and max of: process wall time, commands/s and events/s (engine time,\n"
      "first to last event), peak RSS of the process, and log bytes per command.");
  cmd->add_option("-n,--touches", o->touches, "touchTip commands in the seed protocol")->capture_default_str();
  cmd->add_option("-r,--repeat", o->repeat, "Runs to take the median of")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--hwm", o->hwm, "High-water mark / credit window")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--sync", o->sync, "Log durability: normal or full")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  cmd->add_option("--dir", o->dir, "Scratch folder (default: a new one under /tmp, removed afterwards)");
  cmd->add_flag("--json", o->json, "Print the figures as JSON");
  cmd->add_flag("--limits", o->limits,
                "Measure only the limits: raw SQLite inserts (the log's schema and --sync, one commit per 2 rows)\n"
                "and raw ZeroMQ PUSH/PULL (a seed command's frame size, --hwm)");
  cmd->add_option("--suite", o->suite,
                  "Run the whole suite (throughput, limits, latency, backpressure, jank, scale) and write\n"
                  "DIR/report.md, results.json and plots (docs/performance.md)")
      ->type_name("DIR");
  cmd->add_flag("--quick", o->quick, "With --suite: tiny sizes (checks the plumbing; figures meaningless)");
  cmd->add_option("--sections", o->sections,
                  "With --suite: only these sections (default: all); the report says which ran")
      ->delimiter(',')
      ->check(CLI::IsMember({"throughput", "limits", "latency", "backpressure", "jank", "scale"}));
  cmd->add_option("--rows", o->rows, "Rows (SQLite) and messages (ZeroMQ) for --limits")->capture_default_str();
  cmd->callback([o, &exitCode] {
    namespace fs = std::filesystem;
    if (!o->suite.empty()) {
      exitCode = bench::runSuite(
          {o->suite, o->repeat, o->quick, std::set<std::string>(o->sections.begin(), o->sections.end())});
      return;
    }
    bool removeDir = o->dir.empty();
    fs::path dir = o->dir.empty() ? fs::temp_directory_path() / ("runrec-bench-" + std::to_string(::getpid())) : fs::path(o->dir);
    fs::create_directories(dir);
    if (o->limits) {
      json j = {{"repeat", o->repeat}, {"sync", o->sync}, {"hwm", o->hwm}};
      std::vector<double> ins, com, zin, zipc;
      std::size_t bytes = bench::seedCommandFrameBytes();
      for (int i = 0; i < o->repeat; ++i) {
        auto s = bench::rawSqliteInserts(dir / "raw.db", *engine::parseSync(o->sync), 2, o->rows);
        if (!s) {
          exitCode = error(kSystemError, s.error().message);
          return;
        }
        ins.push_back(s->insertsPerSecond);
        com.push_back(s->commitsPerSecond);
        auto z = bench::rawZmqPushPull("inproc", dir, o->hwm, bytes, o->rows);
        auto zi = bench::rawZmqPushPull("ipc", dir, o->hwm, bytes, o->rows);
        if (!z || !zi) {
          exitCode = error(kSystemError, (!z ? z.error() : zi.error()).message);
          return;
        }
        zin.push_back(z->messagesPerSecond);
        zipc.push_back(zi->messagesPerSecond);
      }
      j["sqliteInsertsPerSecond"] = bench::toJson(stat(ins));
      j["sqliteCommitsPerSecond"] = bench::toJson(stat(com));
      j["zmqInprocMessagesPerSecond"] = bench::toJson(stat(zin));
      j["zmqIpcMessagesPerSecond"] = bench::toJson(stat(zipc));
      j["zmqMessageBytes"] = bytes;
      if (removeDir) { std::error_code ec; fs::remove_all(dir, ec); }
      printJson(j);
      return;
    }
    std::string exe = fs::read_symlink("/proc/self/exe").string();
    fs::path protocol = dir / "seed.json";
    {
      std::ofstream out(protocol);
      out << runner::makeSeedProtocol(o->touches).dump();
    }
    std::vector<Sample> samples;
    for (int i = 0; i < o->repeat; ++i) {
      auto s = runOnce(exe, protocol.string(), (dir / ("bench-" + std::to_string(i) + ".db")).string(), o->hwm, o->sync);
      if (!s) {
        exitCode = error(kSystemError, s.error().message);
        return;
      }
      if (!o->json)
        std::cerr << "  run " << (i + 1) << "/" << o->repeat << ": " << formatRate(s->commandsPerSecond)
                  << " commands/s\n";
      samples.push_back(*s);
    }
    auto col = [&](auto f) {
      std::vector<double> v;
      for (auto& s : samples) v.push_back(f(s));
      return stat(v);
    };
    Stat wall = col([](auto& s) { return s.wall; }), cps = col([](auto& s) { return s.commandsPerSecond; }),
         eps = col([](auto& s) { return s.eventsPerSecond; }), rss = col([](auto& s) { return s.peakRssMiB; }),
         bpc = col([](auto& s) { return s.logBytesPerCommand; });
    json j = {{"touches", o->touches}, {"commands", samples[0].commands}, {"events", samples[0].events},
              {"repeat", o->repeat}, {"hwm", o->hwm}, {"sync", o->sync}};
    auto put = [&](const char* k, const Stat& s) { j[k] = {{"median", s.median}, {"min", s.min}, {"max", s.max}}; };
    put("wallSeconds", wall);
    put("commandsPerSecond", cps);
    put("eventsPerSecond", eps);
    put("peakRssMiB", rss);
    put("logBytesPerCommand", bpc);
    if (removeDir) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    if (o->json) {
      printJson(j);
      return;
    }
    std::printf("seed protocol: %d touch tips, %ld commands, %ld events; hwm %d, sync %s; %d runs\n", o->touches,
                samples[0].commands, samples[0].events, o->hwm, o->sync.c_str(), o->repeat);
    std::printf("%-22s %12s %12s %12s\n", "", "median", "min", "max");
    auto row = [](const char* name, const Stat& s, const char* fmt) {
      std::printf("%-22s ", name);
      std::printf(fmt, s.median);
      std::printf(" ");
      std::printf(fmt, s.min);
      std::printf(" ");
      std::printf(fmt, s.max);
      std::printf("\n");
    };
    row("wall time (s)", wall, "%12.3f");
    row("commands/s", cps, "%12.0f");
    row("events/s", eps, "%12.0f");
    row("peak RSS (MiB)", rss, "%12.1f");
    row("log bytes/command", bpc, "%12.0f");
  });
}

}  // namespace runrec::cli
