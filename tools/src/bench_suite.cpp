// `runrec bench --suite --out DIR`: every benchmark of docs/performance.md in one go, written
// as DIR/report.md plus data files and gnuplot plots (SVG). Each figure is the median of
// --repeat runs with min and max.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <zmq.h>

#include "bench.hpp"
#include "cli_common.hpp"
#include "runrec/runner/seed.hpp"

extern char** environ;

namespace runrec::cli::bench {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string firstLine(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "?";
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
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

struct ChildRun {
  double cps = 0, eps = 0, wall = 0, rssMiB = 0, bytesPerCommand = 0, engineSeconds = 0;
  long commands = 0, events = 0;
  double eventsPerCommit = 0;  // 0 when the summary has no commit count
};

// `runrec run` in a child process (its own peak RSS), with extra arguments.
engine::Result<ChildRun> childRun(const std::string& exe, const fs::path& dir, const std::string& protocol,
                                  const std::string& name, std::vector<std::string> extra) {
  std::string db = (dir / (name + ".db")).string();
  std::error_code ec;
  for (auto suffix : {"", "-wal", "-shm", ".lock"}) fs::remove(db + suffix, ec);
  std::vector<std::string> args = {exe, "run", protocol, "--db", db, "--json", "--progress", "never"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = spawn(args, db + ".json", db + ".err");
  if (pid < 0) return engine::fail(engine::ErrorCode::kIo, "cannot start " + exe);
  int status = 0;
  double peak = waitForPeakRssMiB(pid, &status);
  ChildRun r;
  r.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json s = json::parse(readFile(db + ".json"), nullptr, false);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || s.is_discarded())
    return engine::fail(engine::ErrorCode::kIo, "benchmark run " + name + " failed; see " + db + ".err");
  r.commands = s["counts"].value("succeeded", 0L);
  r.events = s.value("events", 0L);
  r.engineSeconds = s["durationSeconds"].is_number() ? s["durationSeconds"].get<double>() : r.wall;
  r.cps = r.commands / r.engineSeconds;
  r.eps = r.events / r.engineSeconds;
  r.rssMiB = peak;
  if (s["commits"].is_number() && s["commits"].get<double>() > 0) r.eventsPerCommit = r.events / s["commits"].get<double>();
  auto bytes = fs::file_size(db, ec);
  auto wal = fs::file_size(db + "-wal", ec);
  if (ec) wal = 0;
  r.bytesPerCommand = static_cast<double>(bytes + wal) / std::max(1L, r.commands);
  fs::remove(db + "-wal", ec);
  fs::remove(db, ec);  // keep the folder small (1M-command logs are large)
  return r;
}

// `runrec seed -n N -o path` in a child: this process never holds a large protocol.
engine::Status writeSeed(const std::string& exe, const fs::path& path, int touches) {
  pid_t pid = spawn({exe, "seed", "-n", std::to_string(touches), "-o", path.string()}, "/dev/null", path.string() + ".err");
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return engine::fail(engine::ErrorCode::kIo, "runrec seed -n " + std::to_string(touches) + " failed");
  std::error_code ec;
  fs::remove(path.string() + ".err", ec);
  return {};
}

struct Table {
  std::ostringstream md;
  void header(std::initializer_list<const char*> cols) {
    md << "|";
    for (auto c : cols) md << " " << c << " |";
    md << "\n|";
    for (std::size_t i = 0; i < cols.size(); ++i) md << " --- |";
    md << "\n";
  }
  void row(const std::vector<std::string>& cells) {
    md << "|";
    for (auto& c : cells) md << " " << c << " |";
    md << "\n";
  }
};

std::string cell(const Stat& s, const char* f) {
  return fmt(f, s.median) + " (" + fmt(f, s.min) + "–" + fmt(f, s.max) + ")";
}

void writeCdf(const fs::path& file, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::ofstream out(file);
  std::size_t step = std::max<std::size_t>(1, v.size() / 2000);
  for (std::size_t i = 0; i < v.size(); i += step) out << v[i] << " " << static_cast<double>(i + 1) / v.size() << "\n";
  if (!v.empty()) out << v.back() << " 1\n";
}

bool havePlotter() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

void plot(const fs::path& dir, const std::string& name, const std::string& script) {
  std::ofstream(dir / (name + ".gp")) << "set terminal svg size 800,450 dynamic font 'sans,11'\nset output '"
                                      << name << ".svg'\nset grid\n"
                                      << script;
  std::string cmd = "cd '" + dir.string() + "' && gnuplot '" + name + ".gp' 2>>gnuplot.log";
  if (std::system(cmd.c_str()) != 0) std::cerr << "bench: gnuplot failed for " << name << " (see gnuplot.log)\n";
}

std::string machine() {
  std::ostringstream m;
  struct utsname u {};
  uname(&u);
  m << "- CPU: " << firstLine("/proc/cpuinfo", "model name") << ", " << std::thread::hardware_concurrency()
    << " logical CPUs\n";
  m << "- memory: " << firstLine("/proc/meminfo", "MemTotal") << "\n";
  m << "- kernel: " << u.sysname << " " << u.release << " " << u.machine << "\n";
  m << "- load average at start: " << readFile("/proc/loadavg");
  m << "- SQLite " << sqlite3_libversion() << ", ZeroMQ ";
  int a, b, c;
  zmq_version(&a, &b, &c);
  m << a << "." << b << "." << c << ", compiler " << __VERSION__ << "\n";
  return m.str();
}

}  // namespace

double waitForPeakRssMiB(pid_t pid, int* status) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  long peakKb = 0;
  while (true) {
    pid_t done = waitpid(pid, status, WNOHANG);
    if (done == pid || done < 0) break;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmHWM:", 0) == 0) peakKb = std::max(peakKb, std::atol(line.c_str() + 6));
    std::this_thread::sleep_for(5ms);
  }
  return peakKb / 1024.0;
}

