// The limits the pipeline is compared against: raw SQLite inserts with the log's schema and
// settings, and raw ZeroMQ PUSH/PULL at the bus's message size and HWM (docs/performance.md).
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <zmq.hpp>

#include "bench.hpp"
#include "runrec/bus/message.hpp"
#include "runrec/runner/seed.hpp"

namespace runrec::cli::bench {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Stat stat(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  double med = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return {med, v.front(), v.back()};
}

json toJson(const Stat& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(std::min<double>(v.size() - 1, p * (v.size() - 1) + 0.5));
  return v[i];
}

engine::Result<RawSqlite> rawSqliteInserts(const std::filesystem::path& path, engine::Sync sync, int batch, long rows) {
  std::error_code ec;
  for (auto suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix, ec);
  const std::string runId = "00000000-0000-4000-8000-000000000000";
  {
    // The file, schema, triggers and the run row exactly as the engine makes them.
    auto log = engine::EventLog::open(path, engine::LogOptions{sync, false, true});
    if (!log) return tl::unexpected(log.error());
    if (auto st = (*log)->begin(); !st) return tl::unexpected(st.error());
    engine::RunRow row{runId, engine::nowTimestamp(), "raw", std::string(64, '0'), "none"};
    if (auto st = (*log)->createRun(row, "raw.json", "{}"); !st) return tl::unexpected(st.error());
    if (auto st = (*log)->commit(); !st) return tl::unexpected(st.error());
  }
  // Row contents prepared before timing: payloads of the seed protocol's sizes.
  struct Row {
    std::string commandId, type, payload;
  };
  std::vector<Row> data;
  data.reserve(static_cast<std::size_t>(rows));
  const std::string ts = engine::nowTimestamp();
  for (long i = 0; i < rows; ++i) {
    long c = i / 2 + 1;
    std::string id = "c" + std::to_string(c);
    char buf[512];
    if (i % 2 == 0)
      std::snprintf(buf, sizeof buf,
                    R"({"commandId":"%s","commandType":"touchTip","index":%ld,"intent":"protocol","params":{"labwareId":"plate","pipetteId":"pipette","wellLocation":{"offset":{"x":0,"y":0,"z":-1},"origin":"top"},"wellName":"H12"}})",
                    id.c_str(), c);
    else
      std::snprintf(buf, sizeof buf, R"({"commandId":"%s","result":{"position":{"x":245.88,"y":11.24,"z":15.06}}})",
                    id.c_str());
    data.push_back({id, i % 2 == 0 ? "commandStarted" : "commandSucceeded", buf});
  }

  sqlite3* db = nullptr;
  auto fail = [&](const std::string& what) {
    std::string msg = path.string() + ": raw SQLite: " + what + ": " + (db ? sqlite3_errmsg(db) : "cannot open");
    return engine::fail(engine::ErrorCode::kIo, msg);
  };
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    auto r = fail("open");
    sqlite3_close_v2(db);
    return r;
  }
  struct Closer {
    sqlite3* db;
    ~Closer() { sqlite3_close_v2(db); }
  } closer{db};
  const char* pragmas[] = {"PRAGMA journal_mode=WAL",
                           sync == engine::Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                           "PRAGMA foreign_keys=ON", "PRAGMA wal_autocheckpoint=8192"};
  for (auto* p : pragmas)
    if (sqlite3_exec(db, p, nullptr, nullptr, nullptr) != SQLITE_OK) return fail(p);
  sqlite3_stmt *ins = nullptr, *begin = nullptr, *commit = nullptr;
  if (sqlite3_prepare_v3(db, "INSERT INTO events(run_id, seq, type, ts, command_id, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, SQLITE_PREPARE_PERSISTENT, &ins, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v3(db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &begin, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v3(db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &commit, nullptr) != SQLITE_OK) {
    sqlite3_finalize(ins);
    sqlite3_finalize(begin);
    return fail("prepare");
  }
  struct Finalizer {
    sqlite3_stmt *a, *b, *c;
    ~Finalizer() {
      sqlite3_finalize(a);
      sqlite3_finalize(b);
      sqlite3_finalize(c);
    }
  } finalizer{ins, begin, commit};
  auto t0 = Clock::now();
  long commits = 0;
  for (long i = 0; i < rows;) {
    if (sqlite3_step(begin) != SQLITE_DONE) return fail("begin");
    sqlite3_reset(begin);
    for (int b = 0; b < batch && i < rows; ++b, ++i) {
      const Row& r = data[static_cast<std::size_t>(i)];
      sqlite3_bind_text(ins, 1, runId.data(), (int)runId.size(), SQLITE_STATIC);
      sqlite3_bind_int64(ins, 2, i + 1);
      sqlite3_bind_text(ins, 3, r.type.data(), (int)r.type.size(), SQLITE_STATIC);
      sqlite3_bind_text(ins, 4, ts.data(), (int)ts.size(), SQLITE_STATIC);
      sqlite3_bind_text(ins, 5, r.commandId.data(), (int)r.commandId.size(), SQLITE_STATIC);
      sqlite3_bind_text(ins, 6, r.payload.data(), (int)r.payload.size(), SQLITE_STATIC);
      if (sqlite3_step(ins) != SQLITE_DONE) return fail("insert");
      sqlite3_reset(ins);
    }
    if (sqlite3_step(commit) != SQLITE_DONE) return fail("commit");
    sqlite3_reset(commit);
    ++commits;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  RawSqlite out;
  out.rows = rows;
  out.seconds = secs;
  out.insertsPerSecond = rows / secs;
  out.commitsPerSecond = commits / secs;
  return out;
}

engine::Result<RawZmq> rawZmqPushPull(const std::string& transport, const std::filesystem::path& dir, int hwm,
                                      std::size_t bytes, long messages) {
  try {
    zmq::context_t ctx(1);
    std::string ep = transport == "ipc" ? "ipc://" + (dir / "raw-zmq.sock").string() : "inproc://raw-zmq";
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::rcvhwm, hwm);
    pull.bind(ep);
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::sndhwm, hwm);
    push.set(zmq::sockopt::linger, 0);
    push.connect(ep);
    std::string payload(bytes, 'x');
    // One warm-up message so the connection exists before timing (ipc connects lazily).
    push.send(zmq::buffer(payload));
    zmq::message_t m;
    (void)pull.recv(m);
    auto t0 = Clock::now();
    std::thread sender([&] {
      for (long i = 0; i < messages; ++i) push.send(zmq::buffer(payload));
    });
    for (long i = 0; i < messages; ++i) (void)pull.recv(m);
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    sender.join();
    RawZmq out;
    out.messages = messages;
    out.seconds = secs;
    out.messagesPerSecond = messages / secs;
    return out;
  } catch (const zmq::error_t& e) {
    return engine::fail(engine::ErrorCode::kBus, std::string("raw ZeroMQ: ") + e.what());
  }
}

std::size_t seedCommandFrameBytes() {
  json protocol = runner::makeSeedProtocol(100);
  std::vector<double> sizes;
  std::uint64_t seq = 1;
  for (const auto& c : protocol["commands"]) {
    bus::Message m{bus::MessageType::kCommand, "00000000-0000-4000-8000-000000000000", seq++, c};
    sizes.push_back(static_cast<double>(bus::encode(m).size()));
  }
  return static_cast<std::size_t>(stat(sizes).median);
}

}  // namespace runrec::cli::bench
