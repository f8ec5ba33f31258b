// Benchmark pieces shared by `runrec bench` and its suite (docs/performance.md): statistics,
// the raw limits (SQLite inserts, ZeroMQ PUSH/PULL) and the in-process measurements.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runrec/bus/channel.hpp"
#include "runrec/engine/error.hpp"
#include "runrec/engine/event_log.hpp"
#include "runrec/hardware/thread_priority.hpp"

namespace runrec::cli::bench {

struct Stat {
  double median = 0, min = 0, max = 0;
};
Stat stat(std::vector<double> v);
nlohmann::json toJson(const Stat& s);

// Percentiles of a sample (sorted in place): p in [0, 1].
double percentile(std::vector<double>& sorted, double p);

// --- limits ---
// Raw SQLite: `rows` inserts into a fresh log with the engine's schema, journal and sync
// settings (EventLog::open creates the file), `batch` rows per transaction, with payloads
// of the seed protocol's sizes (a commandStarted and a commandSucceeded alternately), on
// one connection with one prepared statement; no JSON, no bus, no robot.
struct RawSqlite {
  double insertsPerSecond = 0, commitsPerSecond = 0, seconds = 0;
  long rows = 0;
};
engine::Result<RawSqlite> rawSqliteInserts(const std::filesystem::path& db, engine::Sync sync, int batch, long rows);

// Raw ZeroMQ PUSH/PULL between two threads of one process (inproc, or ipc under `dir`):
// `messages` frames of `bytes` bytes with send/receive HWM `hwm`; no credit, no replies.
struct RawZmq {
  double messagesPerSecond = 0, seconds = 0;
  long messages = 0;
};
engine::Result<RawZmq> rawZmqPushPull(const std::string& transport, const std::filesystem::path& dir, int hwm,
                                      std::size_t bytes, long messages);

// Median size in bytes of the bus frame of one seed command (what the runner sends).
std::size_t seedCommandFrameBytes();

// Resident memory of this process, MiB.
double rssMiB();

// One instrumented seed-protocol run, engine and runner in this process (inproc://).
struct PipelineOptions {
  std::filesystem::path db;
  engine::Sync sync = engine::Sync::kNormal;
  int hwm = bus::kDefaultHwm;
  std::string robot = "sim";  // "sim": the virtual Smoothie; "sim-basic": bookkeeping only
  double timeScale = 0;       // the virtual Smoothie's motion time (1 = real time)
  int touches = 1000;
  bool timeEvents = false;    // time every command from its send to its published events
  bool recordGaps = false;    // the idle gap before each move at the board
  int eventsHwm = 100000;
  int subscribers = 0;        // gap-free subscribers; the last sleeps slowSubscriberMs per event
  int slowSubscriberMs = 5;
  bool historyReader = false;  // pages the whole run over the history socket, in a loop
  bool showPoller = false;     // `exe show last --db` every 100 ms
  std::string exe;             // this runrec, for showPoller
  std::chrono::milliseconds sampleEvery{0};  // in-flight count and RSS over time
  // The engine's writer thread (it feeds the board): raised by Engine::start() inheriting
  // from a ScopedThreadPriority (runrec/hardware/thread_priority.hpp). The load never is.
  hardware::FeedPriority priority = hardware::FeedPriority::kNormal;
};
struct PipelineResult {
  nlohmann::json summary;
  long commands = 0, events = 0, timedEvents = 0, historyPages = 0, showPolls = 0;
  double seconds = 0, commandsPerSecond = 0;
  std::vector<double> startedUs, outcomeUs;  // send -> commandStarted published, -> outcome published
  std::vector<double> gapsUs;
  std::string priority;  // what the writer thread got: "SCHED_FIFO 10", "nice -10", "normal"
  std::uint64_t maxInFlight = 0;
  double rssStartMiB = 0, rssPeakMiB = 0;
  std::vector<std::array<double, 3>> samples;  // seconds, commands in flight, RSS MiB
};
engine::Result<PipelineResult> runPipeline(const PipelineOptions& options);

// Waits for child `pid` (as waitpid) and returns its peak RSS in MiB: VmHWM from
// /proc/<pid>/status, read every 5 ms while it runs. (wait4's ru_maxrss is not used: a child
// started with posix_spawn shares this process's memory until it execs, so it reports this
// process's peak when that is larger.)
double waitForPeakRssMiB(pid_t pid, int* status);

// The whole suite; writes out/report.md, out/results.json, data files and SVG plots
// (with gnuplot, when installed). Returns an exit code.
struct SuiteOptions {
  std::string out;
  int repeat = 3;
  bool quick = false;  // small sizes: checks the plumbing in seconds, figures meaningless
  // Sections to run (throughput, limits, latency, backpressure, jank, scale); empty: all.
  std::set<std::string> sections;
};
int runSuite(const SuiteOptions& options);

}  // namespace runrec::cli::bench
