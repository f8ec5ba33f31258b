// Raw SQLite and ZeroMQ throughput, measured with the pipeline's own settings.
#include "bench_limits.hpp"

#include <chrono>
#include <filesystem>
#include <thread>
#include <zmq.hpp>

#include "runrec/engine/event_log.hpp"

namespace runrec::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

json measureSqliteLimit(const std::string& dir, long commands, const std::string& sync) {
  auto path = std::filesystem::path(dir) / "limit-sqlite.db";
  std::error_code ec;
  for (auto s : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + s, ec);
  auto log = engine::EventLog::open(path, engine::LogOptions{*engine::parseSync(sync), false, true});
  if (!log) return {{"error", log.error().message}};
  auto& l = **log;
  const std::string run = "00000000-0000-4000-8000-000000000000";
  l.begin();
  l.createRun({run, engine::nowTimestamp(), "limit", "0", "none"}, "limit.json", "{}");
  l.commit();
  // Payloads shaped like a touchTip's start and outcome.
  json params = {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", "H12"},
                 {"wellLocation", {{"origin", "top"}, {"offset", {{"x", 0}, {"y", 0}, {"z", -1}}}}}};
  json result = {{"position", {{"x", 226.04}, {"y", 11.24}, {"z", 15.05}}}};
  auto t0 = Clock::now();
  std::int64_t seq = 0;
  for (long i = 1; i <= commands; ++i) {
    std::string id = "c" + std::to_string(i);
    l.begin();
    l.append({run, ++seq, "commandStarted", engine::nowTimestamp(), id,
              {{"commandId", id}, {"index", i}, {"commandType", "touchTip"}, {"params", params}, {"intent", "protocol"}}});
    l.append({run, ++seq, "commandSucceeded", engine::nowTimestamp(), id, {{"commandId", id}, {"result", result}}});
    if (auto st = l.commit(); !st) return {{"error", st.error().message}};
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {{"commandsPerSecond", commands / s}, {"eventsPerSecond", 2 * commands / s}, {"seconds", s}};
}

json measureZmqLimit(long messages, int bytes, int hwm) {
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull), push(ctx, zmq::socket_type::push);
  pull.set(zmq::sockopt::rcvhwm, hwm);
  push.set(zmq::sockopt::sndhwm, hwm);
  pull.bind("inproc://limit");
  push.connect("inproc://limit");
  std::string payload(static_cast<size_t>(bytes), 'x');
  auto t0 = Clock::now();
  std::thread receiver([&] {
    zmq::message_t m;
    for (long i = 0; i < messages; ++i) (void)pull.recv(m);
  });
  for (long i = 0; i < messages; ++i) push.send(zmq::buffer(payload), zmq::send_flags::none);
  receiver.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {{"messagesPerSecond", messages / s}, {"seconds", s}, {"bytes", bytes}};
}

}  // namespace runrec::cli