int runSuite(const SuiteOptions& o) {
  fs::path dir = o.out;
  fs::create_directories(dir);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  bool plots = havePlotter();
  const int R = o.repeat;
  const int touches = o.quick ? 200 : 10000;
  auto log = [&](const std::string& s) { std::cerr << "bench: " << s << std::endl; };
  std::ostringstream md;
  md << "# runrec benchmark report\n\n" << machine() << "\n";
  md << "Command: `runrec bench --suite " << o.out << (o.quick ? " --quick" : "") << " -r " << R
     << "`. Figures: median (min–max) of " << R << " runs. Durable log: WAL, `--sync normal` (every committed "
     << "event survives a process crash or kill -9; `--sync full` also survives a power cut).\n\n";
  json all;
  fs::path protocol = dir / "seed.json";
  std::ofstream(protocol) << runner::makeSeedProtocol(touches).dump();
  auto failWith = [&](const engine::Error& e) {
    std::cerr << "runrec: bench: " << e.message << "\n";
    return kSystemError;
  };

  auto want = [&](const char* section) { return o.sections.empty() || o.sections.count(section) > 0; };
  if (!o.sections.empty()) {
    md << "Sections run (`--sections`):";
    for (auto& name : o.sections) md << " " << name;
    md << ".\n\n";
  }
  double pipelineEventsPerSecondStub = 0, pipelineEventsPerSecondStubEach = 0, pipelineCps = 0;
  double stubEventsPerCommit = 0;  // the stubbed run's (default `--commit group`) events per transaction

  // 1. Throughput, in child processes.
  if (want("throughput")) {
  log("throughput");
  struct Variant {
    const char* name;
    std::vector<std::string> args;
  };
  // The default commit policy is `group` (docs/event-log.md); `--commit each` rows show what
  // committing every command costs, the `--hwm 16` row what the credit window's default was
  // before the log thread (docs/performance.md, fifth pass).
  std::vector<Variant> variants = {
      {"sim", {"--robot", "sim"}},
      {"sim, --commit each", {"--robot", "sim", "--commit", "each"}},
      {"sim, --hwm 16", {"--robot", "sim", "--hwm", "16"}},
      {"sim, --events none", {"--robot", "sim", "--events", "none"}},
      {"sim-basic (robot stubbed), --events none", {"--robot", "sim-basic", "--events", "none"}},
      {"sim-basic (robot stubbed), --events none, --commit each",
       {"--robot", "sim-basic", "--events", "none", "--commit", "each"}}};
  // The pty: a `runrec smoothie --pty` child per run.
  Table t1;
  t1.header({"variant", "commands/s", "events/s", "G-code lines/s", "wall s", "peak RSS MiB", "log bytes/cmd",
             "events/commit"});
  double linesPerCommand = 0;
  {
    PipelineOptions po;
    po.db = dir / "lines.db";
    po.touches = 100;
    po.recordGaps = true;
    auto r = runPipeline(po);
    if (!r) return failWith(r.error());
    linesPerCommand = static_cast<double>(r->gapsUs.size() + 1) / std::max(1L, r->commands);
  }
  auto addVariant = [&](const std::string& name, const std::function<engine::Result<ChildRun>(int)>& once,
                        bool gcode) -> int {
    std::vector<double> cps, eps, wall, rss, bpc, epc;
    for (int i = 0; i < R; ++i) {
      auto r = once(i);
      if (!r) return failWith(r.error());
      epc.push_back(r->eventsPerCommit);
      cps.push_back(r->cps);
      eps.push_back(r->eps);
      wall.push_back(r->wall);
      rss.push_back(r->rssMiB);
      bpc.push_back(r->bytesPerCommand);
    }
    Stat c = stat(cps), e = stat(eps);
    Stat lines{c.median * linesPerCommand, c.min * linesPerCommand, c.max * linesPerCommand};
    t1.row({name, cell(c, "%.0f"), cell(e, "%.0f"), gcode ? cell(lines, "%.0f") : "—", cell(stat(wall), "%.2f"),
            cell(stat(rss), "%.1f"), cell(stat(bpc), "%.0f"), cell(stat(epc), "%.1f")});
    all["throughput"][name] = {{"commandsPerSecond", toJson(c)}, {"eventsPerSecond", toJson(e)},
                               {"peakRssMiB", toJson(stat(rss))}, {"logBytesPerCommand", toJson(stat(bpc))},
                               {"eventsPerCommit", toJson(stat(epc))}};
    if (name == "sim-basic (robot stubbed), --events none") {
      pipelineEventsPerSecondStub = e.median;
      stubEventsPerCommit = stat(epc).median;
    }
    if (name == "sim-basic (robot stubbed), --events none, --commit each") pipelineEventsPerSecondStubEach = e.median;
    if (name == "sim") pipelineCps = c.median;
    return 0;
  };
  for (auto& v : variants) {
    if (int rc = addVariant(v.name, [&](int i) { return childRun(exe, dir, protocol.string(), "tp" + std::to_string(i), v.args); },
                            std::string(v.name).rfind("sim-basic", 0) != 0);
        rc)
      return rc;
  }
  {
    auto once = [&](int i) -> engine::Result<ChildRun> {
      std::string out = (dir / "pty.out").string();
      pid_t board = spawn({exe, "smoothie", "--pty", "--right", "p300_single_v2.0"}, out, out + ".err");
      std::string path;
      for (int k = 0; k < 250 && path.empty(); ++k) {
        std::this_thread::sleep_for(20ms);
        std::istringstream in(readFile(out));
        std::getline(in, path);
      }
      auto r = path.empty() ? engine::fail(engine::ErrorCode::kIo, "runrec smoothie --pty printed no device")
                            : childRun(exe, dir, protocol.string(), "pty" + std::to_string(i),
                                       {"--robot", "serial:" + path, "--events", "none"});
      if (board > 0) {
        kill(board, SIGTERM);
        int st = 0;
        waitpid(board, &st, 0);
      }
      return r;
    };
    if (int rc = addVariant("pty (serial driver to `runrec smoothie --pty`), --events none", once, true); rc) return rc;
  }
  md << "## 1. Throughput: the seed protocol (" << touches << " touch tips) end to end\n\n"
     << "`runrec run` child processes, in-process engine, hwm " << bus::kDefaultHwm << ". Rates over the engine's run time (first to "
     << "last event, cleanup included). G-code lines/s = commands/s × " << fmt("%.2f", linesPerCommand)
     << " lines per command (counted once).\n\n"
     << t1.md.str() << "\n";
  }

  // 2. Limits.
  if (want("limits")) {
  log("limits");
  std::vector<double> ins, insGroup, zin, zipc;
  std::size_t bytes = seedCommandFrameBytes();
  long rows = o.quick ? 5000 : 100000;
  // Raw inserts at the batch size the pipeline used: 2 rows per commit (`--commit each`: a
  // command's outcome with the next start) and the stubbed group run's events per commit.
  int groupBatch = std::max(2, static_cast<int>(std::lround(stubEventsPerCommit)));
  for (int i = 0; i < R; ++i) {
    auto s = rawSqliteInserts(dir / "raw.db", engine::Sync::kNormal, 2, rows);
    auto sg = rawSqliteInserts(dir / "raw-group.db", engine::Sync::kNormal, groupBatch, rows);
    if (!sg) return failWith(sg.error());
    insGroup.push_back(sg->insertsPerSecond);
    auto z = rawZmqPushPull("inproc", dir, bus::kDefaultHwm, bytes, rows);
    auto zi = rawZmqPushPull("ipc", dir, bus::kDefaultHwm, bytes, rows);
    if (!s) return failWith(s.error());
    if (!z) return failWith(z.error());
    if (!zi) return failWith(zi.error());
    ins.push_back(s->insertsPerSecond);
    zin.push_back(z->messagesPerSecond);
    zipc.push_back(zi->messagesPerSecond);
  }
  {
    std::error_code ec;
    for (auto suffix : {"", "-wal", "-shm", ".lock"}) {
      fs::remove((dir / "raw.db").string() + suffix, ec);
      fs::remove((dir / "raw-group.db").string() + suffix, ec);
    }
  }
  Stat sIns = stat(ins), sInsGroup = stat(insGroup), sZin = stat(zin), sZipc = stat(zipc);
  all["limits"] = {{"sqliteInsertsPerSecond", toJson(sIns)}, {"sqliteInsertsPerSecondGroupBatch", toJson(sInsGroup)},
                   {"groupBatchRows", groupBatch},           {"zmqInprocPerSecond", toJson(sZin)},
                   {"zmqIpcPerSecond", toJson(sZipc)},       {"frameBytes", bytes},
                   {"stubbedRatioEach", pipelineEventsPerSecondStubEach / sIns.median},
                   {"stubbedRatioGroup", pipelineEventsPerSecondStub / sInsGroup.median}};
  md << "## 2. Limits, measured in the same run\n\n"
     << "| limit | rate | pipeline as a fraction |\n| --- | --- | --- |\n"
     << "| raw SQLite inserts/s (log schema and triggers, WAL, sync normal, 2 rows per commit, " << rows
     << " rows) | " << cell(sIns, "%.0f") << " | events/s with the robot stubbed, `--commit each`: "
     << fmt("%.0f", pipelineEventsPerSecondStubEach) << " = "
     << fmt("%.2f", pipelineEventsPerSecondStubEach / sIns.median) << " |\n"
     << "| raw SQLite inserts/s, " << groupBatch << " rows per commit (the stubbed run's events per commit under "
     << "the default `--commit group`) | " << cell(sInsGroup, "%.0f") << " | events/s with the robot stubbed: "
     << fmt("%.0f", pipelineEventsPerSecondStub) << " = " << fmt("%.2f", pipelineEventsPerSecondStub / sInsGroup.median)
     << " |\n"
     << "| raw ZeroMQ PUSH/PULL inproc msgs/s (" << bytes << " B, HWM " << bus::kDefaultHwm << ") | " << cell(sZin, "%.0f")
     << " | commands/s (sim): " << fmt("%.0f", pipelineCps) << " = " << fmt("%.3f", pipelineCps / sZin.median)
     << " |\n"
     << "| raw ZeroMQ PUSH/PULL ipc msgs/s (" << bytes << " B, HWM " << bus::kDefaultHwm << ") | " << cell(sZipc, "%.0f") << " | "
     << fmt("%.3f", pipelineCps / sZipc.median) << " |\n\n";
  }

  // 3. Latency.
  if (want("latency")) {
  log("latency");
    std::vector<double> p[2][4];
    std::vector<double> pooled[2];
    for (int i = 0; i < R; ++i) {
      PipelineOptions po;
      po.db = dir / "latency.db";
      po.touches = touches;
      po.timeEvents = true;
      auto r = runPipeline(po);
      if (!r) return failWith(r.error());
      std::vector<double>* v[2] = {&r->startedUs, &r->outcomeUs};
      for (int k = 0; k < 2; ++k) {
        pooled[k].insert(pooled[k].end(), v[k]->begin(), v[k]->end());
        p[k][0].push_back(percentile(*v[k], 0.5));
        p[k][1].push_back(percentile(*v[k], 0.99));
        p[k][2].push_back(percentile(*v[k], 0.999));
        p[k][3].push_back(v[k]->empty() ? 0 : v[k]->back());
      }
    }
    Table t;
    t.header({"from the runner's send to", "p50 µs", "p99 µs", "p99.9 µs", "max µs"});
    const char* names[2] = {"`commandStarted` committed (and published)", "outcome committed and published"};
    for (int k = 0; k < 2; ++k) {
      t.row({names[k], cell(stat(p[k][0]), "%.0f"), cell(stat(p[k][1]), "%.0f"), cell(stat(p[k][2]), "%.0f"),
             cell(stat(p[k][3]), "%.0f")});
      all["latency"][k == 0 ? "startedUs" : "outcomeUs"] = {{"p50", toJson(stat(p[k][0]))}, {"p99", toJson(stat(p[k][1]))},
                                                              {"p999", toJson(stat(p[k][2]))}, {"max", toJson(stat(p[k][3]))}};
    }
    writeCdf(dir / "latency-started.dat", pooled[0]);
    writeCdf(dir / "latency-outcome.dat", pooled[1]);
    if (plots)
      plot(dir, "latency",
           "set logscale x\nset xlabel 'latency from send (µs)'\nset ylabel 'fraction of commands'\nset key bottom right\n"
           "plot 'latency-started.dat' with lines title 'start committed', 'latency-outcome.dat' with lines title "
           "'outcome published'\n");
    md << "## 3. Latency (in-process, sim robot, hwm " << bus::kDefaultHwm << ", " << touches << " touch tips)\n\n"
       << "Timed by a subscriber on the engine's live events (published only after the commit), same clock as the "
       << "runner's send. With a full window each command also waits behind up to " << bus::kDefaultHwm - 1
       << " others, which is most of the time shown.\n\n"
       << t.md.str() << "\n" << (plots ? "![latency CDF](latency.svg)\n\n" : "");
  }

  // 4. Backpressure.
  if (want("backpressure")) {
  log("backpressure");
    const double scale = o.quick ? 0.001 : 0.01;
    const int bpTouches = o.quick ? 20 : 300;
    Table t;
    t.header({"hwm", "max in flight", "RSS growth MiB", "commands/s"});
    for (int hwm : {1, 4, 16, 256, 1000000}) {
      std::vector<double> mif, mem, cps;
      for (int i = 0; i < R; ++i) {
        PipelineOptions po;
        po.db = dir / "bp.db";
        po.touches = hwm == 1000000 ? bpTouches * 10 : bpTouches;
        po.hwm = hwm;
        po.timeScale = scale;
        po.sampleEvery = hwm == 1000000 ? 1ms : 10ms;
        auto r = runPipeline(po);
        if (!r) return failWith(r.error());
        mif.push_back(static_cast<double>(r->maxInFlight));
        mem.push_back(r->rssPeakMiB - r->rssStartMiB);
        cps.push_back(r->commandsPerSecond);
        if (hwm == 1000000 && i == 0) {
          std::ofstream out(dir / "unbounded.dat");
          for (auto& s : r->samples) out << s[0] << " " << s[1] << " " << s[2] - r->rssStartMiB << "\n";
        }
      }
      std::string name = hwm == 1000000 ? "unbounded (bench-only: HWM and credit 10^6)" : std::to_string(hwm);
      t.row({name, cell(stat(mif), "%.0f"), cell(stat(mem), "%.1f"), cell(stat(cps), "%.0f")});
      all["backpressure"][std::to_string(hwm)] = {{"maxInFlight", toJson(stat(mif))}, {"rssGrowthMiB", toJson(stat(mem))}};
    }
    if (plots)
      plot(dir, "unbounded",
           "set xlabel 'seconds'\nset ylabel 'commands queued (sent, no outcome)'\nset y2label 'RSS growth (MiB)'\n"
           "set y2tics\nset key top left\nplot 'unbounded.dat' using 1:2 with lines title 'queue depth', "
           "'unbounded.dat' using 1:3 axes x1y2 with lines title 'RSS growth'\n");
    md << "## 4. Backpressure (robot motion at time scale " << scale << ")\n\n"
       << "The runner sends as fast as credit allows; the engine is held back by the robot's motion. "
       << "Bounded runs: " << bpTouches << " touch tips; unbounded: " << bpTouches * 10
       << " (a model of the queue Opentrons removed in the seed PR: the same pipeline with the bound set to 10^6). "
       << "RSS growth: peak minus RSS at the start of the run, sampled every 10 ms by the runner.\n\n"
       << t.md.str() << "\n" << (plots ? "![unbounded queue](unbounded.svg)\n\n" : "");
  }

  // 5. Jank.
  if (want("jank")) {
  log("jank");
    const double scale = o.quick ? 0.002 : 0.05;
    const int jTouches = o.quick ? 10 : 200;
    // Four configurations, interleaved run by run so that each sees the same machine: the
    // engine's writer thread (it feeds the board) at normal priority and raised (`--priority
    // realtime`: SCHED_FIFO when permitted), alone and under load. The load always runs at
    // the priority a user's programs get.
    struct Config {
      bool loaded;
      hardware::FeedPriority priority;
      std::vector<double> p50, p99, mx, pooled;
      long moves = 0;
      std::string applied;
    };
    std::vector<Config> configs = {{false, hardware::FeedPriority::kNormal, {}, {}, {}, {}, 0, ""},
                                   {true, hardware::FeedPriority::kNormal, {}, {}, {}, {}, 0, ""},
                                   {false, hardware::FeedPriority::kRealtime, {}, {}, {}, {}, 0, ""},
                                   {true, hardware::FeedPriority::kRealtime, {}, {}, {}, {}, 0, ""}};
    auto loadAverage = [] {
      std::string l = readFile("/proc/loadavg");
      while (!l.empty() && l.back() == '\n') l.pop_back();
      return l;
    };
    const std::string loadStart = loadAverage();
    for (int i = 0; i < R; ++i) {
      for (auto& c : configs) {
        PipelineOptions po;
        po.db = dir / "jank.db";
        po.touches = jTouches;
        po.timeScale = scale;
        po.recordGaps = true;
        po.exe = exe;
        po.priority = c.priority;
        if (c.loaded) {
          po.subscribers = 4;
          po.historyReader = true;
          po.showPoller = true;
        }
        auto r = runPipeline(po);
        if (!r) return failWith(r.error());
        c.applied = r->priority;
        c.moves = static_cast<long>(r->gapsUs.size());
        c.pooled.insert(c.pooled.end(), r->gapsUs.begin(), r->gapsUs.end());
        c.p50.push_back(percentile(r->gapsUs, 0.5));
        c.p99.push_back(percentile(r->gapsUs, 0.99));
        c.mx.push_back(r->gapsUs.empty() ? 0 : r->gapsUs.back());
      }
    }
    Table t;
    t.header({"writer thread", "load", "moves", "gap p50 µs", "gap p99 µs", "gap max µs"});
    std::string plotCmd = "plot ";
    for (auto& c : configs) {
      const char* prio = hardware::toString(c.priority);
      std::string name = c.loaded ? "4 subscribers (1 slow: 5 ms/event), history reader, `runrec show` every 100 ms"
                                  : "alone";
      t.row({std::string(prio) + " (" + c.applied + ")", name, std::to_string(c.moves), cell(stat(c.p50), "%.0f"),
             cell(stat(c.p99), "%.0f"), cell(stat(c.mx), "%.0f")});
      std::string key = std::string(c.loaded ? "loaded" : "alone") +
                        (c.priority == hardware::FeedPriority::kRealtime ? "Realtime" : "");
      all["jank"][key] = {{"p50Us", toJson(stat(c.p50))}, {"p99Us", toJson(stat(c.p99))},
                          {"maxUs", toJson(stat(c.mx))}, {"writerThread", c.applied}};
      std::string f = "jank-" + key + ".dat";
      writeCdf(dir / f, c.pooled);
      plotCmd += std::string(&c == &configs.front() ? "" : ", ") + "'" + f + "' with lines title '" + prio + ", " +
                 (c.loaded ? "under load" : "alone") + "'";
    }
    if (plots)
      plot(dir, "jank", "set logscale x\nset xlabel 'idle gap before a move (µs)'\nset ylabel 'fraction of moves'\n"
                        "set key bottom right\n" + plotCmd + "\n");
    md << "## 5. Jank: idle time at the board between consecutive moves\n\n"
       << "Virtual Smoothie in process, motion time scale " << scale << ", " << jTouches
       << " touch tips. Gap = time from the end of a move's motion to the next move line sent (driver, engine, "
       << "log commit and the board's own line handling in between). The four rows ran interleaved, run by run. "
       << "Writer thread: the engine thread that feeds the board, at normal priority or `--priority realtime` "
       << "(what it got in brackets); the load is never raised or lowered. Load average at the start of the section: "
       << loadStart << ", at its end: " << loadAverage() << ".\n\n"
       << t.md.str() << "\n" << (plots ? "![jank CDF](jank.svg)\n\n" : "");
  }

  // 6. Scale.
  if (want("scale")) {
  log("scale");
    Table t;
    t.header({"commands", "commands/s", "peak RSS MiB"});
    std::vector<int> sizes = o.quick ? std::vector<int>{100, 1000} : std::vector<int>{10000, 100000, 1000000};
    for (int n : sizes) {
      fs::path p = dir / ("seed-" + std::to_string(n) + ".json");
      if (auto st = writeSeed(exe, p, n); !st) return failWith(st.error());
      std::vector<double> cps, rss;
      int reps = n >= 1000000 ? 1 : R;
      for (int i = 0; i < reps; ++i) {
        auto r = childRun(exe, dir, p.string(), "scale", {"--robot", "sim", "--events", "none"});
        if (!r) return failWith(r.error());
        cps.push_back(r->cps);
        rss.push_back(r->rssMiB);
      }
      std::error_code ec;
      fs::remove(p, ec);
      t.row({std::to_string(n) + (reps == 1 ? " (1 run)" : ""), cell(stat(cps), "%.0f"), cell(stat(rss), "%.1f")});
      all["scale"][std::to_string(n)] = {{"commandsPerSecond", toJson(stat(cps))}, {"peakRssMiB", toJson(stat(rss))}};
    }
    md << "## 6. Scale (sim robot, --events none, child processes)\n\n" << t.md.str() << "\n";
  }
  md << "Load average at the end: " << readFile("/proc/loadavg") << "\n";
  // Scratch files go; the report, results, data and plots stay.
  for (auto& entry : fs::directory_iterator(dir)) {
    auto ext = entry.path().extension().string();
    auto name = entry.path().filename().string();
    if (ext == ".db" || ext == ".lock" || ext == ".err" || ext == ".sock" || name.find(".db") != std::string::npos ||
        name.rfind("pty.out", 0) == 0 || name == "seed.json") {
      std::error_code ec;
      fs::remove(entry.path(), ec);
    }
  }
  std::ofstream(dir / "report.md") << md.str();
  std::ofstream(dir / "results.json") << all.dump(2) << "\n";
  log("wrote " + (dir / "report.md").string());
  return kOk;
}

}  // namespace runrec::cli::bench
